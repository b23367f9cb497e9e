"""Long daily US price histories: S&P 500, NASDAQ and six large caps.

Three sources, all Yahoo-Finance-derived:

* the ``arch`` package (PyPI) ships S&P 500 and NASDAQ Composite OHLCV for
  1999-01-04..2018-12-31 -- no download needed (:func:`arch_index`);
* ``Sicheng-Wang1999/SP500``: AAPL AMZN MSFT TSLA GOOGL META and ^GSPC, 2003-10-30..2023-10-27,
  close split-adjusted plus a split-and-dividend ``Adjusted`` column (:func:`sicheng`);
* ``ShresthTiwari823/QuantEdge-AI``: the same seven, 2021-06-25..2026-06-24, all prices
  split-and-dividend adjusted as of 2026-06 (:func:`quantedge`).

:func:`daily` joins the last two into one adjusted series 2003..2026 (see its docstring).
Neither GitHub repository states a licence; Yahoo Finance's terms apply to the data.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from ._frames import check_names, check_window
from ._store import Source, Upstream, read_text

SOURCE = Source(
    "us_prices",
    "US daily prices (Yahoo-derived)",
    {
        "sicheng": Upstream("Sicheng-Wang1999/SP500", "023cc3c9d2e27541705d826af931e7f8be8c5d19", "none stated"),
        "quantedge": Upstream("ShresthTiwari823/QuantEdge-AI", "d96a919a98c057ec9f8a09e1e5a833ba5076d222",
                              "none stated"),
    },
)

TICKERS = ("AAPL", "AMZN", "GOOGL", "GSPC", "META", "MSFT", "TSLA")
ARCH_INDEXES = ("sp500", "nasdaq")
OHLCV = ["open", "high", "low", "close", "volume"]


def _ticker(ticker: str) -> str:
    name = ticker.upper().lstrip("^")
    check_names([name], TICKERS, "US ticker", "'^GSPC' and 'GSPC' both name the S&P 500 index.")
    return name


def _window(frame: pd.DataFrame, start: object, end: object, what: str) -> pd.DataFrame:
    s, e = check_window(start, end, frame.index[0], frame.index[-1], what)
    return frame.loc[s:e]


def arch_index(name: str = "sp500", start: object = None, end: object = None) -> pd.DataFrame:
    """S&P 500 or NASDAQ Composite daily OHLCV shipped with ``arch`` (1999-01-04..2018-12-31).

    Columns open, high, low, close, adj_close, volume; DatetimeIndex ``date``.
    """
    check_names([name], ARCH_INDEXES, "arch data set")
    if name == "sp500":
        from arch.data import sp500 as module
    else:
        from arch.data import nasdaq as module
    frame = module.load()
    frame.columns = ["open", "high", "low", "close", "adj_close", "volume"]
    frame.index = pd.DatetimeIndex(frame.index, name="date").as_unit("ns")
    return _window(frame.sort_index().astype({"volume": "int64"}), start, end, f"arch's {name}")


def sicheng(ticker: str, start: object = None, end: object = None) -> pd.DataFrame:
    """Sicheng-Wang1999/SP500: open..close (split-adjusted), volume, ``adjusted`` (splits + dividends)."""
    name = _ticker(ticker)
    path = SOURCE.file(f"us_prices/sicheng_sp500_2003_2023/{name}.csv.gz", "sicheng", f"data/{name}.csv")
    frame = pd.read_csv(io.StringIO(read_text(path)), parse_dates=["Index"], index_col="Index")
    frame.columns = [*OHLCV, "adjusted"]
    frame.index.name = "date"
    return _window(frame.sort_index(), start, end, f"the Sicheng prices of {name}")


def quantedge(ticker: str, start: object = None, end: object = None) -> pd.DataFrame:
    """QuantEdge-AI: open..close adjusted for splits and dividends (as of 2026-06), volume."""
    name = _ticker(ticker)
    path = SOURCE.file(f"us_prices/quantedge_2021_2026/{name}.csv.gz", "quantedge", f"data/{name}.csv")
    # yfinance writes three header rows (Price / Ticker / Date).
    frame = pd.read_csv(io.StringIO(read_text(path)), skiprows=3,
                        names=["date", "close", "high", "low", "open", "volume"], parse_dates=["date"])
    frame = frame.set_index("date")[OHLCV].sort_index()
    return _window(frame, start, end, f"the QuantEdge prices of {name}")


def daily(ticker: str, start: object = None, end: object = None) -> pd.DataFrame:
    """One adjusted OHLCV series 2003..2026 joined from the two GitHub sources.

    Sicheng's prices are put on a split-and-dividend basis (x Adjusted/Close) and then
    rescaled by the ratio QuantEdge close / Sicheng adjusted close, which is constant over
    their 590-day overlap (dividend re-basing only); Sicheng is used up to its last day,
    QuantEdge after it. Column ``source`` says which one each row comes from.
    """
    name = _ticker(ticker)
    old, new = sicheng(name), quantedge(name)
    overlap = old.index.intersection(new.index)
    ratio = float(np.median(new.loc[overlap, "close"] / old.loc[overlap, "adjusted"]))
    basis = old["adjusted"] / old["close"] * ratio
    old_adj = old[OHLCV].copy()
    for col in ("open", "high", "low", "close"):
        old_adj[col] = old[col] * basis
    joined = pd.concat([old_adj.assign(source="sicheng"), new.loc[new.index > old.index[-1]].assign(source="quantedge")])
    return _window(joined, start, end, f"the joined daily prices of {name}")


def prefetch() -> None:
    for t in TICKERS:
        sicheng(t)
        quantedge(t)
