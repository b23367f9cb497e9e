"""Naive baselines that need no training; every chapter reports them.

* persistence: tomorrow's value is today's (for a next-open target: today's close, or
  today's open);
* momentum: today's return again (for cross-sectional rankings: yesterday's return
  as the score).
"""

from __future__ import annotations

import pandas as pd


def persistence(values: pd.Series | pd.DataFrame) -> pd.Series | pd.DataFrame:
    """Forecast of the next value made at t: the value at t (identity, named for clarity)."""
    return values.copy()


def momentum_score(close: pd.DataFrame, lookback: int = 1) -> pd.DataFrame:
    """Cross-sectional score at t: the stock's return over the last ``lookback`` days."""
    return close / close.shift(lookback) - 1.0
