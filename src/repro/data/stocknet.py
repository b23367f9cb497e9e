"""StockNet (Xu & Cohen, ACL 2018): daily prices of 88 US stocks, sectors and tweets.

Upstream: ``yumoxu/stocknet-dataset`` (MIT). Prices 2012-09-04..2017-09-01 for all
88 tickers; preprocessed tweets (tokenised text, user id, time) for 87 tickers,
2014-01-01..2015-12-31; raw Twitter API JSON (with follower, retweet and favourite
counts) for AAPL, AMZN, FB, GOOG and MSFT only, 2014-01-01..2016-03-31.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ._frames import check_names, check_window
from ._store import FileSet, Source, UnknownKeyError, Upstream, cached_parquet, read_text

SOURCE = Source(
    "stocknet",
    "StockNet prices, sectors and tweets",
    {"stocknet": Upstream("yumoxu/stocknet-dataset", "330708b5ddc359961078bef469f43f48992fd6e4", "MIT")},
)

#: Tickers with raw tweets (follower / retweet counts) in the mirror.
RAW_TWEET_TICKERS = ("AAPL", "AMZN", "FB", "GOOG", "MSFT")

PRICE_COLUMNS = ["open", "high", "low", "close", "adj_close", "volume"]


def stock_table() -> pd.DataFrame:
    """The 88 tickers with their sector and company name (upstream ``StockTable``).

    Sector names are kept as upstream spells them (e.g. "Basic Matierials").
    """
    path = SOURCE.file("stocknet/StockTable", "stocknet", "StockTable")
    rows = [line.split("\t") for line in read_text(path).splitlines()[1:] if line.strip()]
    table = pd.DataFrame(
        [(sym.strip().lstrip("$"), sector.strip(), company.strip()) for sector, sym, company in rows],
        columns=["ticker", "sector", "company"],
    )
    return table.set_index("ticker")


def tickers() -> list[str]:
    """All 88 StockNet tickers, sorted."""
    return sorted(stock_table().index)


def _check_tickers(values: str | Iterable[str]) -> list[str]:
    return check_names(values, tickers(), "StockNet ticker")


def prices(ticker: str, start: object = None, end: object = None) -> pd.DataFrame:
    """Daily OHLCV of one ticker: DatetimeIndex ``date`` x open, high, low, close, adj_close, volume.

    ``start``/``end`` (inclusive) must lie within the ticker's data (2012-09-04..2017-09-01).
    Upstream rows without any value (three tickers, one day each) are dropped.
    """
    if not isinstance(ticker, str):
        raise TypeError("prices() takes one ticker; use prices_panel() for several")
    _check_tickers([ticker])
    path = SOURCE.file(f"stocknet/price/raw/{ticker}.csv.gz", "stocknet", f"price/raw/{ticker}.csv")
    frame = pd.read_csv(path, parse_dates=["Date"])
    frame.columns = ["date", *PRICE_COLUMNS]
    # Yahoo wrote "null" rows (PTR, REX, SNP on 2016-06-29): a day without data, dropped.
    frame = frame.set_index("date").sort_index().dropna(how="all").astype({"volume": "int64"})
    s, e = check_window(start, end, frame.index[0], frame.index[-1], f"StockNet prices of {ticker}")
    return frame.loc[s:e]


def prices_panel(tickers_: Iterable[str] | None = None, start: object = None, end: object = None) -> pd.DataFrame:
    """Prices of several tickers as a panel indexed by (date, ticker).

    ``start``/``end`` must lie within the panel's span (the earliest to the latest day of
    the chosen tickers); a ticker listed later (ABBV, AGFS, BABA, GMRE) just has fewer rows.
    """
    names = tickers() if tickers_ is None else _check_tickers(tickers_)
    frames = {t: prices(t) for t in names}
    first = min(f.index[0] for f in frames.values())
    last = max(f.index[-1] for f in frames.values())
    s, e = check_window(start, end, first, last, "StockNet prices of " + ", ".join(names[:5])
                        + (f" and {len(names) - 5} more" if len(names) > 5 else ""))
    frames = {t: f.loc[s:e] for t, f in frames.items()}
    panel = pd.concat(frames, names=["ticker", "date"]).swaplevel().sort_index()
    return panel


def thin_volume_days(tickers_: Iterable[str], share: float = 0.05, window: int = 20) -> pd.DataFrame:
    """Rows whose volume is below ``share`` of the ticker's median volume over the previous ``window`` days:
    not a normal session (e.g. GOOG's class C shares traded when-issued before the 2014-04-03 split)."""
    rows = []
    for t in _check_tickers(tickers_):
        px = prices(t)
        usual = px["volume"].rolling(window, min_periods=window).median().shift(1)  # days before, not the day
        thin = px[px["volume"] < share * usual]
        rows.append(thin.assign(ticker=t, usual_volume=usual[thin.index]))
    out = pd.concat(rows).reset_index().set_index(["ticker", "date"])
    return out[["open", "high", "low", "close", "volume", "usual_volume"]]


# --------------------------------------------------------------------------- tweets
def _tweet_files(kind: str, ticker: str) -> FileSet:
    folder = f"tweet/{kind}/{ticker}/"
    if SOURCE.mirror() is not None:
        path = SOURCE.mirror_file(f"stocknet/tweet/{kind}/{ticker}.tar.gz")
        return FileSet(path, prefix=folder)
    (path,) = SOURCE.archive_member_folders("stocknet", [folder], "tweets").values()
    return FileSet(path)


def _parse_time(values: list[str]) -> pd.DatetimeIndex:
    return pd.to_datetime(values, format="%a %b %d %H:%M:%S %z %Y", utc=True)


def _tweets_preprocessed(ticker: str) -> pd.DataFrame:
    days, texts, users, created = [], [], [], []
    for day, data in _tweet_files("preprocessed", ticker):
        for line in data.decode("utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            days.append(day)
            texts.append(" ".join(item["text"]))
            users.append(item["user_id_str"])
            created.append(item["created_at"])
    return pd.DataFrame(
        {
            "date": pd.to_datetime(days),
            "timestamp": _parse_time(created),
            "ticker": ticker,
            "text": texts,
            "user_id": users,
        }
    )


def _tweets_raw(ticker: str) -> pd.DataFrame:
    rows = []
    for day, data in _tweet_files("raw", ticker):
        for line in data.decode("utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            user = item.get("user") or {}
            rows.append(
                (
                    day,
                    item["created_at"],
                    item["id_str"],
                    item["text"],
                    user.get("id_str"),
                    user.get("followers_count"),
                    item.get("retweet_count"),
                    item.get("favorite_count"),
                    "retweeted_status" in item or item["text"].startswith("RT @"),
                    item.get("lang"),
                )
            )
    cols = ["date", "created_at", "tweet_id", "text", "user_id", "followers", "retweets", "favorites",
            "is_retweet", "lang"]
    frame = pd.DataFrame(rows, columns=cols)
    frame.insert(1, "timestamp", _parse_time(frame.pop("created_at").tolist()))
    frame["date"] = pd.to_datetime(frame["date"])
    frame.insert(2, "ticker", ticker)
    for col in ("followers", "retweets", "favorites"):
        frame[col] = frame[col].fillna(0).astype("int64")
    return frame


def _digest_key(kind: str, ticker: str) -> str:
    up = SOURCE.upstreams["stocknet"]
    return SOURCE.expected(up.location(f"tweet/{kind}/{ticker}/"))[:16]


def tweet_tickers(raw: bool = False) -> list[str]:
    """The tickers with tweets upstream: raw ones (with follower counts) for five, preprocessed for all but GMRE."""
    return list(RAW_TWEET_TICKERS) if raw else [t for t in tickers() if t != "GMRE"]


def tweets(
    tickers_: str | Iterable[str] | None = None,
    start: object = None,
    end: object = None,
    raw: bool = False,
) -> pd.DataFrame:
    """Tweets, one row per tweet, sorted by time.

    Columns: ``date`` (the upstream day file the tweet belongs to), ``timestamp``
    (UTC creation time), ``ticker``, ``text``, ``user_id``; with ``raw=True``
    (AAPL, AMZN, FB, GOOG, MSFT only) also ``tweet_id``, ``followers``, ``retweets``,
    ``favorites``, ``is_retweet`` and ``lang`` -- the fields a tweet's weight needs.
    Preprocessed tweets are lower-cased tokens joined by spaces (URLs -> "URL").
    """
    kind = "raw" if raw else "preprocessed"
    valid = tweet_tickers(raw)
    names = list(valid) if tickers_ is None else _check_tickers(tickers_)
    for name in names:
        if name not in valid:
            hint = (
                "Raw tweets are mirrored for these five only; the other tickers have preprocessed tweets "
                "(raw=False)." if raw else "GMRE has prices but no tweets upstream."
            )
            raise UnknownKeyError(
                f"StockNet ticker {name!r} has no {kind} tweets. Tickers with {kind} tweets: "
                f"{', '.join(valid)}. {hint}"
            )
    parser = _tweets_raw if raw else _tweets_preprocessed
    frames = [
        cached_parquet(SOURCE, f"tweets-{kind}-{t}-{_digest_key(kind, t)}", lambda t=t: parser(t))
        for t in names
    ]
    frame = pd.concat(frames, ignore_index=True)
    first, last = frame["date"].min(), frame["date"].max()
    s, e = check_window(start, end, first, last, f"StockNet {kind} tweets")
    frame = frame[(frame["date"] >= s) & (frame["date"] <= e)]
    return frame.sort_values(["timestamp", "ticker"], kind="stable").reset_index(drop=True)


def tweet_counts(raw: bool = False) -> pd.DataFrame:
    """Tweets per (date, ticker) as a wide table (dates x tickers), zeros where none."""
    frame = tweets(raw=raw)
    counts = frame.groupby(["date", "ticker"]).size().unstack("ticker", fill_value=0)
    return counts.astype(np.int64)


def coverage() -> pd.DataFrame:
    """Per ticker: sector, first and last price day, trading days, preprocessed tweets."""
    rows = {t: prices(t) for t in tickers()}
    frame = pd.DataFrame(
        {"first": {t: p.index[0] for t, p in rows.items()}, "last": {t: p.index[-1] for t, p in rows.items()},
         "days": {t: len(p) for t, p in rows.items()}}
    )
    frame.index.name = "ticker"
    counts = tweets().groupby("ticker").size()
    frame["tweets"] = counts.reindex(frame.index).fillna(0).astype("int64")
    return stock_table()[["sector"]].join(frame)


def prefetch() -> None:
    """Resolve (download or verify) every StockNet file this package reads."""
    stock_table()
    for t in tickers():
        prices(t)
    tweets()
    tweets(raw=True)
