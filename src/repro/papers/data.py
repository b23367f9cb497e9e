"""Chapter 00, the data every paper uses: its parameters and the tables it shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

from ..config import ChapterConfig, param
from ..data import cn_qlib, stocknet

NOTEBOOK = "00_data"


@dataclass(frozen=True)
class Config(ChapterConfig):
    """What the data chapter counts and plots."""

    notebook: ClassVar[str] = NOTEBOOK

    price_tickers: list[str] = param(["AAPL", "AMZN", "GOOG", "MSFT"], "StockNet tickers to plot")
    tweet_tickers: list[str] = param(list(stocknet.RAW_TWEET_TICKERS), "tickers whose raw tweets (followers, "
                                     "retweets) are counted", choices=stocknet.RAW_TWEET_TICKERS)
    news_tickers: list[str] = param(["AAPL", "AMZN", "GOOG", "MSFT"], "tickers whose Reuters headlines are counted")
    universes: list[str] = param(["csi300", "csi500", "csi800", "csi1000"], "China universes counted over time",
                                 choices=cn_qlib.UNIVERSES)
    as_of: str = param("2023-12-29", "day on which universe membership is fixed (HIGSTM's choice)")
    membership_freq: str = param("QS", "how often to count universe members (a pandas frequency: YS, QS, MS)")


def tweet_table(raw: pd.DataFrame, preprocessed: pd.DataFrame) -> pd.DataFrame:
    """Per ticker: preprocessed and raw tweet counts, first and last day, median followers, retweet share."""
    by = raw.groupby("ticker")
    return pd.DataFrame({
        "preprocessed": preprocessed.groupby("ticker").size(), "raw": by.size(),
        "first day": by["date"].min().dt.date, "last day": by["date"].max().dt.date,
        "median followers": by["followers"].median(), "retweets (share)": by["is_retweet"].mean(),
    })


def universe_sizes(universes: list[str], freq: str) -> pd.DataFrame:
    """Members of each universe (and how many have data here) on the first trading day of each period."""
    days = cn_qlib.calendar()
    first_days = days.to_series().resample(freq).first().dropna()
    return cn_qlib.universe_sizes([*first_days, days[-1]], universes)


def members_on(universes: list[str], as_of: str) -> pd.DataFrame:
    """Members of each universe on ``as_of``, and how many of them have price data here."""
    return pd.DataFrame({"members": [len(cn_qlib.universe(u, as_of, require_data=False)) for u in universes],
                         "with data": [len(cn_qlib.universe(u, as_of)) for u in universes]}, index=universes)


def labelled_texts() -> pd.DataFrame:
    """Every labelled sentiment text (FiQA, SemEval-2017, PhraseBank) with its set "dataset/subset"."""
    from ..data import sentiment

    labelled = pd.concat([sentiment.labelled(["fiqa", "semeval"]), sentiment.phrasebank("All")], ignore_index=True)
    return labelled.assign(set=labelled["dataset"] + "/" + labelled["subset"])


def label_table(labelled: pd.DataFrame) -> pd.DataFrame:
    """Per labelled set: items, mean score and the share of positive labels."""
    by = labelled.groupby("set")["score"]
    return pd.DataFrame({"items": by.size(), "mean": by.mean(), "positive": (labelled["score"] > 0).groupby(
        labelled["set"]).mean()})


def summary(coverage: pd.DataFrame, raw: pd.DataFrame, news: pd.DataFrame, labelled: pd.DataFrame,
            macro: pd.DataFrame, spx: pd.Series, texts: pd.DataFrame) -> pd.DataFrame:
    """The closing table: each data set's size, first and last date."""
    days = cn_qlib.calendar()
    rows = [
        ("StockNet prices", f"{len(coverage)} tickers", coverage["first"].min(), coverage["last"].max()),
        ("StockNet tweets (raw)", f"{len(raw):,} tweets", raw["date"].min(), raw["date"].max()),
        ("Reuters headlines", f"{len(news):,} stories", news["date"].min(), news["date"].max()),
        ("Labelled sentiment", f"{len(labelled):,} texts", None, None),
        ("World Bank WDI", f"{macro.shape[1]} series", f"{macro.index.min()}-01-01", f"{macro.index.max()}-12-31"),
        ("China A-shares", f"{len(cn_qlib.stock_codes()):,} stocks", days[0], days[-1]),
        ("S&P 500 (joined)", f"{len(spx):,} days", spx.index[0], spx.index[-1]),
        ("MambaLLM texts", f"{len(texts):,} texts", texts.index[0], texts.index[-1]),
    ]
    table = pd.DataFrame(rows, columns=["data set", "size", "first", "last"]).set_index("data set")
    return table.assign(first=pd.to_datetime(table["first"]), last=pd.to_datetime(table["last"]))


__all__ = ["Config", "NOTEBOOK", "label_table", "labelled_texts", "members_on", "summary", "tweet_table",
           "universe_sizes"]
