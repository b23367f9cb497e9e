"""Atomic writes: a file is either absent or complete, never half-written.

Everything is written to a temporary file in the destination folder and then
renamed over the target (``os.replace`` is atomic on POSIX within a folder).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600 files; results and caches are meant to be shared
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return None if math.isnan(value) else value
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (pd.Timestamp,)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(target: str | os.PathLike, obj: Any) -> Path:
    """Write JSON (NaN becomes null, numpy scalars become Python numbers)."""
    return write_text(target, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_frame(target: str | os.PathLike, frame: pd.DataFrame | pd.Series) -> Path:
    """Write a table as CSV or Parquet, chosen by the target's suffix."""
    target = Path(target)
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    with atomic_path(target, suffix=target.suffix) as tmp:
        if target.suffix == ".csv":
            frame.to_csv(tmp)
        elif target.suffix == ".parquet":
            frame.to_parquet(tmp)
        else:
            raise ValueError(f"unsupported table format {target.suffix!r}: use .csv or .parquet")
    return target


def read_frame(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path, index_col=0)
    raise ValueError(f"unsupported table format {path.suffix!r}: use .csv or .parquet")
