"""What the single-stock networks share: input checks and mini-batch training with early stopping.

Used by :mod:`repro.models.convlstm` (paper 001) and :mod:`repro.models.smamba` (paper 000):
each builds its model, optimiser and per-batch loss, and hands the epoch loop to
:func:`train_early_stopping` (or times one epoch of it with :func:`timed_epoch`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

HISTORY_COLUMNS = ["epoch", "train_loss", "valid_loss"]


def pick_device(device: str | torch.device | None) -> torch.device:
    """``device``, or CUDA when there is one, else the CPU."""
    return torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))


def as_tensor(a, device, name: str, ndims: tuple[int, ...]) -> torch.Tensor:
    """A finite float32 tensor on ``device`` with one of ``ndims`` dimensions (else a ValueError naming it)."""
    a = np.asarray(a, dtype=np.float32)
    if a.ndim not in ndims:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndims))} dimensions, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


def check_parts(xtr: torch.Tensor, ytr: torch.Tensor, xva: torch.Tensor, yva: torch.Tensor) -> None:
    """Training and validation windows: equal lengths of X and y, neither part empty, the same window shape."""
    if len(xtr) != len(ytr) or len(xva) != len(yva):
        raise ValueError("X and y must have the same number of samples")
    if len(xtr) == 0 or len(xva) == 0:
        raise ValueError("training and validation parts must not be empty")
    if xva.shape[1:] != xtr.shape[1:]:
        raise ValueError(f"validation windows {tuple(xva.shape[1:])} differ from training {tuple(xtr.shape[1:])}")


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batch_loss: Callable[[torch.Tensor], torch.Tensor],
                n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> float:
    """One pass over the ``n`` training rows in mini-batches of a permutation drawn from ``generator`` (a CPU
    generator, so the batches are the same on any device); the epoch's mean training loss."""
    model.train()
    order = torch.randperm(n, generator=generator).to(device)
    total = torch.zeros((), device=device)  # summed on the device: no synchronisation per batch
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        loss = batch_loss(idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(idx)
    return float(total) / n


def timed_epoch(model: nn.Module, optimizer: torch.optim.Optimizer,
                batch_loss: Callable[[torch.Tensor], torch.Tensor], n: int, batch_size: int, seed: int,
                device: torch.device) -> float:
    """Seconds of the first epoch :func:`train_early_stopping` would run with ``seed`` (same batches), without
    its validation: the cost of one epoch (``python -m repro.bench``)."""
    start = time.perf_counter()
    train_epoch(model, optimizer, batch_loss, n, batch_size, torch.Generator().manual_seed(seed), device)
    return time.perf_counter() - start  # float() of the loss inside waited for the device


def train_early_stopping(model: nn.Module, optimizer: torch.optim.Optimizer,
                         batch_loss: Callable[[torch.Tensor], torch.Tensor], n: int,
                         valid_loss: Callable[[], float], max_epochs: int, patience: int, batch_size: int,
                         seed: int, device: torch.device) -> tuple[int, pd.DataFrame]:
    """Mini-batch training until the validation loss has not improved for ``patience`` epochs.

    ``batch_loss(idx)`` is the mean loss of the training rows ``idx``; ``valid_loss()`` the
    validation loss of the current model. Batches come from a permutation drawn by a CPU
    ``torch.Generator`` seeded with ``seed`` (the same batches on any device). The best
    epoch's weights are loaded back. Returns (that epoch, 1-based; the history per epoch).
    """
    generator = torch.Generator().manual_seed(seed)
    best_loss, best_epoch, best_state, waited = float("inf"), 0, None, 0
    history = []
    for epoch in range(1, max_epochs + 1):
        train_loss = train_epoch(model, optimizer, batch_loss, n, batch_size, generator, device)
        current = valid_loss()
        history.append((epoch, train_loss, current))
        if current < best_loss:
            best_loss, best_epoch, waited = current, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:  # None only when every validation loss was NaN
        model.load_state_dict(best_state)
    return best_epoch, pd.DataFrame(history, columns=HISTORY_COLUMNS)


__all__ = ["HISTORY_COLUMNS", "as_tensor", "check_parts", "pick_device", "timed_epoch", "train_early_stopping",
           "train_epoch"]
