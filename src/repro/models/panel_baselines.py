"""The baselines HIGSTM is compared with, on its exact inputs (paper 003, section 4.1.2).

Every model maps one day -- x (N stocks, T days, F features), the index window (T,) and the
mask of existing stocks (N,) -- to one score per stock, and is trained like HIGSTM:

* :class:`RNN` -- an LSTM or GRU over each stock's window (temporal);
* :class:`MambaTS` -- a plain Mamba over each stock's window: MambaStock without its
  same-day features (temporal);
* :class:`ITransformer` -- iTransformer (Liu et al. 2023): each feature's whole window is
  one token, attention across the features of a stock (temporal);
* :class:`IndustryGAT` -- a GRU encoder followed by graph attention over the stocks of the
  same industry (spatio-temporal, predefined graph).

MASTER, MTGNN, DCRNN and the others of the paper's Table 2 are not re-implemented here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .ssm import MambaBlock


class RNN(nn.Module):
    def __init__(self, n_features: int, hidden: int = 64, layers: int = 2, cell: str = "gru", dropout: float = 0.0):
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(n_features, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x, index=None, mask=None):
        h, _ = self.rnn(x)
        return self.out(h[:, -1]).squeeze(-1)


class MambaTS(nn.Module):
    def __init__(self, n_features: int, d_model: int = 64, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 layers: int = 1, backend: str = "auto"):
        super().__init__()
        self.embed = nn.Linear(n_features, d_model)
        self.blocks = nn.ModuleList(MambaBlock(d_model, d_state, d_conv, expand, backend=backend)
                                    for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(layers))
        self.out = nn.Linear(d_model, 1)

    def forward(self, x, index=None, mask=None):
        h = self.embed(x)
        for block, norm in zip(self.blocks, self.norms):
            h = norm(block(h) + h)
        return self.out(h[:, -1]).squeeze(-1)


class ITransformer(nn.Module):
    def __init__(self, n_features: int, length: int, d_model: int = 64, heads: int = 4, layers: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Linear(length, d_model)  # a feature's whole window -> one token
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(n_features * d_model, 1)

    def forward(self, x, index=None, mask=None):
        tokens = self.encoder(self.embed(x.transpose(1, 2)))  # (N, F, d)
        return self.out(tokens.flatten(1)).squeeze(-1)


class IndustryGAT(nn.Module):
    """GRU encoder, then one graph-attention layer over same-industry stocks (Velickovic et al. 2018)."""

    def __init__(self, n_features: int, adjacency: torch.Tensor, hidden: int = 64):
        super().__init__()
        self.encoder = nn.GRU(n_features, hidden, 2, batch_first=True)
        self.register_buffer("adjacency", adjacency.bool() | torch.eye(adjacency.shape[0], dtype=torch.bool))
        self.w = nn.Linear(hidden, hidden, bias=False)
        self.a_src = nn.Linear(hidden, 1, bias=False)
        self.a_dst = nn.Linear(hidden, 1, bias=False)
        self.out = nn.Linear(2 * hidden, 1)

    def forward(self, x, index=None, mask=None):
        h, _ = self.encoder(x)
        h = h[:, -1]
        z = self.w(h)
        e = F.leaky_relu(self.a_src(z) + self.a_dst(z).T, 0.2)  # e_ij for every pair
        allowed = self.adjacency if mask is None else self.adjacency & mask[None, :]
        att = torch.softmax(e.masked_fill(~allowed, float("-inf")), dim=-1)
        att = torch.nan_to_num(att, nan=0.0)
        return self.out(torch.cat([h, att @ z], dim=-1)).squeeze(-1)


def industry_adjacency(industries) -> torch.Tensor:
    """Same-industry adjacency (N x N, bool) from a sequence of industry labels (None: no edge)."""
    import numpy as np

    labels = np.asarray(list(industries), dtype=object)
    same = labels[:, None] == labels[None, :]
    known = np.array([v is not None and v == v for v in labels])
    return torch.as_tensor(same & known[:, None] & known[None, :])
