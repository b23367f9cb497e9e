"""Features without look-ahead: windows, chronological splits, train-only scalers,
technical indicators, Alpha360-style panel features and label normalisation.

Everything computed for day t uses data up to and including t; labels are the only
forward-looking quantities and live in :mod:`repro.features.labels`.
:func:`assert_no_lookahead` lets a test prove it for any feature function.
"""

from .alpha import alpha360, alpha360_base, alpha_fields
from .labels import cs_rank, cs_zscore, cs_zscore_array, forward_return
from .leakage import LookAheadError, assert_no_lookahead
from .scaling import Scaler
from .splits import DateSplit, split_by_counts, split_by_dates, split_by_fraction
from .technical import bollinger, ema, indicator_frame, log_returns, macd, returns, rsi, sma, volatility
from .windows import Windows, make_windows, panel_windows, sliding_windows

__all__ = [
    "DateSplit", "LookAheadError", "Scaler", "Windows", "alpha360", "alpha360_base", "alpha_fields",
    "assert_no_lookahead", "bollinger", "cs_rank", "cs_zscore", "cs_zscore_array", "ema", "forward_return",
    "indicator_frame", "log_returns", "macd", "make_windows", "panel_windows", "returns", "rsi",
    "sliding_windows", "sma", "split_by_counts", "split_by_dates", "split_by_fraction", "volatility",
]
