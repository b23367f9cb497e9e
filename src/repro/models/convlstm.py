"""Level 1 of paper 001: the conv-LSTM that gives the "naive" forecast from the price history (section VI-B).

Input windows ``x`` of shape (batch, window, features) (the features are the convolution's
channels, the "stock attributes" of the paper) go through ``conv_layers`` Conv1D + ReLU
layers with "same" padding (so a window of length 1 works), dropout, an LSTM over the window's
time steps, and a linear head on the LSTM's last output: one value per window.

Loss: the paper writes MSE and recommends the Huber loss [001 VI-B],
``1/2 (y - y')^2`` where ``|y - y'| <= delta``, else ``delta (|y - y'| - delta/2)``; this is
``torch.nn.HuberLoss(delta=...)`` (mean over the batch). Adam, mini-batches from a seeded
permutation, early stopping on the validation loss with the best weights restored.

Where the paper is silent we chose: ReLU after each convolution, dropout after the
convolutions and before the head (and between LSTM layers when there are several), the LSTM's
last time step as the window's summary, and the sizes of :class:`ConvLSTMSettings`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .training import as_tensor, check_parts, pick_device, timed_epoch, train_early_stopping

LOSSES = ("huber", "mse")
PREDICT_BATCH = 8192


@dataclass
class ConvLSTMSettings:
    """Architecture and training settings of the conv-LSTM."""

    filters: int = 32
    kernel_size: int = 3
    conv_layers: int = 1
    hidden: int = 32
    lstm_layers: int = 1
    dropout: float = 0.1
    loss: str = "huber"  # "huber" (the paper's recommendation) or "mse"
    huber_delta: float = 1.0
    lr: float = 1e-3  # Adam
    batch_size: int = 32
    max_epochs: int = 50
    patience: int = 5  # epochs without a better validation loss before stopping


@dataclass
class FitResult:
    """What :func:`fit_predict` returns.

    ``predictions`` mirrors ``X_pred`` (a dict of arrays or one array); ``epochs`` is the epoch
    (1-based) whose weights were kept; ``history`` has one row per epoch run (epoch,
    train_loss, valid_loss); ``valid_mse`` is the MSE on the validation part with those weights.
    """

    predictions: dict[str, np.ndarray] | np.ndarray
    epochs: int
    history: pd.DataFrame
    valid_mse: float


class ConvLSTM(nn.Module):
    """Conv1D layers over the window (channels = features), an LSTM, a linear head: (batch, window, F) -> (batch,)."""

    def __init__(self, n_features: int, settings: ConvLSTMSettings | None = None):
        super().__init__()
        s = settings or ConvLSTMSettings()
        if s.conv_layers < 1 or s.lstm_layers < 1:
            raise ValueError("need at least one convolution and one LSTM layer")
        convs, channels = [], n_features
        for _ in range(s.conv_layers):
            # "same" padding, the extra zero on the right for even kernels (as padding="same" does, without its
            # warning for even kernels)
            pad = ((s.kernel_size - 1) // 2, s.kernel_size // 2)
            convs += [nn.ConstantPad1d(pad, 0.0), nn.Conv1d(channels, s.filters, s.kernel_size), nn.ReLU()]
            channels = s.filters
        self.conv = nn.Sequential(*convs)
        self.dropout = nn.Dropout(s.dropout)
        self.lstm = nn.LSTM(s.filters, s.hidden, num_layers=s.lstm_layers, batch_first=True,
                            dropout=s.dropout if s.lstm_layers > 1 else 0.0)
        self.head = nn.Linear(s.hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.transpose(1, 2))  # (batch, filters, window)
        h = self.dropout(h.transpose(1, 2))  # (batch, window, filters)
        out, _ = self.lstm(h)
        return self.head(self.dropout(out[:, -1])).squeeze(-1)


def make_loss(settings: ConvLSTMSettings) -> nn.Module:
    """The training loss: Huber with ``huber_delta`` [001 VI-B] or MSE."""
    if settings.loss == "huber":
        return nn.HuberLoss(delta=settings.huber_delta)
    if settings.loss == "mse":
        return nn.MSELoss()
    raise ValueError(f"loss must be one of {LOSSES}, got {settings.loss!r}")


def predict(model: nn.Module, x: np.ndarray | torch.Tensor, device=None) -> np.ndarray:
    """Predictions of a trained model for windows ``x`` (n, window, features), in large batches."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    xt = x.to(device) if isinstance(x, torch.Tensor) else as_tensor(x, device, "X", (3,))
    model.eval()
    with torch.inference_mode():
        out = [model(xt[i:i + PREDICT_BATCH]) for i in range(0, len(xt), PREDICT_BATCH)]
    return torch.cat(out).float().cpu().numpy() if out else np.zeros(0, np.float32)


def _mean_loss(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean of ``loss_fn`` over the whole of (x, y), evaluated in large batches."""
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(x), PREDICT_BATCH):
            xb, yb = x[i:i + PREDICT_BATCH], y[i:i + PREDICT_BATCH]
            total += float(loss_fn(model(xb), yb)) * len(xb)
    return total / len(x)


def _setup(n_features: int, s: ConvLSTMSettings, seed: int, device: torch.device
           ) -> tuple[ConvLSTM, nn.Module, torch.optim.Optimizer]:
    """The seeded model, its loss and its optimiser, as every fit starts."""
    torch.manual_seed(seed)
    model = ConvLSTM(n_features, s).to(device)
    return model, make_loss(s), torch.optim.Adam(model.parameters(), lr=s.lr)


def train_one_epoch(X_train: np.ndarray, y_train: np.ndarray, settings: ConvLSTMSettings | None = None,
                    seed: int = 0, device: str | torch.device | None = None) -> tuple[ConvLSTM, float]:
    """The first training epoch of :func:`fit_predict` with the same ``seed`` (same weights and batches), without
    its validation: (the model after it, seconds of the epoch). For the cost of an epoch (``repro.bench``)."""
    s = settings or ConvLSTMSettings()
    device = pick_device(device)
    xtr, ytr = as_tensor(X_train, device, "X_train", (3,)), as_tensor(y_train, device, "y_train", (1,))
    model, loss_fn, optimizer = _setup(xtr.shape[2], s, seed, device)
    seconds = timed_epoch(model, optimizer, lambda idx: loss_fn(model(xtr[idx]), ytr[idx]), len(xtr),
                          s.batch_size, seed, device)
    return model, seconds


def fit_predict(X_train: np.ndarray, y_train: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray,
                X_pred: dict[str, np.ndarray] | np.ndarray, settings: ConvLSTMSettings | None = None, seed: int = 0,
                device: str | torch.device | None = None) -> FitResult:
    """Train a :class:`ConvLSTM` with early stopping on (X_valid, y_valid) and predict ``X_pred``.

    ``X_*`` are windows of shape (n, window, features), ``y_*`` targets of shape (n,). The
    same ``seed`` gives the same weights, batches, dropout masks and so predictions (on one
    device, with deterministic algorithms on).
    """
    s = settings or ConvLSTMSettings()
    device = pick_device(device)
    xtr, ytr = as_tensor(X_train, device, "X_train", (3,)), as_tensor(y_train, device, "y_train", (1,))
    xva, yva = as_tensor(X_valid, device, "X_valid", (3,)), as_tensor(y_valid, device, "y_valid", (1,))
    check_parts(xtr, ytr, xva, yva)

    model, loss_fn, optimizer = _setup(xtr.shape[2], s, seed, device)
    best_epoch, history = train_early_stopping(
        model, optimizer, lambda idx: loss_fn(model(xtr[idx]), ytr[idx]), len(xtr),
        lambda: _mean_loss(model, loss_fn, xva, yva), s.max_epochs, s.patience, s.batch_size, seed, device)

    valid_mse = _mean_loss(model, nn.MSELoss(), xva, yva)
    if isinstance(X_pred, dict):
        predictions: dict[str, np.ndarray] | np.ndarray = {k: predict(model, v, device) for k, v in X_pred.items()}
    else:
        predictions = predict(model, X_pred, device)
    return FitResult(predictions=predictions, epochs=best_epoch, history=history, valid_mse=valid_mse)
