"""Sliding windows: the samples a sequence model sees.

A sample with decision date t holds the features of days t-w+1..t (nothing after t)
and the target of day t+h. Windows are numpy views (no copies) until a model asks
for a contiguous array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view


def sliding_windows(values: np.ndarray, window: int) -> np.ndarray:
    """``(T, ...) -> (T - window + 1, window, ...)``; element i covers rows i..i+window-1."""
    values = np.asarray(values)
    if window < 1 or window > len(values):
        raise ValueError(f"window must be between 1 and the series length {len(values)}, got {window}")
    view = sliding_window_view(values, window, axis=0)  # (T-w+1, ..., w)
    return np.moveaxis(view, -1, 1)


@dataclass
class Windows:
    """Supervised samples from one series."""

    X: np.ndarray  # (n, window, n_features), float32
    y: np.ndarray  # (n,), float64 target at t + horizon
    dates: pd.DatetimeIndex  # decision dates t
    target_dates: pd.DatetimeIndex  # t + horizon
    features: list[str]

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> "Windows":
        return Windows(self.X[mask], self.y[mask], self.dates[mask], self.target_dates[mask], self.features)


def make_windows(frame: pd.DataFrame, features: list[str], target: str, window: int, horizon: int = 1) -> Windows:
    """Windows of ``features`` (days t-window+1..t) with ``target`` at day t+horizon.

    ``frame`` is indexed by date in increasing order. Samples with a missing feature or
    target are dropped. ``horizon=0`` means ``target`` is already a future quantity.
    """
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0 (the target lies at t + horizon), got {horizon}")
    if not frame.index.is_monotonic_increasing:
        raise ValueError("frame must be sorted by date (increasing) before windowing")
    missing = [c for c in [*features, target] if c not in frame.columns]
    if missing:
        raise KeyError(f"columns {missing} not in frame; it has {list(frame.columns)}")
    values = frame[features].to_numpy(dtype=np.float32)
    X = sliding_windows(values, window)  # row i -> decision day i + window - 1
    decision = np.arange(window - 1, len(frame))
    target_pos = decision + horizon
    keep = target_pos < len(frame)
    decision, target_pos, X = decision[keep], target_pos[keep], X[keep]
    y = frame[target].to_numpy(dtype=np.float64)[target_pos]
    ok = np.isfinite(y) & np.isfinite(X).all(axis=(1, 2))
    dates = frame.index[decision]
    return Windows(np.ascontiguousarray(X[ok]), y[ok], dates[ok], frame.index[target_pos][ok], list(features))


def panel_windows(cube: np.ndarray, window: int) -> np.ndarray:
    """``(T, N, F) -> (T - window + 1, N, window, F)`` view for panels (all stocks at once)."""
    view = sliding_window_view(np.asarray(cube), window, axis=0)  # (T-w+1, N, F, w)
    return np.moveaxis(view, -1, 2)
