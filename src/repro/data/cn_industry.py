"""Industry and province of every China A-share (tushare ``stock_basic``, snapshot 2024-12).

Upstream: ``xiaopengqiu/stock-agent`` (Apache-2.0), ``build/stock_basic.json``. The
industry is tushare's own classification (111 industries), not Shenwan: no public
Shenwan table is reachable. It is one snapshot; using it for earlier years assumes
industries did not change.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ._frames import check_names
from ._store import Source, Upstream, read_text

SOURCE = Source(
    "cn_industry",
    "China A-share industries (tushare stock_basic)",
    {"stock_agent": Upstream("xiaopengqiu/stock-agent", "8d39f4f645978916328dae554a2ab0e7474ffb4f", "Apache-2.0")},
)


def qlib_code(ts_code: str) -> str:
    """'600519.SH' -> 'SH600519' (qlib's instrument code)."""
    number, exchange = ts_code.split(".")
    return f"{exchange}{number}"


def stock_basic() -> pd.DataFrame:
    """All 5,418 listed stocks indexed by qlib code, with name, industry, area (province), list date."""
    path = SOURCE.file("cn_industry/stock_basic.json.gz", "stock_agent", "build/stock_basic.json")
    data = json.loads(read_text(path))["data"]
    frame = pd.DataFrame(data["items"], columns=data["fields"])
    frame.insert(0, "instrument", frame["ts_code"].map(qlib_code))
    frame["list_date"] = pd.to_datetime(frame["list_date"], format="%Y%m%d")
    return frame.set_index("instrument").sort_index()


def industries(instruments: list[str] | None = None) -> pd.DataFrame:
    """Columns ``name``, ``industry``, ``area``, ``enname`` for the given qlib codes (all by default)."""
    table = stock_basic()[["name", "enname", "industry", "area", "list_date"]]
    if instruments is None:
        return table
    codes = [c.upper() for c in instruments]
    check_names(codes, table.index.tolist(), "China A-share instrument")
    return table.loc[codes]


def concept_matrix(instruments: list[str], kinds: tuple[str, ...] = ("industry",)) -> pd.DataFrame:
    """A HIST-style stock-to-concept 0/1 matrix (instruments x concepts) from industry and/or area.

    HIST's own Tushare concept matrix is not public; industry and province are the
    predefined concepts available here. Concepts with a single member are dropped
    (they connect a stock to nobody).
    """
    check_names(list(kinds), ["industry", "area"], "concept kind")
    table = industries(instruments)
    blocks = [pd.get_dummies(table[k], prefix=k, prefix_sep=":", dtype=np.float32) for k in kinds]
    matrix = pd.concat(blocks, axis=1)
    return matrix.loc[:, matrix.sum(axis=0) > 1]


def prefetch() -> None:
    stock_basic()
