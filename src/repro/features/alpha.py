"""Alpha360-style features for panels (qlib's ``Alpha360`` handler, computed with numpy).

For each day t and stock, the last 60 days of close, open, high, low, vwap and volume,
each divided by the stock's close (volume by its volume) on day t -- 6 x 60 = 360
values that use nothing after t. This data set has no ``vwap``: ``vwap="drop"`` (the
default) leaves that block out (300 features); ``vwap="typical"`` substitutes the
typical price (high + low + close) / 3, an approximation to say out loud.

Features are produced per day on demand (the full panel of 360 floats per stock-day
would need gigabytes); see :func:`alpha360`.
"""

from __future__ import annotations

import numpy as np

from .windows import panel_windows

BLOCKS = ("close", "open", "high", "low", "vwap", "volume")


def alpha_fields(vwap: str = "drop") -> list[str]:
    if vwap not in ("drop", "typical"):
        raise ValueError("vwap must be 'drop' (no vwap in this data) or 'typical' ((H+L+C)/3 stand-in)")
    return [b for b in BLOCKS if not (b == "vwap" and vwap == "drop")]


def alpha360_base(cube: np.ndarray, fields: list[str], vwap: str = "drop") -> np.ndarray:
    """Stack the raw blocks (T, N, B) in Alpha360's order from a (T, N, F) price cube."""
    idx = {f: i for i, f in enumerate(fields)}
    for need in ("close", "open", "high", "low", "volume"):
        if need not in idx:
            raise KeyError(f"cube lacks field {need!r}; it has {fields}")
    blocks = []
    for b in alpha_fields(vwap):
        if b == "vwap":
            blocks.append((cube[..., idx["high"]] + cube[..., idx["low"]] + cube[..., idx["close"]]) / 3)
        else:
            blocks.append(cube[..., idx[b]])
    return np.stack(blocks, axis=-1).astype(np.float32)


def alpha360(base: np.ndarray, days: np.ndarray | slice, lookback: int = 60) -> np.ndarray:
    """Alpha360 features for the given day positions: ``(len(days), N, lookback, B)``.

    Element ``[.., j, b]`` is block b on day t - (lookback - 1 - j) divided by close_t
    (volume by volume_t + 1e-12), i.e. oldest first, as qlib orders CLOSE59..CLOSE0.
    Days with fewer than ``lookback`` days of history are NaN-padded at the front.
    """
    T = base.shape[0]
    pad = np.full((lookback - 1, *base.shape[1:]), np.nan, dtype=base.dtype)
    windows = panel_windows(np.concatenate([pad, base], axis=0), lookback)  # (T, N, L, B); row t ends at t
    assert windows.shape[0] == T
    w = windows[days]
    last = w[:, :, -1:, :]  # day t itself
    denom = np.concatenate([np.repeat(last[..., :1], w.shape[-1] - 1, axis=-1), last[..., -1:] + 1e-12], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = w / denom
    return out.astype(np.float32)
