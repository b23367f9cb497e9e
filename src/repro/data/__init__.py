"""Real data for the five papers: one module per source, tidy pandas objects out.

==================  =============================================================
module              what it returns
==================  =============================================================
``stocknet``        88 US stocks: prices, sectors, tweets (Xu & Cohen 2018)
``reuters``         Reuters headlines per ticker, 2014-03..2016-11
``sentiment``       labelled financial sentiment (FiQA, SemEval-2017, PhraseBank)
``wdi``             six yearly US macro indicators (World Bank)
``cn_qlib``         China A-shares in qlib format, CSI universes and indexes
``cn_industry``     industry and province of every A-share (tushare snapshot)
``us_prices``       S&P 500 / NASDAQ (``arch``) and six US large caps 2003..2026
``mamballm``        the MambaLLM authors' daily LLM texts about the S&P 500
==================  =============================================================

Files come from the offline mirror when ``REPRO_DATA_MIRROR`` is set, otherwise from
the pinned upstream commits (downloaded once into ``data/cache``); either way they are
checked against ``data/manifests/*.sha256``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from ._store import ChecksumError, DataError, DateRangeError, MissingDataError, UnknownKeyError

SOURCES = ("stocknet", "reuters", "sentiment", "wdi", "cn_qlib", "cn_industry", "us_prices", "mamballm")


def source_module(name: str) -> ModuleType:
    if name not in SOURCES:
        from ._store import unknown

        raise unknown("data source", name, SOURCES)
    return importlib.import_module(f"{__name__}.{name}")


def __getattr__(name: str) -> ModuleType:
    # Lazy submodules: `from repro import data; data.stocknet.prices("AAPL")` works without
    # importing every source (and pandas work) up front.
    if name in SOURCES:
        return source_module(name)
    raise AttributeError(name)


def sources_table():
    """One row per source: upstream repositories, pinned commits and licences (for the README/book)."""
    import pandas as pd

    rows = []
    for name in SOURCES:
        src = source_module(name).SOURCE
        for key, up in src.upstreams.items():
            rows.append({"source": name, "title": src.title, "part": key, "repository": up.repo,
                         "commit": up.commit[:7], "licence": up.license})
    return pd.DataFrame(rows)


def local_status(name: str) -> dict[str, list[Path]]:
    """A source's files where this machine reads them, checked without downloading anything.

    The mirror's files (manifest lines ``mirror:...``) when ``REPRO_DATA_MIRROR`` is set, otherwise
    the download cache's copies of the pinned upstream files. Returns their paths under
    ``verified``, ``mismatch`` (present, another sha256) and ``missing``.
    """
    from .. import paths
    from ._store import FileSet, sha256_file

    src = source_module(name).SOURCE
    mirror = src.mirror()
    if mirror is not None:
        places = {loc: mirror / loc.removeprefix("mirror:") for loc in src.locations("mirror:")}
    else:
        places = {}
        for up in src.upstreams.values():
            # where Source.upstream_file and Source.archive_member_folders put them
            base = paths.cache_dir() / src.name / "upstream" / up.repo.replace("/", "+")
            prefix = up.location("")
            places.update({loc: base / loc.removeprefix(prefix) for loc in src.locations(prefix)})
    status: dict[str, list[Path]] = {"verified": [], "mismatch": [], "missing": []}
    for loc, path in places.items():
        folder = loc.endswith("/")  # a folder's digest is over its listing, see _store.tree_digest
        if not (path.is_dir() if folder else path.is_file()):
            status["missing"].append(path)
            continue
        got = FileSet(path).digest() if folder else sha256_file(path)
        status["verified" if got == src.expected(loc) else "mismatch"].append(path)
    return status


__all__ = [
    "ChecksumError",
    "DataError",
    "DateRangeError",
    "MissingDataError",
    "SOURCES",
    "UnknownKeyError",
    "local_status",
    "source_module",
    "sources_table",
]
