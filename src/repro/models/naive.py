"""Naive forecasts that need no training; every chapter reports them beside its models.

* persistence -- tomorrow's value is today's (for a next-open target: today's close, or
  today's open);
* momentum -- today's return as the forecast of tomorrow's; across stocks, the ranking
  score of the cross-sectional chapters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..features.technical import returns


def persistence(values: np.ndarray | pd.Series | pd.DataFrame):
    """Forecast of the next value made at t: the value at t (a copy, named for what it is)."""
    return values.copy()


def momentum(close: pd.Series | pd.DataFrame, lookback: int = 1) -> pd.Series | pd.DataFrame:
    """Score at t: the return over the last ``lookback`` days, close_t / close_{t-lookback} - 1."""
    return returns(close, lookback)
