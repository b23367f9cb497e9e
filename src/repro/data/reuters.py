"""Reuters headlines and lead sentences per ticker, 2014-03-02..2016-11-25.

Upstream: ``WayneDW/Sentiment-Analysis-in-Event-Driven-Stock-Price-Movement-Prediction``
(MIT), file ``input/news_reuters.csv`` at the newest retrievable commit. Later upstream
versions added a ``topStory`` flag and more years (2012-2017), but their contents are not
retrievable, so this version has neither: the frame has no ``top_story`` column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

import pandas as pd

from ._frames import check_names, check_window
from ._store import Source, Upstream, read_text

SOURCE = Source(
    "reuters",
    "Reuters headlines per ticker",
    {
        "reuters": Upstream(
            "WayneDW/Sentiment-Analysis-in-Event-Driven-Stock-Price-Movement-Prediction",
            "c441db20c1f924d8a2e935abd83dbd6db1a279e7",
            "MIT",
        )
    },
)


def _all() -> pd.DataFrame:
    path = SOURCE.file("reuters/news_reuters.csv.gz", "reuters", "input/news_reuters.csv")
    rows = list(csv.reader(io.StringIO(read_text(path))))
    frame = pd.DataFrame(rows, columns=["ticker", "company", "date", "headline", "body"])
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return frame


def tickers() -> list[str]:
    """The 50 tickers with Reuters headlines."""
    return sorted(_all()["ticker"].unique())


def headlines(
    tickers_: str | Iterable[str] | None = None,
    start: object = None,
    end: object = None,
    dedupe: bool = True,
) -> pd.DataFrame:
    """Headlines, one row per story: ``date``, ``ticker``, ``company``, ``headline``, ``body``, ``text``.

    Upstream gives a day, not a time, for each story. ``dedupe`` keeps one row per
    (ticker, date, headline) -- upstream repeats a story when its body was updated; the
    last (updated) version is kept. ``text`` is the headline followed by the body.
    """
    frame = _all()
    if tickers_ is not None:
        names = check_names(tickers_, sorted(frame["ticker"].unique()), "Reuters ticker")
        frame = frame[frame["ticker"].isin(names)]
    s, e = check_window(start, end, frame["date"].min(), frame["date"].max(), "the Reuters headlines")
    frame = frame[(frame["date"] >= s) & (frame["date"] <= e)]
    if dedupe:
        frame = frame.drop_duplicates(["ticker", "date", "headline"], keep="last")
    body = frame["body"].str.strip()
    frame = frame.assign(text=frame["headline"].str.strip() + (". " + body).where(body != "", ""))
    return frame.sort_values(["date", "ticker"], kind="stable").reset_index(drop=True)


def prefetch() -> None:
    headlines()
