"""Standard technical indicators, causal by construction (the value at t uses rows <= t).

Every function takes a Series (one stock) or a DataFrame (dates x stocks) and returns
the same shape, so a whole universe is computed at once without a loop over stocks.
"""

from __future__ import annotations

import pandas as pd

Frame = pd.Series | pd.DataFrame


def returns(close: Frame, periods: int = 1) -> Frame:
    """Simple return close_t / close_{t-periods} - 1."""
    return close / close.shift(periods) - 1.0


def log_returns(close: Frame, periods: int = 1) -> Frame:
    import numpy as np

    return np.log(close / close.shift(periods))


def sma(x: Frame, n: int) -> Frame:
    """Simple moving average over the last ``n`` rows (NaN until ``n`` rows exist)."""
    return x.rolling(n, min_periods=n).mean()


def ema(x: Frame, n: int) -> Frame:
    """Exponential moving average with span ``n`` (recursive form, no look-ahead)."""
    return x.ewm(span=n, adjust=False, min_periods=1).mean()


def rsi(close: Frame, n: int = 14) -> Frame:
    """Relative strength index with Wilder's smoothing (alpha = 1/n), in [0, 100]."""
    delta = close.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / n, adjust=False, min_periods=n).mean()
    rs = gain / loss
    return 100 - 100 / (1 + rs)


def macd(close: Frame, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[Frame, Frame, Frame]:
    """MACD line (EMA fast - EMA slow), its signal line (EMA of it) and the histogram."""
    line = ema(close, fast) - ema(close, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def bollinger(close: Frame, n: int = 20, k: float = 2.0) -> tuple[Frame, Frame, Frame]:
    """Bollinger bands: (middle = SMA n, upper = middle + k sd, lower = middle - k sd)."""
    mid = sma(close, n)
    sd = close.rolling(n, min_periods=n).std(ddof=0)
    return mid, mid + k * sd, mid - k * sd


def volatility(close: Frame, n: int = 20) -> Frame:
    """Rolling standard deviation of daily returns over ``n`` days."""
    return returns(close).rolling(n, min_periods=n).std()


def indicator_frame(ohlcv: pd.DataFrame) -> pd.DataFrame:
    """OHLCV of one stock plus SMA10, SMA50, EMA10, Bollinger(20, 2), MACD(12, 26) and RSI(14).

    The indicator set MambaLLM's authors feed their model.
    """
    close = ohlcv["close"]
    out = ohlcv[["open", "high", "low", "close", "volume"]].copy()
    out["sma10"] = sma(close, 10)
    out["sma50"] = sma(close, 50)
    out["ema10"] = ema(close, 10)
    _, out["bb_upper"], out["bb_lower"] = bollinger(close, 20, 2.0)
    out["macd"], _, _ = macd(close)
    out["rsi"] = rsi(close, 14)
    return out
