"""Look-ahead checks: a feature at day t must not change when data after t changes.

:func:`assert_no_lookahead` perturbs every row after a cut-off and verifies that the
outputs up to the cut-off are unchanged. It catches centred rolling windows,
``shift(-k)``, full-sample normalisation and scalers fitted on the whole series.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


class LookAheadError(AssertionError):
    """A feature used data from after its own date."""


def assert_no_lookahead(
    fn: Callable[[pd.DataFrame], pd.DataFrame | pd.Series | np.ndarray],
    data: pd.DataFrame,
    cutoff: int,
    seed: int = 0,
    atol: float = 0.0,
) -> None:
    """Raise :class:`LookAheadError` if ``fn``'s rows ``<= cutoff`` depend on ``data`` rows after it.

    ``fn`` maps a date-indexed frame to an output with one row per input row.
    """
    if not 0 <= cutoff < len(data) - 1:
        raise ValueError(f"cutoff must be within 0..{len(data) - 2}")
    rng = np.random.default_rng(seed)
    changed = data.copy()
    numeric = changed.select_dtypes("number").columns
    changed[numeric] = changed[numeric].astype(float)  # integer columns (volume) must accept the noise
    tail = changed.iloc[cutoff + 1:][numeric].to_numpy(dtype=float)
    # scale up and add noise: changes levels, trends and volatility after the cut-off
    changed.iloc[cutoff + 1:, [changed.columns.get_loc(c) for c in numeric]] = (
        tail * rng.uniform(1.5, 3.0, size=tail.shape) + rng.normal(0, 1, size=tail.shape)
    )
    before = np.asarray(fn(data), dtype=float)[: cutoff + 1]
    after = np.asarray(fn(changed), dtype=float)[: cutoff + 1]
    same = np.isclose(before, after, atol=atol, rtol=0, equal_nan=True)
    if not same.all():
        rows = np.unique(np.nonzero(~same)[0])
        raise LookAheadError(
            f"output rows {rows[:5].tolist()}{'...' if len(rows) > 5 else ''} (<= cutoff {cutoff}) changed "
            "when only data after the cutoff changed: the feature looks ahead"
        )
