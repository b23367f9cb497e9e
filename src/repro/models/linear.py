"""Linear floors: closed-form models that any trained network must beat.

:class:`CrossSectionalRidge` ranks stocks by a ridge regression of the label on the day's
features, pooled over every training day after removing each day's cross-sectional mean
from features and label (only differences between stocks on the same day can rank them).
It needs no epochs, seeds or learning rate, so it shows what the features give linearly
whatever the training budget.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def rank_label(label: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each day's label as its cross-sectional rank: (percentile - 0.5) x 3.46, ties averaged
    (qlib's ``CSRankNorm``); NaN where ``valid`` is False or the label is missing. Rows are days."""
    frame = pd.DataFrame(np.where(valid, label, np.nan))
    return ((frame.rank(axis=1, pct=True) - 0.5) * 3.46).to_numpy(np.float32)


def _demeaned(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x`` (days, stocks[, features]) minus each day's mean over the masked stocks; zero where not masked."""
    extra = (1,) * (x.ndim - 2)
    m = mask.reshape(mask.shape + extra)
    n = np.maximum(mask.sum(axis=1), 1).reshape((-1, 1) + extra)
    return np.where(m, x - np.where(m, x, 0.0).sum(axis=1, keepdims=True) / n, 0.0)


class CrossSectionalRidge:
    """Ridge regression of the day-demeaned label on day-demeaned features, all days pooled."""

    def __init__(self, penalty: float = 1e-3):
        self.penalty = float(penalty)
        self.coef_: np.ndarray | None = None

    def fit(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> "CrossSectionalRidge":
        """``x`` (days, stocks, features), ``y`` (days, stocks), ``mask`` (days, stocks): rows that count."""
        mask = mask & np.isfinite(y) & np.isfinite(x).all(axis=-1)
        if mask.sum() <= x.shape[-1]:
            raise ValueError(f"{int(mask.sum())} labelled rows cannot fit {x.shape[-1]} coefficients")
        xd = _demeaned(np.nan_to_num(x).astype(np.float64), mask)
        yd = _demeaned(np.nan_to_num(y).astype(np.float64), mask)
        n = int(mask.sum())
        gram = np.einsum("dsf,dsg->fg", xd, xd) / n
        # the penalty scales with the features' mean variance, so it means the same for any scaling
        ridge = self.penalty * np.trace(gram) / gram.shape[0] * np.eye(gram.shape[0])
        self.coef_ = np.linalg.solve(gram + ridge, np.einsum("dsf,ds->f", xd, yd) / n)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Scores (days, stocks) of features (days, stocks, features); NaN where a feature is missing."""
        if self.coef_ is None:
            raise RuntimeError("call fit() before predict()")
        return (x.astype(np.float64) @ self.coef_).astype(np.float32)


__all__ = ["CrossSectionalRidge", "rank_label"]
