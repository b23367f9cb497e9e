"""The papers' printed tables, and verdicts that never rank models inside the noise.

Two sources of noise decide whether a difference is real:

* **days** -- a mean over a test period of a few hundred days has a standard error. For
  rankings the daily IC gives a t-statistic, ICIR x sqrt(days), and two models on the
  same days are compared with a paired t-test of their daily ICs. For point forecasts the
  Diebold-Mariano test (with the Harvey-Leybourne-Newbold small-sample correction)
  compares two forecasts' losses on the same samples.
* **seeds** -- a network trained again with another seed gives other numbers. A
  difference counts only if it also exceeds twice its standard error over seeds. With a
  single seed the training noise is unknown and the verdict says so.

A verdict is "better", "worse" or "indistinguishable" (at level ``alpha``, 0.05 by default).
Deterministic baselines (persistence, momentum) carry ``seed == -1`` and no training noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import metrics

ALPHA = 0.05
DETERMINISTIC_SEED = -1


# --------------------------------------------------------------------------- the papers' tables
def paper_tables(path: str | Path) -> dict[str, pd.DataFrame]:
    """Every table of a paper's YAML file (``src/repro/papers/<paper>.yaml``), numbers as printed.

    Each table has ``columns``, ``rows`` (``null`` for a value the paper does not give),
    ``index`` (the columns that name a row), ``source`` (where in the paper) and optional
    ``notes``; the last two travel in ``DataFrame.attrs``.
    """
    import yaml

    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    out = {}
    for name, table in spec.items():
        frame = pd.DataFrame(table["rows"], columns=table["columns"])
        frame = frame.fillna(np.nan).infer_objects()
        if table.get("index"):
            frame = frame.set_index(table["index"])
        frame.attrs.update(source=table.get("source", ""), notes=table.get("notes", ""), name=name)
        out[name] = frame
    return out


def side_by_side(ours: pd.DataFrame, paper: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Our values and the paper's in adjacent columns ("IC (ours)", "IC (paper)") for each of our rows.

    The paper's value is empty (NaN) where it has no such row or metric.
    """
    parts = {}
    for c in columns:
        parts[f"{c} (ours)"] = ours[c] if c in ours else np.nan
        parts[f"{c} (paper)"] = paper[c].reindex(ours.index) if c in paper else np.nan
    return pd.DataFrame(parts, index=ours.index)


# --------------------------------------------------------------------------- tests
def t_test(values: Sequence[float]) -> tuple[float, float, int]:
    """One-sample t-statistic of the mean against zero, its two-sided p-value, and n (NaN dropped).

    For daily ICs this is ICIR x sqrt(days).
    """
    x = pd.Series(values, dtype=float).dropna().to_numpy()
    n = len(x)
    if n < 2:
        return float("nan"), float("nan"), n
    sd = x.std(ddof=1)
    if sd == 0:
        t = float("inf") * np.sign(x.mean()) if x.mean() != 0 else float("nan")
        return t, (0.0 if x.mean() != 0 else float("nan")), n
    t = float(x.mean() / sd * np.sqrt(n))
    return t, float(2 * stats.t.sf(abs(t), n - 1)), n


def diebold_mariano(loss_a: Sequence[float], loss_b: Sequence[float], horizon: int = 1) -> tuple[float, float]:
    """Diebold-Mariano statistic for equal expected loss of two forecasts of the same targets.

    ``loss_a`` and ``loss_b`` are per-sample losses (e.g. squared errors) in time order;
    negative DM means ``a`` has the smaller loss. The variance of the mean loss
    differential uses autocovariances up to ``horizon - 1`` (Diebold & Mariano 1995), the
    statistic is scaled by Harvey, Leybourne & Newbold's (1997) correction and compared
    with Student's t with n - 1 degrees of freedom. Returns (DM, two-sided p).
    """
    d = np.asarray(loss_a, float) - np.asarray(loss_b, float)
    d = d[np.isfinite(d)]
    n = len(d)
    if n < 3:
        return float("nan"), float("nan")
    dc = d - d.mean()
    var = (np.sum(dc * dc) + 2 * sum(np.sum(dc[k:] * dc[:-k]) for k in range(1, horizon))) / n  # autocovariances
    if var <= 0:
        return float("nan"), float("nan")
    dm = d.mean() / np.sqrt(var / n)
    dm *= np.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    return float(dm), float(2 * stats.t.sf(abs(dm), n - 1))


def _seed_check(per_seed_a: pd.Series, per_seed_b: pd.Series, diff: float) -> tuple[float, str]:
    """Standard error over seeds of a difference of two means, and whether ``diff`` clears 2 of them.

    Returns (se, state) with state "clears", "within" or "unknown" (a trained model with one seed).
    """
    se2, unknown = 0.0, False
    for per_seed in (per_seed_a, per_seed_b):
        if (per_seed.index == DETERMINISTIC_SEED).all():
            continue  # no training noise
        if len(per_seed) < 2:
            unknown = True
            continue
        se2 += per_seed.var(ddof=1) / len(per_seed)
    se = float(np.sqrt(se2))
    if unknown:
        return se, "unknown"
    return se, "clears" if abs(diff) > 2 * se else "within"


def _verdict(p: float, diff: float, seeds: str, alpha: float, higher_is_better: bool = True) -> tuple[str, str]:
    """(verdict, why): "indistinguishable" because of the days ("days") or the seeds ("seeds"), else a ranking."""
    if not np.isfinite(p) or p >= alpha:
        return "indistinguishable", "days"
    if seeds == "within":
        return "indistinguishable", "seeds"
    word = "better" if (diff > 0) == higher_is_better else "worse"
    return word + (" (one seed: training noise unknown)" if seeds == "unknown" else ""), ""


# --------------------------------------------------------------------------- rankings
def daily_ic_frame(predictions: pd.DataFrame, keys: Sequence[str] = ("model", "seed")) -> pd.DataFrame:
    """Daily IC and Rank IC of every (keys) group of long predictions (datetime, instrument, score, label)."""
    rows = []
    for key, g in predictions.groupby(list(keys), sort=False):
        s = g.pivot(index="datetime", columns="instrument", values="score")
        lab = g.pivot(index="datetime", columns="instrument", values="label")
        day = pd.DataFrame({"IC": metrics.daily_ic(s, lab), "RankIC": metrics.daily_ic(s, lab, "spearman")})
        day.index.name = "datetime"
        rows.append(day.reset_index().assign(**dict(zip(keys, key if isinstance(key, tuple) else (key,)))))
    cols = [*keys, "datetime", "IC", "RankIC"]
    return pd.concat(rows, ignore_index=True)[cols] if rows else pd.DataFrame(columns=cols)


def ic_significance(daily: pd.DataFrame, metric: str = "IC", by: str = "model") -> pd.DataFrame:
    """Per model: mean daily ``metric`` (over days and seeds), its std over seeds, and the t-test against zero.

    The t-statistic is taken on the seed-averaged daily series (ICIR x sqrt(days)).
    """
    rows = {}
    for name, g in daily.groupby(by, sort=False):
        per_seed = g.groupby("seed")[metric].mean()
        t, p, n = t_test(g.groupby("datetime")[metric].mean())
        rows[name] = {"mean": float(per_seed.mean()), "seed std": float(per_seed.std(ddof=1)),
                      "seeds": int((per_seed.index != DETERMINISTIC_SEED).sum()), "days": n, "t": t, "p": p}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(by)


def paired_ic_test(daily: pd.DataFrame, a: str, b: str, metric: str = "IC", by: str = "model") -> dict:
    """``a`` minus ``b``: mean difference of the seed-averaged daily ``metric`` on common days, paired t-test."""
    wide = daily[daily[by].isin([a, b])].groupby([by, "datetime"])[metric].mean().unstack(by)
    diff = (wide[a] - wide[b]).dropna()
    t, p, n = t_test(diff)
    return {"diff": float(diff.mean()) if n else float("nan"), "t": t, "p": p, "days": n}


def ranking_verdict(daily: pd.DataFrame, reference: str, metric: str = "IC", alpha: float = ALPHA,
                    by: str = "model") -> pd.DataFrame:
    """Each model's mean ``metric`` with its noise, and a verdict against ``reference`` that never ranks inside it.

    Columns: mean, seed std, seeds, days, t and p (against zero), the difference to the
    reference, its paired t and p over days, the seed standard error of the difference,
    and the verdict ("better" / "worse" / "indistinguishable" than the reference).
    """
    table = ic_significance(daily, metric, by)
    if reference not in table.index:
        raise KeyError(f"reference model {reference!r} is not in the results; models: {list(table.index)}")
    seeds = {name: g.groupby("seed")[metric].mean() for name, g in daily.groupby(by, sort=False)}
    out = []
    for name in table.index:
        row = table.loc[name].to_dict()
        if name == reference:
            row.update({"vs reference": np.nan, "paired t": np.nan, "paired p": np.nan, "seed se": np.nan,
                        "verdict": "reference", "why": ""})
        else:
            pair = paired_ic_test(daily, name, reference, metric, by)
            se, state = _seed_check(seeds[name], seeds[reference], pair["diff"])
            word, why = _verdict(pair["p"], pair["diff"], state, alpha)
            row.update({"vs reference": pair["diff"], "paired t": pair["t"], "paired p": pair["p"], "seed se": se,
                        "verdict": word, "why": why})
        out.append(pd.Series(row, name=name))
    result = pd.DataFrame(out).rename_axis(by)
    result.attrs.update(reference=reference, metric=metric, alpha=alpha)
    return result


def ranking_sentences(verdict: pd.DataFrame) -> list[str]:
    """Markdown bullets that say what a :func:`ranking_verdict` table shows, numbers included."""
    ref, metric, alpha = (verdict.attrs[k] for k in ("reference", "metric", "alpha"))
    r = verdict.loc[ref]
    zero = "different from zero" if r["p"] < alpha else "indistinguishable from zero"
    noise = (f"seed std {_fmt(r['seed std'])} over {int(r['seeds'])} seed(s)" if r["seeds"] else
             "deterministic: no training noise")
    lines = [f"- **{ref}**: {metric} {r['mean']:.4f} (t = {r['t']:.2f} over {int(r['days'])} days, p = {r['p']:.3f}: "
             f"{zero}; {noise})."]
    heads = {("better", ""): f"Better than {ref} on {metric}",
             ("better", "one seed"): f"Better than {ref} on {metric} over the days, with training noise unknown "
                                     "(one seed)",
             ("worse", ""): f"Worse than {ref} on {metric}",
             ("worse", "one seed"): f"Worse than {ref} on {metric} over the days, with training noise unknown "
                                    "(one seed)",
             ("indistinguishable", "days"): f"Indistinguishable from {ref} (paired p >= {alpha} over the days)",
             ("indistinguishable", "seeds"): f"Indistinguishable from {ref} (paired p < {alpha} over the days, but the "
                                             "difference is within twice its standard error over seeds)"}
    groups: dict[tuple[str, str], list[str]] = {}
    for name, row in verdict.drop(index=ref).iterrows():
        seeds = f", 2 x seed se {2 * row['seed se']:.4f}" if row["why"] == "seeds" else ""
        key = (row["verdict"].split(" (")[0], "one seed" if "one seed" in row["verdict"] else row["why"])
        groups.setdefault(key, []).append(
            f"{name} ({metric} {row['mean']:+.4f}, difference {row['vs reference']:+.4f}, p = {row['paired p']:.2f}"
            f"{seeds})")
    for key, head in heads.items():
        if key in groups:
            lines.append(f"- {head}: " + "; ".join(groups[key]) + ".")
    unknown = [str(n) for n, row in verdict.iterrows() if row["seeds"] == 1]
    if unknown:
        lines.append("- Trained with one seed, so training noise is unknown and a ranking that involves them "
                     f"rests on the days alone: {', '.join(unknown)}.")
    return lines


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.{digits}f}"


# --------------------------------------------------------------------------- point forecasts
def compare_forecasts(a: pd.DataFrame, b: pd.DataFrame, alpha: float = ALPHA, horizon: int = 1) -> pd.DataFrame:
    """Forecasts ``a`` against ``b`` on the same samples, per ticker, with squared-error loss.

    Each frame has ``seed``, ``ticker``, ``target_date``, ``y_true`` and ``y_pred``. Per
    ticker: MSE of each (mean over seeds), the skill 1 - MSE_a / MSE_b, the Diebold-Mariano
    test on the seed-averaged loss differential, the seed check, and the verdict ("better":
    ``a`` has the smaller loss).
    """
    rows = []
    for ticker in sorted(set(a["ticker"]) & set(b["ticker"])):
        loss = {}
        for name, frame in (("a", a), ("b", b)):
            f = frame[frame["ticker"] == ticker]
            se = (f["y_true"] - f["y_pred"]) ** 2
            loss[name] = pd.DataFrame({"seed": f["seed"], "date": f["target_date"], "loss": se})
        wide = {k: v.pivot_table(index="date", columns="seed", values="loss") for k, v in loss.items()}
        days = wide["a"].index.intersection(wide["b"].index)
        la, lb = wide["a"].loc[days].mean(axis=1), wide["b"].loc[days].mean(axis=1)
        dm, p = diebold_mariano(la.to_numpy(), lb.to_numpy(), horizon)
        mse_a, mse_b = wide["a"].loc[days].mean(), wide["b"].loc[days].mean()  # per seed
        diff = float(la.mean() - lb.mean())
        _, state = _seed_check(mse_a, mse_b, diff)
        rows.append({"ticker": ticker, "MSE": float(mse_a.mean()), "MSE reference": float(mse_b.mean()),
                     "skill": 1 - float(mse_a.mean()) / float(mse_b.mean()), "DM": dm, "p": p, "samples": len(days),
                     **dict(zip(("verdict", "why"), _verdict(p, diff, state, alpha, higher_is_better=False)))})
    return pd.DataFrame(rows).set_index("ticker") if rows else pd.DataFrame()


def point_verdict(predictions: pd.DataFrame, reference: str, by: str = "model", within: str = "experiment",
                  alpha: float = ALPHA) -> pd.DataFrame:
    """Every model against ``reference`` (e.g. persistence) within each experiment, per ticker.

    ``predictions`` holds one row per sample and seed: ``within``, ``by``, ``seed``,
    ``ticker``, ``target_date``, ``y_true``, ``y_pred``. Returns one row per (experiment,
    model, ticker) with the columns of :func:`compare_forecasts`.
    """
    parts = []
    for exp, group in predictions.groupby(within, sort=False):
        ref = group[group[by] == reference]
        if ref.empty:
            continue
        for name, g in group[group[by] != reference].groupby(by, sort=False):
            table = compare_forecasts(g, ref, alpha)
            if len(table):
                parts.append(table.reset_index().assign(**{within: exp, by: name}))
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True).set_index([within, by, "ticker"])
    out.attrs.update(reference=reference, alpha=alpha)
    return out


def variant_verdict(predictions: pd.DataFrame, a: str, b: str, key: str = "experiment", by: str = "model",
                    alpha: float = ALPHA) -> pd.DataFrame:
    """Variant ``a`` against ``b`` of the same model (e.g. with and without a feature), per ticker.

    Rows whose ``key`` is ``a`` or ``b``; for every model present in both, the columns of
    :func:`compare_forecasts` ("better": ``a`` has the smaller squared error). The samples
    must be the same days in both variants for the comparison to be paired.
    """
    parts = []
    for name, g in predictions[predictions[key].isin([a, b])].groupby(by, sort=False):
        if {a, b} <= set(g[key]):
            table = compare_forecasts(g[g[key] == a], g[g[key] == b], alpha)
            parts.append(table.reset_index().assign(**{by: name}))
    if not parts:
        return pd.DataFrame(columns=["verdict"])
    out = pd.concat(parts, ignore_index=True).set_index([by, "ticker"])
    out.attrs.update(a=a, b=b, alpha=alpha)
    return out


def point_summary(verdict: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, model): mean skill over tickers and how many tickers are better / worse / tied."""
    levels = list(verdict.index.names[:-1])
    word = verdict["verdict"].str.split(" ").str[0]
    table = verdict.groupby(levels, sort=False).agg(**{"mean skill": ("skill", "mean"), "tickers": ("skill", "size")})
    for w in ("better", "worse", "indistinguishable"):
        table[w] = (word == w).groupby(level=levels, sort=False).sum()
    table.attrs.update(verdict.attrs)
    return table


def point_sentences(summary: pd.DataFrame, reference: str | None = None) -> list[str]:
    """Markdown bullets from :func:`point_summary`: which models beat the reference, on how many tickers."""
    ref = reference or summary.attrs.get("reference", "the reference")
    lines = []
    for key, row in summary.iterrows():
        name = " / ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
        tickers = f"{int(row['tickers'])} ticker" + ("s" if row["tickers"] != 1 else "")
        lines.append(f"- **{name}**: MSE skill over {ref} {row['mean skill']:+.3f} (mean over {tickers}); better on "
                     f"{int(row['better'])}, worse on {int(row['worse'])}, indistinguishable on "
                     f"{int(row['indistinguishable'])} (Diebold-Mariano, p < {summary.attrs.get('alpha', ALPHA)}).")
    return lines


__all__ = ["ALPHA", "compare_forecasts", "daily_ic_frame", "diebold_mariano", "ic_significance", "paired_ic_test",
           "paper_tables", "point_sentences", "point_summary", "point_verdict", "ranking_sentences",
           "ranking_verdict", "side_by_side", "t_test", "variant_verdict"]
