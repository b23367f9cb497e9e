"""Small helpers shared by the source modules: date windows and name checks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from ._store import DateRangeError, unknown


def to_timestamp(value: object, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DateRangeError(f"{name}={value!r} is not a date; use ISO format such as '2015-01-31'.") from exc


SLACK = pd.Timedelta(days=7)


def check_window(
    start: object, end: object, first: pd.Timestamp, last: pd.Timestamp, what: str
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Validate a requested [start, end] window against the available [first, last].

    Returns the window with missing bounds filled in. A bound more than
    ``SLACK`` (a week) outside the data is an error that states the available range:
    silently clipping would hide a typo or a wrong data set, while a bound on the
    weekend or holiday just past the data (``end="2023-12-31"``) is what users mean.
    """
    s = to_timestamp(start, "start") or first
    e = to_timestamp(end, "end") or last
    span = f"{first:%Y-%m-%d}..{last:%Y-%m-%d}"
    if s > e:
        raise DateRangeError(f"start {s:%Y-%m-%d} is after end {e:%Y-%m-%d} for {what}.")
    if s < first.normalize() - SLACK or e > last.normalize() + SLACK or s > last or e < first.normalize():
        raise DateRangeError(
            f"{what} covers {span}; the requested window {s:%Y-%m-%d}..{e:%Y-%m-%d} lies outside it. "
            f"Choose start and end within {span}."
        )
    return s, e


def check_names(values: str | Iterable[str], valid: Sequence[str], kind: str, hint: str = "") -> list[str]:
    """Normalise one name or a list of names and reject unknown ones (listing the valid ones)."""
    names = [values] if isinstance(values, str) else list(values)
    if not names:
        raise unknown(kind, names, valid, hint)
    valid_set = set(valid)
    for name in names:
        if name not in valid_set:
            raise unknown(kind, name, valid, hint)
    return names
