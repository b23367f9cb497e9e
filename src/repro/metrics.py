"""Forecast metrics.

Point-forecast errors (MAE, MSE, RMSE, MAPE, R2) are scikit-learn's, behind a check that
the inputs are finite and of equal length. Ranking metrics follow HIST and qlib: the
Pearson (IC) or Spearman (Rank IC) correlation between scores and labels is computed
*across stocks on each day* (pandas' row-wise ``corrwith``) and then averaged over days;
ICIR is the mean daily IC divided by its standard deviation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


# --------------------------------------------------------------------------- point forecasts
def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    if t.size == 0:
        raise ValueError("no samples to score")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("y_true and y_pred must be finite (drop NaN rows first)")
    return t, p


def mae(y_true, y_pred) -> float:
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(*_pair(y_true, y_pred)))


def mse(y_true, y_pred) -> float:
    from sklearn.metrics import mean_squared_error

    return float(mean_squared_error(*_pair(y_true, y_pred)))


def rmse(y_true, y_pred) -> float:
    from sklearn.metrics import root_mean_squared_error

    return float(root_mean_squared_error(*_pair(y_true, y_pred)))


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error as a fraction (0.05 = 5%); a zero target is guarded by
    machine epsilon rather than dropped (scikit-learn's convention)."""
    from sklearn.metrics import mean_absolute_percentage_error

    return float(mean_absolute_percentage_error(*_pair(y_true, y_pred)))


def r2(y_true, y_pred) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (for a constant target: 1.0 if predicted exactly, else 0.0)."""
    from sklearn.metrics import r2_score

    return float(r2_score(*_pair(y_true, y_pred)))


def regression_report(y_true, y_pred) -> dict[str, float]:
    """MAE, MSE, RMSE, MAPE (fraction) and R2 in one dictionary."""
    return {"MAE": mae(y_true, y_pred), "MSE": mse(y_true, y_pred), "RMSE": rmse(y_true, y_pred),
            "MAPE": mape(y_true, y_pred), "R2": r2(y_true, y_pred)}


def direction_hit_rate(y_true, y_pred, reference) -> float:
    """Share of samples whose forecast moves from ``reference`` (today's close) in the direction
    the target did; samples where the target did not move are left out (no direction to hit)."""
    t, p = _pair(y_true, y_pred)
    ref = np.asarray(reference, dtype=np.float64).ravel()
    if ref.shape != t.shape:
        raise ValueError(f"reference has {ref.size} values for {t.size} samples")
    moved = t != ref
    if not moved.any():
        return float("nan")
    return float(np.mean(np.sign(p[moved] - ref[moved]) == np.sign(t[moved] - ref[moved])))


# --------------------------------------------------------------------------- ranking (per day)
def _wide(scores, labels) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Accept (datetime, instrument) Series or (days x stocks) frames/arrays; return aligned arrays."""
    if isinstance(scores, pd.Series) and isinstance(scores.index, pd.MultiIndex):
        if not isinstance(labels, pd.Series):
            raise TypeError("with a MultiIndex Series of scores, labels must be a Series on the same index")
        both = pd.concat({"s": scores, "l": labels}, axis=1, join="inner")
        # unstack keeps appearance order when the index has unused level values (pandas 3):
        # sort, so days come out in time order and stocks in a fixed order
        s = both["s"].unstack().sort_index().sort_index(axis=1)
        lab = both["l"].unstack().reindex(index=s.index, columns=s.columns)
        return s.to_numpy(float), lab.to_numpy(float), s.index
    if isinstance(scores, pd.DataFrame):
        if isinstance(labels, pd.Series) and isinstance(labels.index, pd.MultiIndex):
            labels = labels.unstack()
        lab = pd.DataFrame(labels).reindex(index=scores.index, columns=scores.columns)
        return scores.to_numpy(float), lab.to_numpy(float), scores.index
    s, lab = np.asarray(scores, float), np.asarray(labels, float)
    if s.ndim != 2 or s.shape != lab.shape:
        raise ValueError("scores and labels must be (days, stocks) arrays of the same shape")
    return s, lab, pd.RangeIndex(s.shape[0])


def _rank_rows(x: np.ndarray) -> np.ndarray:
    """Average ranks along each row, NaN kept as NaN (ties share their mean rank, as Spearman needs)."""
    return pd.DataFrame(x).rank(axis=1).to_numpy(float)


def _row_corr(a: np.ndarray, b: np.ndarray, min_count: int = 2) -> np.ndarray:
    """Pearson correlation per row over entries where both are finite; NaN for degenerate rows.

    pandas' ``corrwith`` does the work. A row whose valid values are all equal has no
    correlation (scipy: NaN), but the mean subtraction may leave rounding residue there,
    so such rows are set to NaN by an exact test.
    """
    ok = np.isfinite(a) & np.isfinite(b)
    left, right = pd.DataFrame(np.where(ok, a, np.nan)), pd.DataFrame(np.where(ok, b, np.nan))
    corr = left.corrwith(right, axis=1).to_numpy(float, copy=True)
    const = (left.max(axis=1) == left.min(axis=1)) | (right.max(axis=1) == right.min(axis=1))
    corr[(ok.sum(axis=1) < min_count) | const.to_numpy()] = np.nan
    return corr


def daily_ic(scores, labels, method: str = "pearson") -> pd.Series:
    """IC of each day: correlation across stocks between score and label (``pearson`` or ``spearman``).

    Stocks with a missing score or label that day are left out of that day's correlation.
    """
    s, lab, days = _wide(scores, labels)
    if method == "spearman":
        both = np.isfinite(s) & np.isfinite(lab)
        s, lab = _rank_rows(np.where(both, s, np.nan)), _rank_rows(np.where(both, lab, np.nan))
    elif method != "pearson":
        raise ValueError("method must be 'pearson' or 'spearman'")
    return pd.Series(_row_corr(s, lab), index=days, name="rank_ic" if method == "spearman" else "ic")


def precision_at_n(scores, labels, n: int = 10, threshold: float = 0.0) -> float:
    """Mean over days of the share of the top-``n`` scored stocks whose label exceeds ``threshold``.

    HIST and MTMD evaluate this on the cross-sectionally rank-normalised label, so "> 0"
    there means "above the day's median return"; pass labels accordingly.
    """
    s, lab, _ = _wide(scores, labels)
    valid = np.isfinite(s) & np.isfinite(lab)
    s = np.where(valid, s, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")[:, :n]
    top_lab = np.take_along_axis(np.where(valid, lab, np.nan), order, axis=1)
    enough = valid.sum(axis=1) >= n
    hits = (top_lab > threshold).sum(axis=1) / n
    return float(np.mean(hits[enough])) if enough.any() else float("nan")


def ranking_report(scores, labels, precision_n: tuple[int, ...] = ()) -> dict[str, float]:
    """IC, ICIR, Rank IC, Rank ICIR (days with no valid correlation skipped) and Precision@N."""
    ic = daily_ic(scores, labels).dropna()
    ric = daily_ic(scores, labels, "spearman").dropna()
    out = {
        "IC": float(ic.mean()),
        "ICIR": float(ic.mean() / ic.std(ddof=1)) if len(ic) > 1 else float("nan"),
        "RankIC": float(ric.mean()),
        "RankICIR": float(ric.mean() / ric.std(ddof=1)) if len(ric) > 1 else float("nan"),
        "days": int(len(ic)),
    }
    for n in precision_n:
        out[f"P@{n}"] = precision_at_n(scores, labels, n)
    return out


# --------------------------------------------------------------------------- seeds
def mean_std(frames: list[pd.DataFrame] | pd.DataFrame, by: str | list[str] | None = None) -> pd.DataFrame:
    """Mean and sample std over seeds of every numeric column (``by`` keeps groups apart).

    Returns columns ``<metric>_mean`` and ``<metric>_std`` plus ``n_seeds``.
    """
    df = pd.concat(frames, ignore_index=True) if isinstance(frames, list) else frames
    by = [by] if isinstance(by, str) else by
    numeric = [c for c in df.select_dtypes("number").columns if c != "seed" and c not in (by or [])]
    grouped = df.groupby(by, sort=False) if by else df.assign(_all=0).groupby("_all")
    mean = grouped[numeric].mean().add_suffix("_mean")
    std = grouped[numeric].std(ddof=1).add_suffix("_std")
    out = pd.concat([mean, std], axis=1)
    out["n_seeds"] = grouped.size()
    order = [f"{c}_{k}" for c in numeric for k in ("mean", "std")] + ["n_seeds"]
    out = out[order]
    return out.reset_index(drop=not by)


def format_mean_std(table: pd.DataFrame, metrics: list[str], digits: int = 4) -> pd.DataFrame:
    """'0.0512 ± 0.0031' strings from a :func:`mean_std` table (for the book's tables).

    Columns that are not metric statistics (the ``by`` groups, ``n_seeds``) are kept. With a
    single seed the standard deviation is undefined and only the value is printed.
    """
    stats = {f"{m}_{k}" for m in metrics for k in ("mean", "std")}
    keep = [c for c in table.columns if c not in stats and not c.endswith(("_mean", "_std"))]
    out = table[keep].copy()
    for m in metrics:
        mu, sd = table[f"{m}_mean"], table[f"{m}_std"]
        # one seed has no spread: print the value alone rather than a made-up "± 0"
        out[m] = [f"{a:.{digits}f}" if np.isnan(b) else f"{a:.{digits}f} ± {b:.{digits}f}" for a, b in zip(mu, sd)]
    return out
