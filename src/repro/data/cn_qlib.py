"""China A-shares, daily 2010-01-04..2023-12-29, read from qlib's binary format.

Files (as qlib writes them):

* ``calendars/day.txt`` -- one trading day per line;
* ``features/<code>/<field>.day.bin`` -- float32 little-endian; the first value is the
  index into the calendar of the second value's day, then one value per trading day;
* ``instruments/<universe>.txt`` -- ``CODE<TAB>start<TAB>end`` per membership spell.

Conventions of this data (they differ from qlib's own Yahoo-based set): open, high, low
and close are adjusted (raw price x ``factor``); ``volume`` is raw shares (not divided by
``factor``); suspended days repeat the previous price with volume 0 -- this module turns
them into missing values by default. There is no ``vwap`` or ``amount`` field.

Upstream: features and calendar from ``fr220574/Qlib-format-A-share-dataset`` (cut here
at 2023-12-29), membership spells from ``Homes1ck/sQlib``, HIST's CSI300 stock index
from ``Wentao-Xu/HIST``. Delisted stocks are absent (survivorship bias), see the book's
data chapter.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ._frames import check_names, check_window, to_timestamp
from ._store import (
    ChecksumError,
    DateRangeError,
    FileSet,
    Source,
    Upstream,
    _replace_dir,
    download_many,
    unknown,
)

SOURCE = Source(
    "cn_qlib",
    "China A-shares in qlib format",
    {
        "features": Upstream("fr220574/Qlib-format-A-share-dataset", "51ee96b5b4f6aad2e8ff660e9dd6d81d97bed96f",
                             "none stated"),
        "instruments": Upstream("Homes1ck/sQlib", "c601317a1d0c83fbc40e1e87fad382fc3494bfdb", "none stated"),
        "hist": Upstream("Wentao-Xu/HIST", "149114c47fbd7f997be9a5a2f79c65de95603711", "none stated"),
    },
)

#: The last day of the pinned data: upstream goes on to 2026, the package cuts here so that
#: mirror and download users get identical numbers.
END = pd.Timestamp("2023-12-29")
FIELDS = ("open", "high", "low", "close", "volume", "factor")
UNIVERSES = ("csi100", "csi300", "csi500", "csi800", "csi1000")
#: Universe -> its index code (the index series of that universe).
INDEXES = {"csi100": "SH000903", "csi300": "SH000300", "csi500": "SH000905", "csi800": "SH000906",
           "csi1000": "SH000852"}


# --------------------------------------------------------------------------- location
def _assemble_from_upstream() -> Path:
    """Download the pinned upstream files and lay them out as the mirror's folder."""
    feats = SOURCE.upstreams["features"]
    dest = SOURCE.cache / f"upstream-{feats.commit[:12]}"
    if dest.is_dir():
        return dest
    tmp = Path(tempfile.mkdtemp(prefix=".upstream.", dir=SOURCE.cache))
    try:
        root = tmp / "cn_qlib"
        # calendar, cut at END
        cal_path = SOURCE.upstream_file("features", "calendars/day.txt")
        days = [d for d in cal_path.read_text().splitlines() if d.strip()]
        keep = [d for d in days if pd.Timestamp(d) <= END]
        (root / "calendars").mkdir(parents=True)
        (root / "calendars" / "day.txt").write_text("\n".join(keep) + "\n")
        end_index = len(keep) - 1
        # membership spells, verbatim
        (root / "instruments").mkdir()
        for name in UNIVERSES:
            src = SOURCE.upstream_file("instruments", f"instruments/{name}.txt")
            shutil.copyfile(src, root / "instruments" / f"{name}.txt")
        # features: six fields per code; each code folder is checked against its tree digest
        prefix = feats.location("features/")
        codes = sorted(loc[len(prefix):].rstrip("/") for loc in SOURCE.manifest if loc.startswith(prefix))
        raw = SOURCE.cache / "upstream" / feats.repo.replace("/", "+") / "features"
        jobs = [
            (feats.raw_url(f"features/{code}/{field}.day.bin"), raw / code / f"{field}.day.bin", None,
             f"cn_qlib file features/{code}/{field}.day.bin")
            for code in codes for field in FIELDS
        ]
        download_many(jobs, workers=16)
        for code in codes:
            expected = SOURCE.expected(feats.location(f"features/{code}/"))
            got = FileSet(raw / code).digest()
            if got != expected:
                shutil.rmtree(raw / code)
                raise ChecksumError(
                    f"checksum mismatch for features/{code}/*.day.bin of {feats.repo}@{feats.commit[:7]}: "
                    f"tree digest {got}, the manifest pins {expected}. The files were removed; run again "
                    "to re-download, or use the offline mirror (REPRO_DATA_MIRROR)."
                )
            out = root / "features" / code.lower()
            out.mkdir(parents=True)
            for field in FIELDS:
                values = np.fromfile(raw / code / f"{field}.day.bin", dtype="<f4")
                start = int(values[0])
                n = max(0, min(len(values) - 1, end_index - start + 1))
                values[: n + 1].tofile(out / f"{field}.day.bin")
        _replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


@functools.lru_cache(maxsize=None)
def _root_cached(mirror: str | None, cache: str) -> Path:
    if mirror is not None:
        version = SOURCE.expected("mirror:cn_qlib/cn_qlib.tar.xz")[:12]
        return SOURCE.extracted_mirror_archive("cn_qlib/cn_qlib.tar.xz", version) / "cn_qlib"
    return _assemble_from_upstream() / "cn_qlib"


def data_dir() -> Path:
    """The qlib data folder (``qlib.init(provider_uri=data_dir())`` reads it too)."""
    mirror = SOURCE.mirror()
    return _root_cached(str(mirror) if mirror else None, str(SOURCE.cache))


# --------------------------------------------------------------------------- calendar and universes
@functools.lru_cache(maxsize=4)
def _calendar(root: Path) -> pd.DatetimeIndex:
    days = (root / "calendars" / "day.txt").read_text().split()
    return pd.DatetimeIndex(pd.to_datetime(days), name="datetime")


def calendar(start: object = None, end: object = None) -> pd.DatetimeIndex:
    """Trading days (2010-01-04..2023-12-29), optionally within [start, end]."""
    cal = _calendar(data_dir())
    s, e = check_window(start, end, cal[0], cal[-1], "the China A-share calendar")
    return cal[(cal >= s) & (cal <= e)]


@functools.lru_cache(maxsize=4)
def _available(root: Path) -> tuple[str, ...]:
    return tuple(sorted(p.name.upper() for p in (root / "features").iterdir() if p.is_dir()))


def available_instruments() -> list[str]:
    """Every code with price data (1,912 stocks and the 5 CSI indexes)."""
    return list(_available(data_dir()))


def stock_codes() -> list[str]:
    """Every stock with price data (the available instruments minus the five indexes)."""
    indexes = set(INDEXES.values())
    return [c for c in available_instruments() if c not in indexes]


def membership(universe: str) -> pd.DataFrame:
    """Point-in-time membership spells of a universe: ``instrument``, ``start``, ``end``."""
    check_names([universe], UNIVERSES, "universe")
    path = data_dir() / "instruments" / f"{universe}.txt"
    frame = pd.read_csv(path, sep="\t", header=None, names=["instrument", "start", "end"],
                        parse_dates=["start", "end"])
    frame["instrument"] = frame["instrument"].str.upper()
    return frame


def universe(name: str, as_of: object = END, require_data: bool = True) -> list[str]:
    """Constituents of ``name`` on the trading day ``as_of`` (default 2023-12-29), sorted.

    With ``require_data`` (the default) members without price data here (delisted
    stocks) are dropped with a warning that counts them -- qlib drops them silently.
    """
    spells = membership(name)
    day = to_timestamp(as_of, "as_of") or END
    first, last = spells["start"].min(), spells["end"].max()
    if day < first or day > last:
        raise DateRangeError(
            f"{name} membership is known for {first:%Y-%m-%d}..{last:%Y-%m-%d}; as_of={day:%Y-%m-%d} is outside it."
        )
    members = sorted(set(spells.loc[(spells["start"] <= day) & (spells["end"] >= day), "instrument"]))
    return _with_data(members, f"{name} members on {day:%Y-%m-%d}") if require_data else members


def _with_data(members: list[str], what: str) -> list[str]:
    """``members`` that have price data here; a warning counts and names the others (qlib drops them silently)."""
    have = set(available_instruments())
    missing = [m for m in members if m not in have]
    if missing:
        warnings.warn(
            f"{len(missing)} of the {len(members)} {what} have no price data here (delisted or absent upstream) "
            f"and are dropped: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""),
            stacklevel=3,
        )
    return [m for m in members if m in have]


def members_between(name: str, start: object = None, end: object = None, require_data: bool = True) -> list[str]:
    """Every stock that was a member of ``name`` on some day of ``start``..``end`` (a point-in-time universe's
    stocks), sorted; with ``require_data`` those without price data here are dropped with a warning."""
    spells = membership(name)
    first = to_timestamp(start, "start") or spells["start"].min()
    last = to_timestamp(end, "end") or END
    members = sorted(set(spells.loc[(spells["start"] <= last) & (spells["end"] >= first), "instrument"]))
    what = f"stocks that were {name} members in {first:%Y-%m-%d}..{last:%Y-%m-%d}"
    return _with_data(members, what) if require_data else members


def membership_mask(name: str, dates: pd.DatetimeIndex, instruments: Sequence[str]) -> pd.DataFrame:
    """Boolean (dates x instruments): was the stock a member of ``name`` on that day?

    Used for point-in-time universes (no survivorship bias from end-of-sample membership).
    """
    spells = membership(name)
    cols = pd.Index([c.upper() for c in instruments], name="instrument")
    spells = spells[spells["instrument"].isin(cols)]
    dates = pd.DatetimeIndex(dates)
    if not dates.is_monotonic_increasing:
        raise ValueError("membership_mask needs dates sorted in increasing order")
    col = cols.get_indexer(spells["instrument"])
    first = dates.searchsorted(spells["start"].values)  # first day inside each spell
    stop = dates.searchsorted(spells["end"].values, side="right")  # first day after it
    # +1 where a spell starts, -1 after it ends; a running sum > 0 means "member that day"
    diff = np.zeros((len(dates) + 1, len(cols)), dtype=np.int32)
    np.add.at(diff, (first, col), 1)
    np.add.at(diff, (stop, col), -1)
    mask = np.cumsum(diff, axis=0)[:-1] > 0
    return pd.DataFrame(mask, index=dates, columns=cols)


def universe_sizes(dates: Sequence[object], universes: Sequence[str] = UNIVERSES) -> pd.DataFrame:
    """Point-in-time member counts per universe on each date: nominal and with price data here.

    Columns are a MultiIndex (universe, "members" | "with_data"); NaN where the membership
    file does not cover the date (e.g. CSI1000 before 2014-10-31).
    """
    days = pd.DatetimeIndex(pd.to_datetime(list(dates)))
    have = set(available_instruments())
    out = {}
    for name in check_names(list(universes), UNIVERSES, "universe"):
        spells = membership(name)
        covered = (days >= spells["start"].min()) & (days <= spells["end"].max())
        for label, sp in (("members", spells), ("with_data", spells[spells["instrument"].isin(have)])):
            # spells of one stock never overlap: members = #started by d - #ended before d
            started = np.searchsorted(np.sort(sp["start"].values), days.values, side="right")
            ended = np.searchsorted(np.sort(sp["end"].values), days.values, side="left")
            out[(name, label)] = np.where(covered, started - ended, np.nan)
    frame = pd.DataFrame(out, index=days)
    frame.columns.names = ["universe", "count"]
    return frame


# --------------------------------------------------------------------------- prices
def _read_field(root: Path, code: str, field: str, n_days: int) -> np.ndarray:
    """One field of one code as a float32 vector aligned to the full calendar (NaN outside its span)."""
    raw = np.fromfile(root / "features" / code.lower() / f"{field}.day.bin", dtype="<f4")
    out = np.full(n_days, np.nan, dtype=np.float32)
    if raw.size > 1:
        start = int(raw[0])
        values = raw[1:][: max(0, n_days - start)]
        out[start: start + values.size] = values
    return out


def load_array(
    instruments: Sequence[str], fields: Sequence[str] = FIELDS, start: object = None, end: object = None,
    suspended_as_nan: bool = True,
) -> tuple[np.ndarray, pd.DatetimeIndex, list[str], list[str]]:
    """Prices as a float32 array (days, instruments, fields) plus its axes.

    Suspended days (volume 0) become NaN in every field when ``suspended_as_nan``.
    """
    root = data_dir()
    codes = [c.upper() for c in instruments]
    have = set(_available(root))
    for code in codes:
        if code not in have:
            raise unknown("China A-share instrument", code, sorted(have),
                          "Use universe(name, as_of) to list the members of a CSI index that have data.")
    fields = list(fields)
    check_names(fields, FIELDS, "qlib field")
    cal = _calendar(root)
    s, e = check_window(start, end, cal[0], cal[-1], "the China A-share data")
    lo, hi = cal.searchsorted(s), cal.searchsorted(e, side="right")
    need = list(dict.fromkeys([*fields, "volume"])) if suspended_as_nan else fields
    cube = np.stack(
        [np.stack([_read_field(root, c, f, len(cal))[lo:hi] for f in need], axis=-1) for c in codes], axis=1
    )  # (days, instruments, fields)
    if suspended_as_nan:
        vol = cube[:, :, need.index("volume")]
        cube[(vol == 0) | np.isnan(vol)] = np.nan
        cube = cube[:, :, [need.index(f) for f in fields]]
    return cube, cal[lo:hi], codes, fields


def panel(
    instruments: Sequence[str] | str, start: object = None, end: object = None, fields: Sequence[str] = FIELDS,
    suspended_as_nan: bool = True, as_of: object = END,
) -> pd.DataFrame:
    """A (datetime, instrument) panel of the given fields.

    ``instruments`` is a list of codes or a universe name (then its members on ``as_of``).
    Rows outside a stock's data (before its first / after its last day in the ``.bin``
    files) are dropped; suspended days inside it stay, as rows of NaN when
    ``suspended_as_nan`` (as qlib's ``D.features`` returns them), so a per-stock
    ``shift`` never spans a suspension.
    """
    codes = universe(instruments, as_of) if isinstance(instruments, str) else list(instruments)
    cube, dates, codes, fields = load_array(codes, fields, start, end, suspended_as_nan)
    root = data_dir()
    cal = _calendar(root)
    pos = cal.get_indexer(dates)  # calendar index of each row
    inside = np.zeros((len(dates), len(codes)), dtype=bool)
    for j, code in enumerate(codes):
        first, last = _span(root, code, fields)
        inside[:, j] = (pos >= first) & (pos <= last)
    index = pd.MultiIndex.from_product([dates, codes], names=["datetime", "instrument"])
    frame = pd.DataFrame(cube.reshape(-1, len(fields)), index=index, columns=fields)
    return frame[inside.reshape(-1)]


def _span(root: Path, code: str, fields: Sequence[str]) -> tuple[int, int]:
    """First and last calendar index covered by a code's ``.bin`` files (union over ``fields``)."""
    first, last = np.inf, -1
    for field in fields:
        path = root / "features" / code.lower() / f"{field}.day.bin"
        n = path.stat().st_size // 4 - 1  # values after the start-index header
        if n <= 0:
            continue
        start = int(np.fromfile(path, dtype="<f4", count=1)[0])
        first, last = min(first, start), max(last, start + n - 1)
    return first, last


def suspended_share(instruments: Sequence[str], freq: str = "YE") -> pd.Series:
    """Share of stock-days with volume 0 (suspensions) per period, within each stock's data span."""
    cube, dates, _, _ = load_array(instruments, ("volume",), suspended_as_nan=False)
    vol = cube[:, :, 0]
    listed = np.isfinite(vol)
    frame = pd.DataFrame({"suspended": ((vol == 0) & listed).sum(axis=1), "listed": listed.sum(axis=1)}, index=dates)
    per = frame.resample(freq).sum()
    return (per["suspended"] / per["listed"]).rename("suspended_share")


def index_series(name: str, start: object = None, end: object = None) -> pd.DataFrame:
    """The index of a universe (``"csi500"``) or an index code (``"SH000905"``): open..volume by day.

    Note: the CSI1000 index (SH000852) is missing for all of 2011 in this data.
    """
    code = INDEXES.get(name, name).upper()
    if code not in INDEXES.values():
        raise unknown("CSI index", name, [*INDEXES, *INDEXES.values()])
    cube, dates, _, fields = load_array([code], ("open", "high", "low", "close", "volume"), start, end,
                                        suspended_as_nan=False)
    frame = pd.DataFrame(cube[:, 0, :], index=dates, columns=fields)
    frame[frame["volume"] == 0] = np.nan
    return frame


def hist_stock_index() -> dict[str, int]:
    """HIST's ``csi300_stock_index.npy``: its 735 CSI300 codes -> row numbers of its concept matrix."""
    path = SOURCE.file("cn_qlib/csi300_stock_index.npy", "hist", "data/csi300_stock_index.npy")
    # A pickled dict; safe to unpickle because its sha256 was checked against the manifest.
    return dict(np.load(path, allow_pickle=True).item())


def prefetch() -> None:
    data_dir()
    hist_stock_index()


__all__ = [
    "END", "FIELDS", "INDEXES", "UNIVERSES", "available_instruments", "calendar", "data_dir",
    "hist_stock_index", "index_series", "load_array", "members_between", "membership", "membership_mask", "panel",
    "prefetch",
    "stock_codes", "suspended_share", "universe", "universe_sizes",
]
