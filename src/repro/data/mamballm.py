"""The MambaLLM authors' daily LLM texts about the S&P 500 (2020-03-13..2025-02-28).

Upstream: ``ttys0001/MambaLLM`` (no licence stated), ``GSPC_processed_results_7b.csv``:
per trading day the index's OHLCV, the indicators the authors computed (SMA10, SMA50,
EMA10, Bollinger bands, MACD, RSI) and the text DeepSeek-R1-Distill 7B wrote from them.
Note the text of day t describes day t's close: it is information at the close of t.
"""

from __future__ import annotations

import io

import pandas as pd

from ._store import Source, Upstream, read_text

SOURCE = Source(
    "mamballm",
    "MambaLLM S&P 500 LLM texts",
    {"mamballm": Upstream("ttys0001/MambaLLM", "955b2c973637c4de1db219324a63353f05bb8545", "none stated")},
)

COLUMNS = ["row", "date", "open", "high", "low", "close", "volume", "sma10", "sma50", "ema10",
           "bb_upper", "bb_lower", "macd", "rsi", "text"]


def gspc_texts() -> pd.DataFrame:
    """One row per day, DatetimeIndex ``date``: the authors' indicators and the LLM ``text``."""
    path = SOURCE.file("mamballm/GSPC_processed_results_7b.csv.gz", "mamballm", "GSPC_processed_results_7b.csv")
    frame = pd.read_csv(io.StringIO(read_text(path)), header=None, names=COLUMNS, parse_dates=["date"])
    frame["text"] = frame["text"].str.strip()
    return frame.drop(columns="row").set_index("date").sort_index()


def prefetch() -> None:
    gspc_texts()
