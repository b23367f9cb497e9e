"""Scalers that are fitted on the training part only.

Each scaler remembers what it was fitted on (row count and, when given, the date
range), so a notebook can print it and a test can assert that the fit ended before
the validation and test periods began.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KINDS = ("standard", "minmax", "robust")


class Scaler:
    """Per-feature scaling along the last axis, fitted on training data only.

    * ``standard``: (x - mean) / std
    * ``minmax``:   (x - min) / (max - min), into [0, 1] on the training range
    * ``robust``:   (x - median) / (1.4826 * MAD), clipped to +-``clip`` (qlib's RobustZScoreNorm)
    """

    def __init__(self, kind: str = "standard", clip: float | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown scaler kind {kind!r}; choose one of {KINDS}")
        self.kind = kind
        self.clip = 3.0 if (clip is None and kind == "robust") else clip
        self.center_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.fitted_rows: int = 0
        self.fitted_dates: tuple[pd.Timestamp, pd.Timestamp] | None = None

    def fit(self, x: np.ndarray, dates=None) -> "Scaler":
        """Fit on training values (any shape; statistics per last-axis feature, NaN ignored)."""
        x = np.asarray(x)
        if x.ndim == 1:  # one feature
            x = x[:, None]
        flat = x.reshape(-1, x.shape[-1])
        center, scale = np.empty(flat.shape[1]), np.empty(flat.shape[1])
        # a few columns at a time in float64: a float64 copy of a wide training matrix (Alpha360's
        # 360 columns over 360,000 rows) would cost gigabytes for no gain in precision per column
        step = max(1, (1 << 24) // max(1, flat.shape[0]))
        for lo in range(0, flat.shape[1], step):
            cols = np.asarray(flat[:, lo: lo + step], dtype=np.float64)
            if self.kind == "standard":
                c, sc = np.nanmean(cols, axis=0), np.nanstd(cols, axis=0)
            elif self.kind == "minmax":
                c = np.nanmin(cols, axis=0)
                sc = np.nanmax(cols, axis=0) - c
            else:
                c = np.nanmedian(cols, axis=0)
                sc = 1.4826 * np.nanmedian(np.abs(cols - c), axis=0)
            center[lo: lo + step], scale[lo: lo + step] = c, sc
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)  # constant feature: leave unscaled
        self.center_, self.scale_ = center, scale
        self.fitted_rows = flat.shape[0]
        if dates is not None:
            d = pd.DatetimeIndex(dates)
            self.fitted_dates = (d.min(), d.max())
        return self

    def _check(self) -> None:
        if self.center_ is None:
            raise RuntimeError("Scaler is not fitted: call fit(train_values) first")

    def transform(self, x: np.ndarray) -> np.ndarray:
        self._check()
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1 and self.center_.size == 1:
            return self.transform(x[:, None])[:, 0]
        out = (x - self.center_) / self.scale_
        if self.clip is not None:
            out = np.clip(out, -self.clip, self.clip)
        return out.astype(np.float32)

    def inverse_transform(self, x: np.ndarray, feature: int | None = None) -> np.ndarray:
        """Undo the scaling (for one ``feature`` column when ``x`` holds a single target)."""
        self._check()
        center = self.center_ if feature is None else self.center_[feature]
        scale = self.scale_ if feature is None else self.scale_[feature]
        return np.asarray(x, dtype=np.float64) * scale + center

    def describe(self) -> str:
        when = (f" on {self.fitted_dates[0]:%Y-%m-%d}..{self.fitted_dates[1]:%Y-%m-%d}"
                if self.fitted_dates else "")
        return f"{self.kind} scaler fitted{when} ({self.fitted_rows} rows)"
