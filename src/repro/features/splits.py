"""Chronological train / valid / test splits by date.

Samples are never shuffled across time: every training date precedes every
validation date, which precedes every test date. A sample belongs to the split of
its *decision date* t (the last day its features see); with ``purge`` (default),
samples whose label date t+h falls into a later split are dropped, so no training
label looks into the validation or test period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class DateSplit:
    """Boundaries of a chronological split (inclusive date ranges)."""

    train: tuple[pd.Timestamp, pd.Timestamp]
    valid: tuple[pd.Timestamp, pd.Timestamp] | None
    test: tuple[pd.Timestamp, pd.Timestamp]

    def ranges(self) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
        out = {"train": self.train, "test": self.test}
        if self.valid is not None:
            out["valid"] = self.valid
        return {k: out[k] for k in SPLITS if k in out}

    def which(self, dates) -> np.ndarray:
        """Split name of each date ("" for dates outside every split)."""
        d = pd.DatetimeIndex(dates)
        labels = np.full(len(d), "", dtype=object)
        for name, (lo, hi) in self.ranges().items():
            labels[(d >= lo) & (d <= hi)] = name
        return labels

    def mask(self, dates, name: str, label_dates=None) -> np.ndarray:
        """Boolean mask of samples in split ``name``; purges labels that cross into later splits."""
        if name not in self.ranges():
            raise ValueError(f"split {name!r} is not defined; this split has {list(self.ranges())}")
        d = pd.DatetimeIndex(dates)
        lo, hi = self.ranges()[name]
        m = (d >= lo) & (d <= hi)
        if label_dates is not None:
            m &= pd.DatetimeIndex(label_dates) <= hi
        return np.asarray(m)

    def table(self, dates=None) -> pd.DataFrame:
        """The split as a table (start, end and, given ``dates``, the number of days)."""
        rows = []
        for name, (lo, hi) in self.ranges().items():
            row = {"split": name, "start": lo.date(), "end": hi.date()}
            if dates is not None:
                d = pd.DatetimeIndex(dates).unique()
                row["days"] = int(((d >= lo) & (d <= hi)).sum())
            rows.append(row)
        return pd.DataFrame(rows).set_index("split")


def split_by_dates(dates, train_end, valid_end=None, test_end=None) -> DateSplit:
    """Split the unique ``dates`` at explicit boundaries (each boundary is the last day of its split)."""
    d = pd.DatetimeIndex(dates).unique().sort_values()
    train_end = pd.Timestamp(train_end)
    test_end = pd.Timestamp(test_end) if test_end is not None else d[-1]
    if not (d <= train_end).any():
        raise ValueError(f"no dates up to train_end {train_end:%Y-%m-%d}: the data starts {d[0]:%Y-%m-%d}")
    if valid_end is None:
        after = d[(d > train_end) & (d <= test_end)]
        if len(after) == 0:
            raise ValueError(f"no dates in ({train_end:%Y-%m-%d}, {test_end:%Y-%m-%d}]: nothing left to test on")
        return DateSplit((d[0], d[d <= train_end][-1]), None, (after[0], after[-1]))
    valid_end = pd.Timestamp(valid_end)
    if not train_end < valid_end < test_end:
        raise ValueError("boundaries must increase: train_end < valid_end < test_end")
    valid = d[(d > train_end) & (d <= valid_end)]
    test = d[(d > valid_end) & (d <= test_end)]
    if len(valid) == 0 or len(test) == 0:
        raise ValueError("a split is empty; move the boundaries inside the data's dates "
                         f"{d[0]:%Y-%m-%d}..{d[-1]:%Y-%m-%d}")
    return DateSplit((d[0], d[d <= train_end][-1]), (valid[0], valid[-1]), (test[0], test[-1]))


def split_by_fraction(dates, train: float = 0.8, valid: float = 0.0) -> DateSplit:
    """Split the unique dates by proportions, in time order (e.g. the paper's 80/20).

    ``valid`` is carved from the *end* of the training part (``train`` is the share of
    train + valid together), so the test part is the same with or without validation.
    """
    if not 0 < train < 1 or not 0 <= valid < 1:
        raise ValueError("fractions must satisfy 0 < train < 1 and 0 <= valid < 1")
    d = pd.DatetimeIndex(dates).unique().sort_values()
    n_fit = int(round(len(d) * train))
    n_valid = int(round(n_fit * valid))
    if n_fit - n_valid < 1 or n_fit >= len(d) or (valid > 0 and n_valid < 1):
        raise ValueError(f"{len(d)} dates are too few for train={train}, valid={valid}")
    tr = d[: n_fit - n_valid]
    te = d[n_fit:]
    va = d[n_fit - n_valid: n_fit] if n_valid else None
    return DateSplit((tr[0], tr[-1]), (va[0], va[-1]) if va is not None else None, (te[0], te[-1]))


def split_by_counts(dates, counts: tuple[int, int, int]) -> DateSplit:
    """Split the *last* ``sum(counts)`` unique dates into (train, valid, test) day counts.

    HIGSTM, for example, uses 2677 / 239 / 243 trading days.
    """
    d = pd.DatetimeIndex(dates).unique().sort_values()
    n_tr, n_va, n_te = counts
    if n_tr < 1 or n_va < 0 or n_te < 1:
        raise ValueError(f"counts must be (train >= 1, valid >= 0, test >= 1) days, got {tuple(counts)}")
    need = n_tr + n_va + n_te
    if need > len(d):
        raise ValueError(f"{need} days requested but the data has {len(d)} "
                         f"({d[0]:%Y-%m-%d}..{d[-1]:%Y-%m-%d}); reduce the counts")
    d = d[len(d) - need:]
    tr, va, te = d[:n_tr], d[n_tr: n_tr + n_va], d[n_tr + n_va:]
    return DateSplit((tr[0], tr[-1]), (va[0], va[-1]) if n_va else None, (te[0], te[-1]))
