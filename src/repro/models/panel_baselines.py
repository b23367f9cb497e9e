"""The baselines HIGSTM is compared with, on its exact inputs (paper 003, section 4.1.2).

Every model maps one day -- x (N stocks, T days, F features), the index window (T,) and the
mask of existing stocks (N,) -- to one score per stock, and is trained like HIGSTM:

* :class:`RNN` -- an LSTM or GRU over each stock's window (temporal);
* :class:`MambaTS` -- a plain Mamba over each stock's window: MambaStock without its
  same-day features (temporal);
* :class:`ITransformer` -- iTransformer (Liu et al. 2023): each feature's whole window is
  one token, attention across the features of a stock (temporal);
* :class:`IndustryGAT` -- a GRU encoder followed by graph attention over the stocks of the
  same industry (spatio-temporal, predefined graph);
* :class:`MASTER` -- the market-guided stock transformer of Li et al. (AAAI 2024), the
  specialised stock model of the paper's Table 2 (spatio-temporal, learned attention).

MTGNN, DCRNN and the other baselines of the paper's Table 2 are not re-implemented here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .higstm import masked_softmax_rows
from .ssm import MambaBlock


def present_only(encode, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``encode(x)`` (one row per stock) run on the stocks present that day only, zeros for the others.

    A point-in-time panel carries every stock that was ever a member (623 rows for CSI300 over
    2010-2020, about 280 present on a day); a per-stock encoder costs per row, so skipping the
    absent rows halves the work there. Absent rows must not reach the present ones anyway."""
    if mask is None or bool(mask.all()):
        return encode(x)
    inner = encode(x[mask])
    out = inner.new_zeros((x.shape[0], *inner.shape[1:]))
    return out.index_put((mask.nonzero(as_tuple=True)[0],), inner)


class RNN(nn.Module):
    def __init__(self, n_features: int, hidden: int = 64, layers: int = 2, cell: str = "gru", dropout: float = 0.0):
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(n_features, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x, index=None, mask=None):
        return self.out(present_only(lambda v: self.rnn(v)[0][:, -1], x, mask)).squeeze(-1)


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
        att = masked_softmax_rows(e, allowed)
        return self.out(torch.cat([h, att @ z], dim=-1)).squeeze(-1)


class MASTER(nn.Module):
    """Market-guided stock transformer (Li et al., AAAI 2024, section 4), written from the paper.

    market-guided gating -> feature encoder with positional encoding -> intra-stock attention
    over time -> inter-stock attention across the day's stocks at every time step -> temporal
    attention pooled by the last step -> linear score.

    MASTER's market status m is built from the index's price and volume over 5..60 days. To
    keep every model on identical inputs, here it is computed from the same 16-day index
    window HIGSTM gets: the latest index return and the mean and standard deviation of the
    index returns over the last 5, 10 and all days of the window (7 numbers).
    """

    def __init__(self, n_features: int, length: int, d_model: int = 64, heads_t: int = 4, heads_s: int = 2,
                 beta: float = 5.0, dropout: float = 0.1):
        super().__init__()
        self.n_features, self.beta = n_features, beta
        self.gate = nn.Linear(7, n_features)
        self.embed = nn.Linear(n_features, d_model)
        position = torch.arange(length, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(length, d_model)
        pe[:, 0::2] = torch.sin(position * freq)
        pe[:, 1::2] = torch.cos(position * freq)[:, : d_model // 2]
        self.register_buffer("pe", pe)

        def layer(heads):
            lyr = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout, batch_first=True, norm_first=True)
            # Dropout on the residual and feed-forward paths only: dropping attention weights
            # takes PyTorch off its fused CPU attention and made training 2-4x slower.
            lyr.self_attn.dropout = 0.0
            return lyr

        self.intra = layer(heads_t)  # attention over time within each stock
        self.inter = layer(heads_s)  # attention across stocks at each time step
        self.temporal = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, 1)

    @staticmethod
    def market_status(index: torch.Tensor) -> torch.Tensor:
        """7 market numbers from the index path (relative to its last value, as the panel gives it)."""
        level = index + 1.0
        r = level[1:] / level[:-1] - 1.0
        parts = [r[-1:]]
        for k in (5, 10, r.shape[0]):
            w = r[-k:]
            parts += [w.mean()[None] * 100, w.std(unbiased=False)[None] * 100]  # returns in percent
        parts[0] = parts[0] * 100
        return torch.cat(parts)

    def forward(self, x, index=None, mask=None):
        n, t, _ = x.shape
        if index is None:
            alpha = torch.ones(self.n_features, device=x.device, dtype=x.dtype)
        else:  # market-guided gating: alpha = F * softmax(W m / beta)
            alpha = self.n_features * torch.softmax(self.gate(self.market_status(index)) / self.beta, dim=-1)
        h = self.embed(x * alpha) + self.pe[:t]
        h = self.intra(h)  # (N, T, d)
        pad = None if mask is None else ~mask[None, :].expand(t, n)
        h = self.inter(h.transpose(0, 1), src_key_padding_mask=pad).transpose(0, 1)
        if mask is not None:
            h = h.masked_fill(~mask[:, None, None], 0.0)
        # temporal aggregation: lambda_t = softmax_t(h_t . W h_T)
        lam = torch.softmax(torch.einsum("ntd,nd->nt", h, self.temporal(h[:, -1])), dim=-1)
        return self.out(torch.einsum("nt,ntd->nd", lam, h)).squeeze(-1)


def industry_adjacency(industries) -> torch.Tensor:
    """Same-industry adjacency (N x N, bool) from a sequence of industry labels (None: no edge)."""
    import numpy as np

    labels = np.asarray(list(industries), dtype=object)
    same = labels[:, None] == labels[None, :]
    known = np.array([v is not None and v == v for v in labels])
    return torch.as_tensor(same & known[:, None] & known[None, :])
