"""Labels (future returns) and their cross-sectional normalisation."""

from __future__ import annotations

import numpy as np
import pandas as pd


def forward_return(close: pd.DataFrame | pd.Series, horizon: int = 1, delay: int = 0):
    """Return from the close of t+delay to the close of t+delay+horizon, stamped at t.

    ``delay=0, horizon=1`` is the next-day return close_{t+1}/close_t - 1 (HIGSTM);
    qlib's ``Ref($close, -2) / Ref($close, -1) - 1`` is ``delay=1, horizon=1``.
    This is a *label*: it looks ahead by design and must never be used as a feature.
    """
    if horizon < 1 or delay < 0:
        raise ValueError("horizon must be >= 1 and delay >= 0")
    return close.shift(-(delay + horizon)) / close.shift(-delay) - 1.0


def cs_zscore(values: pd.DataFrame) -> pd.DataFrame:
    """Z-score across stocks on each date (rows are dates, columns stocks); NaN ignored."""
    mean = values.mean(axis=1)
    std = values.std(axis=1, ddof=0).replace(0, np.nan)
    return values.sub(mean, axis=0).div(std, axis=0)


def cs_rank(values: pd.DataFrame) -> pd.DataFrame:
    """qlib's CSRankNorm: percentile rank across stocks per date, centred and scaled.

    ``(rank_pct - 0.5) * 3.46`` -- 3.46 = sqrt(12) makes a uniform variable unit-variance.
    """
    return (values.rank(axis=1, pct=True) - 0.5) * 3.46


def cs_zscore_array(values: np.ndarray) -> np.ndarray:
    """Array version of :func:`cs_zscore` for (days, stocks)."""
    mean = np.nanmean(values, axis=1, keepdims=True)
    std = np.nanstd(values, axis=1, keepdims=True)
    std = np.where(std > 0, std, np.nan)
    return (values - mean) / std
