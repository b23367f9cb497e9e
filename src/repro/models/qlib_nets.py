"""qlib's CSI300 Alpha360 neural baselines that paper 004 (MTMD) compares with, on this project's day interface.

Written from qlib's code (microsoft/qlib, commit d5379c520f66a39953bad76234a7019a72796fd0), not copied:

* :class:`MLP` -- ``qlib/contrib/model/pytorch_nn.py`` (``DNNModelPytorch`` / ``Net``);
* :class:`ALSTM` -- ``qlib/contrib/model/pytorch_alstm.py`` (``ALSTMModel``);
* :class:`GATs` -- ``qlib/contrib/model/pytorch_gats.py`` (``GATModel``).

Defaults are the model classes' own, which the ``examples/benchmarks/{MLP,ALSTM,GATs}/
workflow_config_*_Alpha360.yaml`` configs keep (d_feat 6, hidden 64, 2 layers; MLP: ``input_dim: 360``
and ``Net``'s ``layers=(256,)``) except where a docstring says otherwise.

Every model maps one trading day -- x (N stocks, T=60 days, F=6 fields: close, open, high, low, vwap,
volume, oldest day first), ``index`` (unused) and ``mask`` (N,) of stocks that exist that day -- to (N,)
scores. qlib feeds its models the 360 Alpha360 columns, block-major (CLOSE59..CLOSE0, OPEN59..OPEN0, ...),
and each model reshapes them to exactly this (N, 60, 6) sequence; :func:`alpha360_flat` is the inverse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .higstm import masked_softmax_rows
from .panel_baselines import present_only


def alpha360_flat(x: torch.Tensor) -> torch.Tensor:
    """(N, T, F) oldest-first windows -> (N, F*T) in qlib's Alpha360 column order.

    Column ``f * T + t`` is field f on window day t, so with T=60 CLOSE59 (x[:, 0, 0]) is column 0, CLOSE0
    (x[:, -1, 0]) column 59 and OPEN59 (x[:, 0, 1]) column 60 -- the order qlib's models un-flatten with
    ``view(N, d_feat, -1).permute(0, 2, 1)``.
    """
    return x.transpose(1, 2).reshape(x.shape[0], -1)


def _rnn(cell: str, d_in: int, hidden: int, layers: int, dropout: float) -> nn.Module:
    try:
        klass = {"gru": nn.GRU, "lstm": nn.LSTM}[cell.lower()]
    except KeyError:
        raise ValueError(f"unknown cell {cell!r}; choose 'gru' or 'lstm'") from None
    # qlib passes dropout straight to torch; with one layer torch ignores it (and warns), so pass 0 there.
    return klass(d_in, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)


class MLP(nn.Module):
    """qlib's ``Net`` (``pytorch_nn.py``) on the flattened Alpha360 row.

    Dropout(``dropout``) on the input -> ``layers`` x [Linear -> BatchNorm1d -> LeakyReLU(0.1) (or SiLU)]
    -> Dropout(``dropout``) -> Linear to one score; every Linear's weight Kaiming-normal (a=0.1, fan_in),
    as ``Net._weight_init``. Defaults: ``input_dim: 360`` from the Alpha360 config, ``layers=(256,)`` and
    ``act="LeakyReLU"`` from ``DNNModelPytorch``'s default ``pt_model_kwargs`` / ``Net``, the fixed 0.05
    dropouts from ``Net``. Paper 004's Table II uses 3 layers of 512 units: ``MLP(hidden=512, layers=3)``.

    qlib trains on random 4096-row batches across days; here one call is one day, so in training mode
    BatchNorm's statistics are the day's cross-section. Only existing stocks (``mask``) enter the network,
    so absent stocks cannot shift those statistics; their scores are 0.
    """

    def __init__(self, n_inputs: int = 360, hidden: int = 256, layers: int = 1, dropout: float = 0.05,
                 act: str = "leaky_relu"):
        super().__init__()
        acts = {"leaky_relu": lambda: nn.LeakyReLU(0.1), "silu": nn.SiLU}
        if act not in acts:
            raise ValueError(f"unknown act {act!r}; choose from {sorted(acts)}")
        self.n_inputs = n_inputs
        sizes = [n_inputs] + [hidden] * layers
        blocks = [nn.Sequential(nn.Linear(a, b), nn.BatchNorm1d(b), acts[act]()) for a, b in zip(sizes, sizes[1:])]
        self.net = nn.Sequential(nn.Dropout(dropout), *blocks, nn.Dropout(dropout), nn.Linear(sizes[-1], 1))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, a=0.1, mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x, index=None, mask=None):
        flat = alpha360_flat(x)
        if flat.shape[1] != self.n_inputs:
            raise ValueError(f"MLP built for {self.n_inputs} inputs got {flat.shape[1]} (T*F)")
        if mask is None:
            return self.net(flat).squeeze(-1)
        out = flat.new_zeros(flat.shape[0])
        out[mask] = self.net(flat[mask]).squeeze(-1)
        return out


class ALSTM(nn.Module):
    """qlib's ``ALSTMModel`` (``pytorch_alstm.py``): attention-pooled RNN.

    Linear(F, hidden) + tanh -> GRU/LSTM -> attention over the time steps (Linear(hidden, hidden/2) ->
    Dropout -> tanh -> Linear(hidden/2, 1, no bias) -> softmax over time) -> Linear(2*hidden, 1) on
    [last hidden state, attention-weighted sum of hidden states]. Defaults from ``ALSTMModel`` and the ALSTM
    Alpha360 config (d_feat 6, hidden_size 64, num_layers 2, dropout 0.0, rnn_type GRU; qlib's ``ALSTM``
    wrapper never passes ``rnn_type`` on, so its benchmark always runs the GRU).
    """

    def __init__(self, d_feat: int = 6, hidden: int = 64, layers: int = 2, dropout: float = 0.0, cell: str = "gru"):
        super().__init__()
        self.fc_in = nn.Linear(d_feat, hidden)
        self.rnn = _rnn(cell, hidden, hidden, layers, dropout)
        self.att = nn.Sequential(nn.Linear(hidden, hidden // 2), nn.Dropout(dropout), nn.Tanh(),
                                 nn.Linear(hidden // 2, 1, bias=False))
        self.fc_out = nn.Linear(2 * hidden, 1)

    def forward(self, x, index=None, mask=None):
        # No cross-stock operation: the mask only spares the absent stocks' computation (they score 0).
        return present_only(self._one, x, mask)

    def _one(self, x):
        h, _ = self.rnn(torch.tanh(self.fc_in(x)))  # (N, T, hidden)
        w = torch.softmax(self.att(h), dim=1)  # (N, T, 1): weights over the time steps
        pooled = (h * w).sum(dim=1)
        return self.fc_out(torch.cat([h[:, -1], pooled], dim=-1)).squeeze(-1)


class GATs(nn.Module):
    """qlib's ``GATModel`` (``pytorch_gats.py``): RNN encoder, then attention across the day's stocks.

    h = last RNN hidden state; z = Linear(h); e_ij = LeakyReLU(a^T [z_j ; z_i]) (slope 0.01), softmax over j;
    h' = att @ h + h (the *untransformed* h, as qlib); score = Linear(LeakyReLU(Linear(h'))). qlib builds the
    N x N x 2*hidden pair tensor; a^T [z_j ; z_i] = a_1 . z_j + a_2 . z_i, computed here as a broadcast sum
    (same numbers, O(N) memory for the scores). ``a`` starts as ``randn(2*hidden, 1)`` as in qlib.

    Departure: absent stocks (``mask`` False) are dropped from the softmax and their hidden state zeroed, so
    they change no other stock's score. Defaults from ``GATModel`` (d_feat 6, hidden_size 64, num_layers 2,
    dropout 0.0, base_model GRU). The Alpha360 benchmark config instead runs ``base_model: LSTM``
    (``cell="lstm"``) with ``dropout: 0.7`` and initialises the encoder from a pretrained qlib LSTM.
    """

    def __init__(self, d_feat: int = 6, hidden: int = 64, layers: int = 2, dropout: float = 0.0, cell: str = "gru"):
        super().__init__()
        self.rnn = _rnn(cell, d_feat, hidden, layers, dropout)
        self.transformation = nn.Linear(hidden, hidden)
        self.a = nn.Parameter(torch.randn(2 * hidden, 1))
        self.fc = nn.Linear(hidden, hidden)
        self.fc_out = nn.Linear(hidden, 1)

    def attention(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(N, N) weights, row i over the stocks j it attends to (qlib's ``cal_attention``)."""
        z = self.transformation(h)
        d = z.shape[1]
        e = F.leaky_relu((z @ self.a[:d]).T + z @ self.a[d:], 0.01)  # e[i, j] = a_1 . z_j + a_2 . z_i
        if mask is None:
            return torch.softmax(e, dim=1)
        return masked_softmax_rows(e, mask[None, :].expand_as(e))

    def forward(self, x, index=None, mask=None):
        h = present_only(lambda v: self.rnn(v)[0][:, -1], x, mask)  # absent stocks: zeros, never NaN
        h = self.attention(h, mask) @ h + h
        return self.fc_out(F.leaky_relu(self.fc(h), 0.01)).squeeze(-1)
