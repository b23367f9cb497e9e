"""Features from dated texts (tweets, headlines): when a text is known, and what a day may use.

A text posted before the US market close (16:00 New York time) of a trading day is known
at that day's close; one posted later (or on a weekend or holiday) is known at the next
trading day's close. Features of day t use only texts known at the close of t.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

US_CLOSE = "16:00"
US_TZ = "America/New_York"


def known_at_close(timestamps: pd.Series | pd.DatetimeIndex, calendar: pd.DatetimeIndex,
                   tz: str = US_TZ, close: str = US_CLOSE) -> pd.DatetimeIndex:
    """The trading day (from ``calendar``) at whose close each timestamp is known.

    Timestamps must be timezone-aware. Texts after the calendar's last day get NaT.
    """
    ts = pd.DatetimeIndex(timestamps)
    if ts.tz is None:
        raise ValueError("timestamps must be timezone-aware (StockNet's are UTC)")
    local = ts.tz_convert(tz)
    day = local.tz_localize(None).normalize()
    hh, mm = (int(x) for x in close.split(":"))
    minutes = local.hour * 60 + local.minute
    day = day.where(minutes < hh * 60 + mm, day + pd.Timedelta(days=1))  # after the close: next day
    cal = pd.DatetimeIndex(calendar).normalize()
    pos = cal.searchsorted(day)  # first trading day on or after
    out = np.full(len(day), np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = pos < len(cal)
    out[ok] = cal.values[pos[ok]]
    return pd.DatetimeIndex(out)


def daily_totals(items: pd.DataFrame, calendar: pd.DatetimeIndex, tickers: list[str],
                 value: str = "score") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sum of ``value`` and count of texts per (trading day, ticker), by the day they are known.

    ``items`` needs columns ``timestamp`` (tz-aware), ``ticker`` and ``value``. Returns two
    (calendar x tickers) frames, zeros where there is nothing.
    """
    session = known_at_close(items["timestamp"], calendar)
    frame = pd.DataFrame({"session": session, "ticker": items["ticker"].to_numpy(),
                          "value": items[value].to_numpy(float) if value in items else 1.0})
    frame = frame.dropna(subset=["session"])
    grouped = frame.groupby(["session", "ticker"])["value"]
    cal = pd.DatetimeIndex(calendar)
    total = grouped.sum().unstack("ticker").reindex(index=cal, columns=tickers).fillna(0.0)
    count = grouped.size().unstack("ticker").reindex(index=cal, columns=tickers).fillna(0).astype(float)
    return total, count


def trailing_mean(total: pd.DataFrame, count: pd.DataFrame, window: int, empty: float = 0.0) -> pd.DataFrame:
    """Mean over the last ``window`` trading days (inclusive) of texts known by each day's close.

    Days whose window holds no text get ``empty`` (0 = neutral sentiment).
    """
    s = total.rolling(window, min_periods=1).sum()
    n = count.rolling(window, min_periods=1).sum()
    return (s / n.where(n > 0)).fillna(empty)


def trailing_count(count: pd.DataFrame, window: int) -> pd.DataFrame:
    """Number of texts known over the last ``window`` trading days."""
    return count.rolling(window, min_periods=1).sum()


def calendar_week_mean(items: pd.DataFrame, calendar: pd.DatetimeIndex, tickers: list[str],
                       value: str = "score", empty: float = 0.0) -> pd.DataFrame:
    """Paper 002's weekly sentiment: the mean over the *calendar week* containing each day.

    This looks ahead: Monday's value averages texts of Tuesday to Sunday too. It exists to
    reproduce the paper and measure what the leak is worth; never use it as a feature.
    """
    week = lambda d: pd.DatetimeIndex(d).to_period("W").start_time  # noqa: E731
    frame = pd.DataFrame({"week": week(items["timestamp"].dt.tz_convert(US_TZ).dt.tz_localize(None)),
                          "ticker": items["ticker"].to_numpy(), "value": items[value].to_numpy(float)})
    means = frame.groupby(["week", "ticker"])["value"].mean().unstack("ticker").reindex(columns=tickers)
    cal = pd.DatetimeIndex(calendar)
    return means.reindex(week(cal)).set_axis(cal).fillna(empty)
