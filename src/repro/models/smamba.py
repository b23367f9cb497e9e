"""Paper 000 (MambaLLM): the S-Mamba micro-stock encoder, MambaLLM, the baselines and one training loop.

MambaLLM [000 abstract] has two branches: a Mamba-based encoder of a stock's window of
prices, volumes and technical indicators ("Micro-Stock Encoder"), and text that an LLM wrote
about the S&P 500, embedded by FinBERT ("Macro-Index Analyzer"); the two are concatenated and
read by an MLP. Only the abstract is available; the sizes and the wiring below follow the
authors' code (``ttys0001/MambaLLM``: ``smamba3.py``, ``smamba_llm3.py``; not copied):

* **Inverted embedding** (S-Mamba, Wang et al. 2024, after iTransformer): the variates are the
  tokens. Each feature's whole window is one token, ``Linear(window -> d_model)``, so the
  encoder's sequence has ``n_features`` tokens (12 here) and mixes *features*, not days.
* **Per-window normalisation** (``normalise=True``, as the authors): every variate's window is
  centred on its mean and divided by its standard deviation (population, ``+1e-5`` under the
  root); the per-token outputs are scaled back with the same mean and deviation.
* **Encoder layer**: ``x + sum of Mamba branches``, LayerNorm, position-wise feed-forward
  (``d_model -> d_ff -> d_model``, GELU, dropout) with a residual, LayerNorm; a final
  LayerNorm after the last layer.
* **Head**: one number per token (``Linear(d_model -> 1)``), de-normalised, then
  ``Linear(n_features -> out_dim)`` (``out_dim=1000`` in the authors' code). Note that the
  1000 numbers are therefore a linear image of 12 per-variate scalars.
* **MambaLLM**: the text vectors of the window's days are averaged over the window,
  concatenated with the encoder's output, and an MLP ``out_dim + text_dim -> 500 -> 100 ->
  25 -> 1`` with ReLU gives the forecast. ``text_dim=0`` is "S-Mamba without text".

Where we differ from, or choose among, the authors' code:

* ``mambas_per_layer`` (default 2 when ``bidirectional``): the branches of a layer.
  1 = one forward Mamba over the tokens; 2 = S-Mamba's bidirectional layer, a forward Mamba
  plus a second Mamba over the *reversed* token order (flipped back), summed; 3 = the
  authors' "Tri-Mamba": those two plus a third Mamba fed the embedding with its *channel*
  axis reversed (``d_model`` order flipped, then flipped back), the three mixed by learnable
  scalar weights initialised at 1. Reversing the channels only permutes that block's in- and
  out-projection weights, so the third branch is, in effect, another forward-direction Mamba
  over the tokens with its own weights (the same scan direction as the first).
* Mamba blocks are :class:`repro.models.ssm.MambaBlock` (mamba-ssm's CUDA kernel on a GPU when
  installed, a PyTorch scan otherwise), with the authors' ``d_conv=2, expand=1``.
* The authors' encoder layer defines further unused modules and an LSTM on the text that is
  never called; they are left out. The activation of the feed-forward is GELU (S-Mamba's default;
  the authors' value is not in their repository).

Baselines share the call ``forward(x, text=None) -> (batch,)`` with ``x`` (batch, window,
features): :class:`RNNForecaster` (LSTM / GRU, uni- or bidirectional), :class:`TransformerForecaster`
(over days, learned positions) and :class:`MambaOverTime` (plain Mamba over days, MambaStock-style).
Models that read no text raise ``ValueError`` when given text, so an experiment cannot
silently drop its macro input.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .ssm import MambaBlock
from .training import as_tensor, check_parts, pick_device, timed_epoch, train_early_stopping

PREDICT_BATCH = 1024  # windows per forward pass when evaluating (bounds the scan's memory)
MLP_SIZES = (500, 100, 25)  # the authors' MLP after the concatenation
NORM_EPS = 1e-5


def _no_text(model: nn.Module, text: torch.Tensor | None) -> None:
    if text is not None:
        raise ValueError(f"{type(model).__name__} reads no text; pass text=None (or use 'mamballm' with text_dim > 0)")


# --------------------------------------------------------------------------- S-Mamba
class SMambaLayer(nn.Module):
    """One encoder layer over the variate tokens: Mamba branches summed, residual, LayerNorm, feed-forward."""

    def __init__(self, d_model: int, d_state: int, d_ff: int, dropout: float, d_conv: int, expand: int,
                 mambas: int, activation: str = "gelu", backend: str = "auto"):
        super().__init__()
        if mambas not in (1, 2, 3):
            raise ValueError(f"mambas_per_layer must be 1, 2 or 3, got {mambas}")
        self.mambas = nn.ModuleList(MambaBlock(d_model, d_state=d_state, d_conv=d_conv, expand=expand,
                                               backend=backend) for _ in range(mambas))
        # the authors' Tri-Mamba mixes its three branches with learnable weights (initialised at 1)
        self.branch_weights = nn.Parameter(torch.ones(mambas)) if mambas == 3 else None
        act = {"gelu": nn.GELU(), "relu": nn.ReLU()}[activation]
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), act, nn.Dropout(dropout), nn.Linear(d_ff, d_model),
                                nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (batch, tokens, d_model) -> same shape."""
        branches = [self.mambas[0](x)]
        if len(self.mambas) > 1:  # reversed token order, flipped back (S-Mamba's bidirectional scan)
            branches.append(self.mambas[1](x.flip(1)).flip(1))
        if len(self.mambas) > 2:  # the authors' third branch: channels reversed, flipped back
            branches.append(self.mambas[2](x.flip(2)).flip(2))
        if self.branch_weights is None:
            mixed = branches[0]
            for b in branches[1:]:
                mixed = mixed + b
        else:
            mixed = sum(w * b for w, b in zip(self.branch_weights, branches))
        x = self.norm1(x + mixed)
        return self.norm2(x + self.ff(x))


class SMambaEncoder(nn.Module):
    """S-Mamba over variate tokens: (batch, window, n_features) -> (batch, out_dim)."""

    def __init__(self, n_features: int, window: int, d_model: int = 128, d_state: int = 32, d_ff: int = 128,
                 layers: int = 2, dropout: float = 0.1, d_conv: int = 2, expand: int = 1, out_dim: int = 1000,
                 bidirectional: bool = True, mambas_per_layer: int | None = None, normalise: bool = True,
                 activation: str = "gelu", backend: str = "auto"):
        super().__init__()
        if mambas_per_layer is None:
            mambas_per_layer = 2 if bidirectional else 1
        if bidirectional != (mambas_per_layer > 1):
            raise ValueError(f"bidirectional={bidirectional} contradicts mambas_per_layer={mambas_per_layer} "
                             "(1 = forward only; 2 = forward + reversed tokens; 3 = the authors' Tri-Mamba)")
        if n_features < 1 or window < 1 or layers < 1 or out_dim < 1:
            raise ValueError("n_features, window, layers and out_dim must be positive")
        self.n_features, self.window, self.out_dim, self.normalise = n_features, window, out_dim, normalise
        self.mambas_per_layer = mambas_per_layer
        self.embedding = nn.Linear(window, d_model)  # inverted: a variate's whole window is one token
        self.embed_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(SMambaLayer(d_model, d_state, d_ff, dropout, d_conv, expand, mambas_per_layer,
                                                activation, backend) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.token_head = nn.Linear(d_model, 1)  # one number per variate
        self.projection = nn.Linear(n_features, out_dim)  # the authors' projector to 1000 numbers

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[1:] != (self.window, self.n_features):
            raise ValueError(f"expected x of shape (batch, {self.window}, {self.n_features}), got {tuple(x.shape)}")

    def _moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each variate's window mean and standard deviation, (batch, 1, n_features) each."""
        mean = x.mean(1, keepdim=True)
        std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + NORM_EPS)
        return mean, std

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The encoded variate tokens, (batch, n_features, d_model), after the final LayerNorm."""
        self._check(x)
        if self.normalise:
            mean, std = self._moments(x)
            x = (x - mean) / std
        h = self.embed_dropout(self.embedding(x.transpose(1, 2)))  # (batch, n_features, d_model)
        for layer in self.layers:
            h = layer(h)
        return self.norm(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        per_variate = self.token_head(self.tokens(x)).squeeze(-1)  # (batch, n_features)
        if self.normalise:
            mean, std = self._moments(x)
            per_variate = per_variate * std[:, 0] + mean[:, 0]
        return self.projection(per_variate)


class MambaLLM(nn.Module):
    """S-Mamba on the stock features, text vectors averaged over the window, concatenation, MLP -> (batch,).

    ``text`` is (batch, window, text_dim) (averaged here) or (batch, text_dim) (already a window
    mean). With ``text_dim=0`` the model is S-Mamba without text: the MLP reads ``out_dim``
    numbers and passing text raises ``ValueError``.
    """

    def __init__(self, n_features: int, window: int, text_dim: int = 0, d_model: int = 128, d_state: int = 32,
                 d_ff: int = 128, layers: int = 2, dropout: float = 0.1, d_conv: int = 2, expand: int = 1,
                 out_dim: int = 1000, bidirectional: bool = True, mambas_per_layer: int | None = None,
                 normalise: bool = True, activation: str = "gelu", mlp: tuple[int, ...] = MLP_SIZES,
                 backend: str = "auto"):
        super().__init__()
        if text_dim < 0:
            raise ValueError(f"text_dim must be >= 0, got {text_dim}")
        self.text_dim, self.window = text_dim, window
        self.encoder = SMambaEncoder(n_features, window, d_model=d_model, d_state=d_state, d_ff=d_ff, layers=layers,
                                     dropout=dropout, d_conv=d_conv, expand=expand, out_dim=out_dim,
                                     bidirectional=bidirectional, mambas_per_layer=mambas_per_layer,
                                     normalise=normalise, activation=activation, backend=backend)
        sizes, mods = [out_dim + text_dim, *mlp], []
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods += [nn.Linear(a, b), nn.ReLU()]
        self.mlp = nn.Sequential(*mods, nn.Linear(sizes[-1], 1))

    def text_mean(self, text: torch.Tensor) -> torch.Tensor:
        """The window mean of the text vectors, (batch, text_dim)."""
        if text.ndim == 3 and text.shape[1:] == (self.window, self.text_dim):
            return text.mean(1)
        if text.ndim == 2 and text.shape[1] == self.text_dim:
            return text
        raise ValueError(f"expected text of shape (batch, {self.window}, {self.text_dim}) or (batch, {self.text_dim}),"
                         f" got {tuple(text.shape)}")

    def forward(self, x: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        stock = self.encoder(x)
        if self.text_dim == 0:
            if text is not None:
                raise ValueError("this model was built with text_dim=0 (S-Mamba without text); pass text=None")
            joint = stock
        else:
            if text is None:
                raise ValueError(f"this model reads text of width {self.text_dim}; pass text")
            if len(text) != len(x):
                raise ValueError(f"{len(text)} text rows for {len(x)} windows")
            joint = torch.cat([self.text_mean(text), stock], dim=1)  # the authors' order: text, then stock
        return self.mlp(joint).squeeze(-1)


# --------------------------------------------------------------------------- baselines over days
class RNNForecaster(nn.Module):
    """LSTM or GRU over the window's days; the last layer's final hidden state(s) -> linear -> (batch,).

    Bidirectional: the forward direction's state after the last day and the backward
    direction's after the first day (each has read the whole window), concatenated.
    """

    def __init__(self, n_features: int, window: int, kind: str = "lstm", bidirectional: bool = False,
                 hidden: int = 64, layers: int = 1, dropout: float = 0.1):
        super().__init__()
        if kind not in ("lstm", "gru"):
            raise ValueError(f"kind must be 'lstm' or 'gru', got {kind!r}")
        rnn = nn.LSTM if kind == "lstm" else nn.GRU
        self.kind, self.directions = kind, 2 if bidirectional else 1
        self.rnn = rnn(n_features, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                       dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * self.directions, 1)

    def forward(self, x: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        _no_text(self, text)
        _, h = self.rnn(x)
        h = h[0] if self.kind == "lstm" else h  # (layers * directions, batch, hidden)
        last = torch.cat(list(h[-self.directions:]), dim=-1)
        return self.head(self.dropout(last)).squeeze(-1)


class TransformerForecaster(nn.Module):
    """Transformer encoder over days: Linear(features -> d_model) + learned positions, the last day -> linear."""

    def __init__(self, n_features: int, window: int, d_model: int = 64, heads: int = 4, layers: int = 2,
                 d_ff: int | None = None, dropout: float = 0.1):
        super().__init__()
        self.window = window
        self.inp = nn.Linear(n_features, d_model)
        self.position = nn.Parameter(torch.randn(window, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, heads, d_ff or 2 * d_model, dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        _no_text(self, text)
        if x.shape[1] > self.window:
            raise ValueError(f"window {x.shape[1]} is longer than the {self.window} learned positions")
        h = self.inp(x) + self.position[: x.shape[1]]
        h = self.norm(self.encoder(h))
        return self.head(h[:, -1]).squeeze(-1)


class MambaOverTime(nn.Module):
    """Plain Mamba over days (MambaStock-style): Linear(features -> d_model), pre-norm residual Mamba blocks,
    LayerNorm, the last day's vector -> linear -> (batch,)."""

    def __init__(self, n_features: int, window: int, d_model: int = 64, d_state: int = 16, layers: int = 2,
                 d_conv: int = 4, expand: int = 2, dropout: float = 0.1, backend: str = "auto"):
        super().__init__()
        self.inp = nn.Linear(n_features, d_model)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(layers))
        self.blocks = nn.ModuleList(MambaBlock(d_model, d_state=d_state, d_conv=d_conv, expand=expand,
                                               backend=backend) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        _no_text(self, text)
        h = self.inp(x)
        for norm, block in zip(self.norms, self.blocks):
            h = h + block(norm(h))
        return self.head(self.dropout(self.norm(h[:, -1]))).squeeze(-1)


# --------------------------------------------------------------------------- registry
def _text_free(cls: type[nn.Module], name: str, **fixed) -> Callable[..., nn.Module]:
    def make(n_features: int, window: int, text_dim: int = 0, **overrides) -> nn.Module:
        if text_dim:
            raise ValueError(f"model {name!r} reads no text; text_dim must be 0, got {text_dim}")
        return cls(n_features, window, **(fixed | overrides))

    make.__name__ = f"make_{name}"
    return make


MODELS: dict[str, Callable[..., nn.Module]] = {
    "lstm": _text_free(RNNForecaster, "lstm", kind="lstm", bidirectional=False),
    "gru": _text_free(RNNForecaster, "gru", kind="gru", bidirectional=False),
    "bilstm": _text_free(RNNForecaster, "bilstm", kind="lstm", bidirectional=True),
    "bigru": _text_free(RNNForecaster, "bigru", kind="gru", bidirectional=True),
    "transformer": _text_free(TransformerForecaster, "transformer"),
    "mamba": _text_free(MambaOverTime, "mamba"),
    "smamba": _text_free(functools.partial(MambaLLM, text_dim=0), "smamba"),  # S-Mamba without text
    "mamballm": MambaLLM,  # MambaLLM(n_features, window, text_dim, ...)
}


def build(name: str, n_features: int, window: int, text_dim: int = 0, **overrides) -> nn.Module:
    """The registry's model ``name`` for windows (window, n_features) and text vectors of width ``text_dim``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](n_features, window, text_dim, **overrides)


# --------------------------------------------------------------------------- training
@dataclass
class TrainSettings:
    """Adam on the MSE, mini-batches, early stopping on the validation MSE (best weights restored)."""

    lr: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 50
    patience: int = 5  # epochs without a better validation loss before stopping
    weight_decay: float = 0.0
    #: intra-op CPU threads during the fit (None: torch's setting, restored afterwards). These models are small:
    #: on 2 shared cores one thread is as fast or faster, and two threads can be 100x slower when another
    #: process keeps a core busy (measured: an LSTM epoch 0.026 s with 1 thread, 5.1 s with 2).
    threads: int | None = None


@dataclass
class FitResult:
    """What :func:`fit_predict` returns.

    ``predictions`` mirrors ``X_pred``; ``epochs`` is the epoch (1-based) whose weights were
    kept; ``history`` has one row per epoch run (epoch, train_loss, valid_loss; MSE);
    ``valid_mse`` is the validation MSE with the kept weights.
    """

    predictions: dict[str, np.ndarray] | np.ndarray
    epochs: int
    history: pd.DataFrame
    valid_mse: float


def _text_width(text: torch.Tensor | None, window: int, name: str) -> int:
    if text is None:
        return 0
    if text.ndim == 3 and text.shape[1] != window:
        raise ValueError(f"{name} covers {text.shape[1]} days, the windows {window}")
    return text.shape[-1]


def _batches(n: int):
    return [slice(i, i + PREDICT_BATCH) for i in range(0, n, PREDICT_BATCH)]


def predict(model: nn.Module, x: torch.Tensor, text: torch.Tensor | None = None) -> np.ndarray:
    """The model's outputs for windows ``x`` (and ``text``), in evaluation mode and large batches."""
    model.eval()
    with torch.inference_mode():
        out = [model(x[s], None if text is None else text[s]) for s in _batches(len(x))]
    return torch.cat(out).float().cpu().numpy() if out else np.zeros(0, np.float32)


def _mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor, text: torch.Tensor | None) -> float:
    """Mean squared error over the whole of (x, y), summed in float64 over large batches."""
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for s in _batches(len(x)):
            err = model(x[s], None if text is None else text[s]) - y[s]
            total += float(err.double().square().sum())
    return total / len(x)


def fit_predict(name: str, X_train: np.ndarray, y_train: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray,
                X_pred: dict[str, np.ndarray] | np.ndarray, text_train: np.ndarray | None = None,
                text_valid: np.ndarray | None = None, text_pred: dict[str, np.ndarray] | np.ndarray | None = None,
                settings: TrainSettings | None = None, seed: int = 0, device: str | torch.device | None = None,
                **model_overrides) -> FitResult:
    """Train registry model ``name`` with early stopping on (X_valid, y_valid) and predict ``X_pred``.

    ``X_*`` are windows (n, window, features), ``y_*`` targets (n,); the optional text arrays
    are (n, window, text_dim) or (n, text_dim), given for all of train, valid and pred or for
    none (``text_pred`` mirrors ``X_pred``). ``torch.manual_seed(seed)`` precedes building the
    model (weights, dropout masks), and a ``torch.Generator`` seeded with ``seed`` orders the
    mini-batches, so the same seed gives the same predictions on one device (with
    ``torch.use_deterministic_algorithms(True, warn_only=True)`` on a GPU).
    """
    s = settings or TrainSettings()
    device = pick_device(device)
    xtr, ytr = as_tensor(X_train, device, "X_train", (3,)), as_tensor(y_train, device, "y_train", (1,))
    xva, yva = as_tensor(X_valid, device, "X_valid", (3,)), as_tensor(y_valid, device, "y_valid", (1,))
    check_parts(xtr, ytr, xva, yva)
    window, n_features = xtr.shape[1:]

    given = [t is not None for t in (text_train, text_valid, text_pred)]
    if any(given) and not all(given):
        raise ValueError("give text_train, text_valid and text_pred together, or none of them")
    pred_dict = isinstance(X_pred, dict)
    x_pred = X_pred if pred_dict else {"": X_pred}
    xp = {k: as_tensor(v, device, f"X_pred[{k!r}]", (3,)) for k, v in x_pred.items()}
    ttr = tva = None
    tp: dict[str, torch.Tensor | None] = dict.fromkeys(xp)
    if all(given):
        ttr = as_tensor(text_train, device, "text_train", (2, 3))
        tva = as_tensor(text_valid, device, "text_valid", (2, 3))
        t_pred = text_pred if isinstance(text_pred, dict) else {"": text_pred}
        if set(t_pred) != set(xp):
            raise ValueError(f"text_pred has keys {sorted(t_pred)}, X_pred {sorted(xp)}")
        tp = {k: as_tensor(v, device, f"text_pred[{k!r}]", (2, 3)) for k, v in t_pred.items()}
        for label, t, x in [("text_train", ttr, xtr), ("text_valid", tva, xva)] + [
                (f"text_pred[{k!r}]", tp[k], xp[k]) for k in xp]:
            if len(t) != len(x):
                raise ValueError(f"{label} has {len(t)} rows for {len(x)} windows")
    text_dim = _text_width(ttr, window, "text_train")
    for label, t in [("text_valid", tva), *((f"text_pred[{k!r}]", v) for k, v in tp.items())]:
        if _text_width(t, window, label) != text_dim:
            raise ValueError(f"{label} has width {_text_width(t, window, label)}, text_train {text_dim}")

    with _intra_op_threads(s.threads if device.type == "cpu" else None):
        torch.manual_seed(seed)
        model = build(name, n_features, window, text_dim, **model_overrides).to(device)
        best_epoch, history = _train(model, s, seed, device, (xtr, ytr, ttr), (xva, yva, tva))
        preds = {k: predict(model, xp[k], tp[k]) for k in xp}
        valid_mse = _mse(model, xva, yva, tva)
    return FitResult(predictions=preds if pred_dict else preds[""], epochs=best_epoch, history=history,
                     valid_mse=valid_mse)


@contextlib.contextmanager
def _intra_op_threads(threads: int | None):
    """Run with ``threads`` intra-op CPU threads (None: leave torch's setting), restored afterwards."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _optimizer(model: nn.Module, s: TrainSettings, device: torch.device) -> torch.optim.Optimizer:
    # the fused Adam: one kernel for all parameters (on 2 CPU cores about 5-10% of an epoch of these small models)
    return torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay,
                            fused=device.type in ("cpu", "cuda"))


def _batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, text: torch.Tensor | None
                ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The MSE of the training rows ``idx``."""
    loss_fn = nn.MSELoss()
    return lambda idx: loss_fn(model(x[idx], None if text is None else text[idx]), y[idx])


def _train(model: nn.Module, s: TrainSettings, seed: int, device: torch.device, train: tuple, valid: tuple
           ) -> tuple[int, pd.DataFrame]:
    """Adam on the MSE with early stopping; loads the best epoch's weights; returns (that epoch, history)."""
    (xtr, ytr, ttr), (xva, yva, tva) = train, valid
    return train_early_stopping(model, _optimizer(model, s, device), _batch_loss(model, xtr, ytr, ttr), len(xtr),
                                lambda: _mse(model, xva, yva, tva), s.max_epochs, s.patience, s.batch_size, seed,
                                device)


def train_one_epoch(name: str, X_train: np.ndarray, y_train: np.ndarray, text_train: np.ndarray | None = None,
                    settings: TrainSettings | None = None, seed: int = 0, device: str | torch.device | None = None,
                    **model_overrides) -> tuple[nn.Module, float]:
    """The first training epoch of :func:`fit_predict` with the same arguments (same weights, batches and
    threads), without its validation: (the model after it, seconds of the epoch). For the cost of an epoch
    (``repro.bench``)."""
    s = settings or TrainSettings()
    device = pick_device(device)
    xtr, ytr = as_tensor(X_train, device, "X_train", (3,)), as_tensor(y_train, device, "y_train", (1,))
    ttr = None if text_train is None else as_tensor(text_train, device, "text_train", (2, 3))
    with _intra_op_threads(s.threads if device.type == "cpu" else None):
        torch.manual_seed(seed)
        model = build(name, xtr.shape[2], xtr.shape[1], _text_width(ttr, xtr.shape[1], "text_train"),
                      **model_overrides).to(device)
        seconds = timed_epoch(model, _optimizer(model, s, device), _batch_loss(model, xtr, ytr, ttr), len(xtr),
                              s.batch_size, seed, device)
    return model, seconds
