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


def cap_per_day(items: pd.DataFrame, max_per_day: int | None, day: pd.Series) -> np.ndarray:
    """Mask keeping at most ``max_per_day`` texts per ticker and ``day`` (all when None), chosen by a hash
    of ticker, timestamp and text: deterministic, and independent of the order of ``items``."""
    if not max_per_day:
        return np.ones(len(items), bool)
    key = pd.util.hash_pandas_object(items[["ticker", "timestamp", "text"]], index=False).to_numpy()
    rank = pd.DataFrame({"ticker": items["ticker"], "day": day, "k": key}).groupby(["ticker", "day"])["k"].rank(
        method="first")
    return (rank <= max_per_day).to_numpy()


# --------------------------------------------------------------------------- paper 001's weighted daily score
def date_only_timestamps(dates: pd.Series | pd.DatetimeIndex, assume: str = "after_close",
                         tz: str = US_TZ) -> pd.DatetimeIndex:
    """Timestamps for texts that carry a date but no time (Reuters), for :func:`known_at_close`.

    ``assume="after_close"`` (the safe rule) stamps each text at 23:59 New York time: a story
    dated d may have appeared after the close of d, so it counts for the next trading day.
    ``"before_close"`` stamps it at 00:00 of d, so it counts for d itself when d is a trading
    day -- optimistic: a story published at 18:00 then informs the close of 16:00.
    """
    day = pd.DatetimeIndex(dates).normalize()
    if assume == "after_close":
        day = day + pd.Timedelta(hours=23, minutes=59)
    elif assume != "before_close":
        raise ValueError(f"assume={assume!r}: choose 'after_close' (safe) or 'before_close'")
    return day.tz_localize(tz)


def follower_weight(followers: pd.Series | np.ndarray, cap: float = 1e7) -> np.ndarray:
    """A tweet's reputation weight in [0, 1]: log(1 + followers) / log(1 + cap), clipped at 1.

    A fixed ``cap`` rather than the largest follower count in the data keeps the weight of a
    tweet independent of later tweets (no look-ahead) and on the same 0..1 scale as an
    outlet weight.
    """
    f = np.clip(np.asarray(followers, float), 0.0, None)
    return np.clip(np.log1p(f) / np.log1p(cap), 0.0, 1.0)


def weighted_daily_score(items: pd.DataFrame, calendar: pd.DatetimeIndex, tickers: list[str],
                         value: str = "score", weight: str = "weight") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weighted mean score of the texts known at each day's close and not before [001 VI-E.2].

    The paper prints W_cs = sum_i (w_i x_i) / w_i, which cancels the weights (it is the plain
    sum of the scores); its text describes an average of weighted scores, so this is the
    weighted mean sum_i w_i x_i / sum_i w_i. ``items`` has ``timestamp`` (tz-aware),
    ``ticker``, ``value`` and ``weight``. Returns (score, count), both (calendar x tickers);
    the score is NaN on a day without texts (or whose texts all weigh 0): see
    :func:`fill_textless_days`.
    """
    w = items[weight].to_numpy(float)
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("text weights must be finite and non-negative")
    weighted = items.assign(_wx=w * items[value].to_numpy(float), _w=w)
    total, count = daily_totals(weighted, calendar, tickers, value="_wx")
    mass, _ = daily_totals(weighted, calendar, tickers, value="_w")
    return total / mass.where(mass > 0), count


def fill_textless_days(score: pd.DataFrame, policy: str = "carry") -> pd.DataFrame:
    """What a day without texts gets: ``carry`` the last known score forward (0 before the first),
    ``zero`` (neutral), or ``drop`` (left NaN: the caller drops those days)."""
    if policy == "carry":
        return score.ffill().fillna(0.0)
    if policy == "zero":
        return score.fillna(0.0)
    if policy == "drop":
        return score
    raise ValueError(f"policy={policy!r}: choose carry, zero or drop")
