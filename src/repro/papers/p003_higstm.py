"""Paper 003 (HIGSTM) on the cross-sectional protocol: its config, features, models and tables.

Data ([003] section 4.1, appendix A.1): the constituents of a CSI index on a fixed day
(2023-12-29 by default, as the paper -- survivorship-biased; ``point_in_time=True`` uses
membership on each day instead), daily 2010-2023, the index's own series for the
decomposition. Of the paper's 45 Tushare fields only those derivable from open, high,
low, close, volume and the adjustment factor are built (:data:`FEATURES`); the others are
listed in :data:`UNAVAILABLE`. Every feature of day t uses data up to t; the label is the
return from the close of t to the close of t + horizon.

Training ([003] section 3.5): one sample is one trading day with all its stocks; the loss
is minus the Pearson correlation of scores and returns across the day's stocks
[003 eq. 22]. Model selection by IC on the validation days; the test days are scored once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from ..config import override, param
from ..features import cs_zscore_array
from ..models import panel_baselines as pb
from ..models.higstm import HIGSTM
from ..protocols import cross_section as cs
from . import tables as _tables

NOTEBOOK = "04_higstm"
PAPER = "Paper 003 (HIGSTM)"

#: Features built from OHLCV and the adjustment factor ([003] Table 4 names), made scale-free.
FEATURES = ["open", "high", "low", "pre_close", "pct_chg", "change", "ma5", "ma10", "ma15", "ma20", "ma25",
            "vol", "amount"]
FEATURE_NOTES = {
    "open": "open / close - 1 (same day)", "high": "high / close - 1", "low": "low / close - 1",
    "pre_close": "previous close / close - 1", "pct_chg": "close / previous close - 1",
    "change": "close - previous close, in raw (unadjusted) price units / 100 (previous close: the last one "
              "traded, also across a suspension)",
    **{f"ma{k}": f"{k}-day mean close / close - 1" for k in (5, 10, 15, 20, 25)},
    "vol": "log(1 + raw volume), z-scored across the day's stocks",
    "amount": "log(1 + raw close x raw volume), z-scored across the day's stocks (no amount field upstream)",
}
#: [003] Table 4 fields that no reachable source provides.
UNAVAILABLE = ["turnover_rate", "turnover_rate_f", "volume_ratio", "pe", "pe_ttm", "pb", "ps", "ps_ttm", "dv_ratio",
               "dv_ttm", "total_share", "float_share", "free_share", "total_mv", "circ_mv", "buy_sm_vol",
               "buy_sm_amount", "sell_sm_vol", "sell_sm_amount", "buy_md_vol", "buy_md_amount", "sell_md_vol",
               "sell_md_amount", "buy_lg_vol", "buy_lg_amount", "sell_lg_vol", "sell_lg_amount", "buy_elg_vol",
               "buy_elg_amount", "sell_elg_vol", "sell_elg_amount", "net_mf_vol", "net_mf_amount", "up_limit",
               "down_limit"]

#: The model's switches for each row of [003] Table 3.
ABLATIONS = {"w/o TIGSTM": ("tigstm",), "w/o GIGSTM": ("gigstm",), "w/o T&GIGSTM": ("tigstm", "gigstm"),
             "w/o Decomposition": ("decomposition",), "w/o Index": ("index",)}
BASELINES = ("LSTM", "GRU", "Mamba", "iTransformer", "Industry-GAT", "MASTER")
TABLE2_METRICS = ("IC", "RankIC", "ICIR", "PNL", "MAXD", "SHARPE", "WINR", "PL")
#: Our table adds the return in excess of the index (annualised) and the information ratio.
OUR_METRICS = (*TABLE2_METRICS, "excess_AR", "IR")
#: Models that need no training: the floors, momentum and the no-skill universe portfolio.
FLOORS = (cs.FLOOR.format("raw"), cs.FLOOR.format("rank"))
UNTRAINED = (*FLOORS, cs.MOMENTUM, cs.UNIVERSE)
RANK, CONVERGED, PIT = " (rank label)", " (converged)", " (point-in-time)"
TRAINED = ("HIGSTM", *BASELINES)


@dataclass(frozen=True)
class Config(cs.Config):
    """The chapter's parameters: ours (the ``book`` profile) beside the paper's (appendix A.4)."""

    notebook: ClassVar[str] = NOTEBOOK

    universes: list[str] = override(cs.Config, "universes", ["csi500"], paper=["csi500", "csi800", "csi1000"])
    as_of: str = override(cs.Config, "as_of", "2023-12-29", paper="2023-12-29")
    window: int = override(cs.Config, "window", 16, paper=16, help="l_in: days of history per input")
    split_counts: list[int] | None = override(cs.Config, "split_counts", [2677, 239, 243], paper=[2677, 239, 243])
    d_model: int = param(32, "model width", paper=64, minimum=1)
    d_state: int = param(16, "SSM state size", paper=16, minimum=1)
    d_conv: int = param(4, "Mamba's causal convolution width", paper=4, minimum=1)
    expand: int = param(1, "Mamba's inner expansion (Mamba's own default: 2)", minimum=1)
    d_te: int = param(16, "time-step macro information [003 eq. 13]", paper=32, minimum=1)
    d_ge: int = param(16, "global macro information [003 eq. 18]", paper=32, minimum=1)
    d_attn: int = param(16, "correlation attention [003 eq. 11]", paper=32, minimum=1)
    top_share: float = param(0.3, "neighbours kept per stock and time step [003 eq. 11]", paper=0.3)
    epochs: int = override(cs.Config, "epochs", 4)
    days_per_epoch: int | None = override(cs.Config, "days_per_epoch", 70, paper=None)
    valid_days: int | None = override(cs.Config, "valid_days", None, paper=None)
    seeds: list[int] = override(cs.Config, "seeds", [0, 1], paper="5 runs")
    ablation_seeds: list[int] = param([0], "seeds of the ablations", paper="5 runs")
    baselines: list[str] = param(list(BASELINES), "baselines trained on identical inputs", choices=BASELINES)
    ablations: list[str] = param(["w/o TIGSTM", "w/o T&GIGSTM"], "rows of Table 3 to run (the two cheapest)",
                                 paper=list(ABLATIONS), choices=ABLATIONS)
    rank_label_models: list[str] = param(["HIGSTM", "GRU"], "models also trained on the per-day rank label",
                                         choices=TRAINED)
    rank_label_seeds: list[int] | None = param([0], "seeds of the rank-label runs (None: seeds)")
    converged_models: list[str] = param(["GRU"], "models also trained on every training day until the validation "
                                        "IC stops improving (first seed, first universe)", choices=TRAINED)
    converged_epochs: int = param(8, "epochs at most of the converged runs", minimum=1)
    converged_patience: int = param(2, "epochs without a better validation IC before a converged run stops",
                                    minimum=1)
    pit_models: list[str] = param(["GRU"], "models also trained and tested on the point-in-time universe",
                                  choices=TRAINED)
    focus_stock: str = param("SH600519", "the graph case study's stock (Kweichow Moutai; another member if absent)")


# --------------------------------------------------------------------------- features
def features(prices: cs.Prices) -> dict[str, np.ndarray]:
    """The 13 scale-free features of :data:`FEATURES` for every day, from data up to that day."""
    o, h, lo, c, v, f = prices.open, prices.high, prices.low, prices.close, prices.volume, prices.factor
    with np.errstate(invalid="ignore", divide="ignore"):
        prev = prices.last_valid(c)  # Tushare's pre_close: the last traded close, also after a suspension
        raw_close, raw_prev = c / f, prev / prices.last_valid(f)
        close_df = pd.DataFrame(c)
        out = {"open": o / c - 1, "high": h / c - 1, "low": lo / c - 1, "pre_close": prev / c - 1,
               "pct_chg": c / prev - 1, "change": (raw_close - raw_prev) / 100.0}
        for k in (5, 10, 15, 20, 25):  # NaN when any of the k days is missing (suspended)
            ma = close_df.rolling(k, min_periods=k).mean().to_numpy(np.float32)
            out[f"ma{k}"] = ma / c - 1
        out["vol"] = cs_zscore_array(np.log1p(v))
        out["amount"] = cs_zscore_array(np.log1p(raw_close * v))
    return {name: out[name] for name in FEATURES}


def prepare(cfg: Config, universe: str) -> cs.Experiment:
    """One universe's panel with the chapter's features, split by the paper's day counts."""
    return cs.prepare(cfg, universe, features)


def prepare_point_in_time(cfg: Config, universe: str) -> cs.Experiment:
    """The same universe point-in-time: every stock that was a member within the data, counted on member days
    only; named ``"<universe> (point-in-time)"`` in the results."""
    experiment = prepare(dataclasses.replace(cfg, point_in_time=True), universe)
    experiment.panel.universe = universe + PIT
    return experiment


def rank_label_config(cfg: Config) -> Config:
    """The chapter's config with the rank label (CSRankNorm) for training and the rank-label seeds."""
    return dataclasses.replace(cfg, train_label="rank", seeds=cfg.rank_label_seeds or cfg.seeds)


def converged_config(cfg: Config) -> Config:
    """Every training day in every epoch and every validation day, until the validation IC stops improving."""
    return dataclasses.replace(cfg, days_per_epoch=None, valid_days=None, epochs=cfg.converged_epochs,
                               patience=cfg.converged_patience, seeds=cfg.seeds[:1])


def feature_table() -> pd.DataFrame:
    return pd.DataFrame({"definition here": [FEATURE_NOTES[f] for f in FEATURES]}, index=pd.Index(FEATURES,
                                                                                                  name="feature"))


# --------------------------------------------------------------------------- models
def _higstm(ablation: tuple[str, ...] = ()) -> cs.Factory:
    """HIGSTM with the chapter's dimensions, switched parts off as in a row of [003] Table 3."""
    def build(panel: cs.Panel, cfg: Config) -> HIGSTM:
        return HIGSTM(len(panel.features), panel.n_stocks, cfg.window, cfg.d_model, cfg.d_state, cfg.d_conv,
                      cfg.expand, cfg.d_te, cfg.d_ge, cfg.d_attn, cfg.top_share, ablation=ablation)
    return build


def _industry_gat(panel: cs.Panel, cfg: Config) -> pb.IndustryGAT:
    adjacency = pb.industry_adjacency(panel.industry.reindex(panel.codes))
    return pb.IndustryGAT(len(panel.features), adjacency, cfg.d_model)


#: Every model of the chapter by name: HIGSTM, its ablations (Table 3) and the baselines on identical inputs.
MODELS: dict[str, cs.Factory] = {
    "HIGSTM": _higstm(),
    **{name: _higstm(parts) for name, parts in ABLATIONS.items()},
    "LSTM": lambda panel, cfg: pb.RNN(len(panel.features), cfg.d_model, cell="lstm"),
    "GRU": lambda panel, cfg: pb.RNN(len(panel.features), cfg.d_model, cell="gru"),
    "Mamba": lambda panel, cfg: pb.MambaTS(len(panel.features), cfg.d_model, cfg.d_state, cfg.d_conv, cfg.expand),
    "iTransformer": lambda panel, cfg: pb.ITransformer(len(panel.features), cfg.window, cfg.d_model),
    "Industry-GAT": _industry_gat,
    "MASTER": lambda panel, cfg: pb.MASTER(len(panel.features), cfg.window, cfg.d_model),
}


# --------------------------------------------------------------------------- the paper's tables beside ours
def paper_tables() -> dict[str, pd.DataFrame]:
    return _tables(__name__)


def headlines(res) -> list:
    """The overview's rows (:mod:`repro.overview`): Table 2's HIGSTM IC per universe beside ours (mean and std over
    seeds, t over the test days) and the momentum score's, with HIGSTM against momentum and the ridge floor
    (paired t-test on the daily IC, seed check)."""
    from .. import overview, report

    out = []
    printed = paper_tables()["table2"]
    for universe in printed.index.get_level_values("universe").unique():
        if not res.ran("universes", universe):
            continue
        daily = res.rows("daily_ic.csv", f"the daily IC on {universe}", universe=universe)
        for model in ("HIGSTM", cs.MOMENTUM):
            res.rows("daily_ic.csv", f"{model}'s daily IC on {universe}", universe=universe, model=model)
        table = report.ranking_verdict(daily, "HIGSTM", "IC")
        ours = table.loc["HIGSTM"]
        word, words = overview.ranking_words(table, "HIGSTM", cs.MOMENTUM, "momentum")
        extra = [overview.ranking_words(table, "HIGSTM", f, "the ridge floor")[1] for f in FLOORS[:1]
                 if f in table.index]
        out.append(overview.Headline(
            claim=f"HIGSTM IC {printed.loc[(universe, 'HIGSTM'), 'IC']:.4f} on {universe.upper()} (Table 2)",
            metric=f"daily Pearson IC, {universe.upper()}, test days",
            paper_value=float(printed.loc[(universe, "HIGSTM"), "IC"]),
            ours=float(ours["mean"]), ours_std=float(ours["seed std"]), seeds=int(ours["seeds"]),
            baseline="momentum", baseline_value=float(table.loc[cs.MOMENTUM, "mean"]), vs_baseline=word,
            verdict=f"HIGSTM's IC has t = {ours['t']:.2f} over {int(ours['days'])} days; it is "
                    + " and ".join([words, *extra]) + ".",
            section="Results beside the paper's Table 2"))
    return out


def seed_table(results: pd.DataFrame, models: list[str], show: tuple[str, ...] = OUR_METRICS) -> pd.DataFrame:
    """Mean and std over seeds of ``show`` per (universe, model), for the given models (the results file)."""
    from .. import metrics

    rows = results[results["model"].isin(models)]
    return metrics.mean_std(rows[["universe", "model", "seed", *show]], by=["universe", "model"])


def ours_vs_paper(table: pd.DataFrame, universe: str, show: tuple[str, ...] = OUR_METRICS,
                  paper: str = "table2") -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(Our "mean ± std" rows of a :func:`seed_table` for one universe, the paper's table for it or None)."""
    from .. import metrics

    ours = metrics.format_mean_std(table[table["universe"] == universe], list(show), 4)
    printed = paper_tables()[paper]
    theirs = printed.loc[universe] if universe in printed.index.get_level_values("universe") else None
    return ours.drop(columns="universe").set_index("model"), theirs


def beside_paper(table: pd.DataFrame, universe: str, show: tuple[str, ...] = ("IC", "PNL", "MAXD", "SHARPE", "WINR",
                                                                             "PL"),
                 paper: str = "table2") -> pd.DataFrame | None:
    """Our mean over seeds beside the paper's printed value, for each of our models (None: no such universe)."""
    from .. import report

    printed = paper_tables()[paper]
    if universe not in printed.index.get_level_values("universe"):
        return None
    ours = table[table["universe"] == universe].set_index("model")[[f"{m}_mean" for m in show]]
    ours.columns = list(show)
    return report.side_by_side(ours, printed.loc[universe], [m for m in show if m in printed])


def rerun_baselines(models: list[str], paper: str = "table2") -> list[str]:
    """The paper's baselines that this chapter trains itself (the other rows of its table are quoted)."""
    printed = set(paper_tables()[paper].index.get_level_values("model")) - {"HIGSTM"}
    return [m for m in models if m in printed]


# --------------------------------------------------------------------------- the graph case study
def focus_member(panel: cs.Panel, wanted: str) -> str:
    """``wanted`` if it is in the panel, else a member of the liquor industry, else the first member."""
    from ..data import cn_industry

    if wanted in panel.codes:
        return wanted
    info = cn_industry.industries(panel.codes)
    same = [c for c in panel.codes if info.loc[c, "industry"] == "白酒"]
    return same[0] if same else panel.codes[0]


def graph_neighbours(graphs: dict[str, np.ndarray], panel: cs.Panel, focus: str, k: int = 10) -> pd.DataFrame:
    """The ``k`` largest attention weights around ``focus`` in the temporal-section graph (last time step)
    and the global graph, with each neighbour's industry."""
    from ..data import cn_industry

    info = cn_industry.industries(panel.codes)
    i = panel.codes.index(focus)
    rows = []
    for kind, key in (("temporal section", "temporal"), ("global", "global")):
        g = graphs.get(key)
        if g is None:
            continue
        w = (g[-1] if g.ndim == 3 else g)[i].copy()
        w[i] -= 1.0  # drop the identity added in [003 eq. 11] and [003 eq. 16]
        for j in np.argsort(-w)[:k]:
            code = panel.codes[j]
            rows.append({"graph": kind, "neighbour": code, "name": str(info.loc[code, "enname"]),
                         "weight": float(w[j]), "industry": info.loc[code, "industry"],
                         "same industry": info.loc[code, "industry"] == info.loc[focus, "industry"]})
    out = pd.DataFrame(rows)
    out.attrs.update(focus=focus, focus_name=str(info.loc[focus, "enname"]), industry=info.loc[focus, "industry"])
    return out


# --------------------------------------------------------------------------- verdicts
def verdict(daily: pd.DataFrame, cfg: Config, metric: str = "IC",
            reference: str = "HIGSTM") -> tuple[pd.DataFrame, list[str]]:
    """Per universe of ``cfg``: every model against ``reference`` on daily ``metric`` (t-tests over days, seed
    check), with the paper's claim for HIGSTM beside it. Returns (the table, markdown lines)."""
    from .. import report

    t2, tables, lines = paper_tables()["table2"], [], []
    for universe in cfg.universes:
        g = daily[daily["universe"] == universe]
        table = report.ranking_verdict(g, reference, metric)
        tables.append(table.assign(universe=universe).set_index("universe", append=True).reorder_levels([1, 0]))
        claim = (f" The paper reports {metric} {t2.loc[(universe, 'HIGSTM'), metric]:.4f} for HIGSTM."
                 if reference == "HIGSTM" and metric in t2 and (universe, "HIGSTM") in t2.index else "")
        lines += [f"**{universe.upper()}**.{claim}", "", *report.ranking_sentences(table), ""]
    return pd.concat(tables), lines


def _pair(daily: pd.DataFrame, universe: str, a: str, b: str, metric: str) -> dict:
    """``b`` against ``a`` (the reference) with the shared verdict rules: means, difference, paired p, verdict."""
    from .. import report

    g = daily[(daily["universe"] == universe) & daily["model"].isin([a, b])]
    v = report.ranking_verdict(g, a, metric)
    why = {"days": "", "seeds": " (within twice the seed s.e.)"}.get(v.loc[b, "why"], "")
    return {a: v.loc[a, "mean"], b: v.loc[b, "mean"], "difference": v.loc[b, "vs reference"],
            "paired p": v.loc[b, "paired p"], "verdict": v.loc[b, "verdict"] + why}


def label_table(daily: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Raw-return label against the per-day rank label, same model and seeds: IC and Rank IC of each, the
    difference (rank minus raw), its paired p over days and the verdict (the ridge floor included)."""
    pairs = [(m, m + RANK) for m in cfg.rank_label_models] + [FLOORS]
    rows = []
    for universe in cfg.universes:
        for raw, rank in pairs:
            for metric in ("IC", "RankIC"):
                r = _pair(daily, universe, raw, rank, metric)
                rows.append({"universe": universe, "model": raw.replace(" (raw label)", ""), "metric": metric,
                             "raw label": r[raw], "rank label": r[rank], "rank - raw": r["difference"],
                             "paired p": r["paired p"], "verdict": r["verdict"]})
    return pd.DataFrame(rows).set_index(["universe", "model", "metric"])


def label_sentences(table: pd.DataFrame) -> list[str]:
    """What the label comparison shows, per model, from the table."""
    lines = []
    said = lambda v: v if v.startswith("indistinguishable") else "rank label " + v  # noqa: E731
    for (universe, model), g in table.groupby(level=["universe", "model"], sort=False):
        parts = [f"{metric} {row['raw label']:+.4f} -> {row['rank label']:+.4f} (p = {row['paired p']:.2f}: "
                 f"{said(row['verdict'])})" for (_, _, metric), row in g.iterrows()]
        lines.append(f"- {universe.upper()}, {model}, raw -> rank label: " + "; ".join(parts) + ".")
    return lines


def converged_table(daily: pd.DataFrame, histories: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Each converged model beside the same model on the book budget and the ridge floor (first universe):
    test IC and Rank IC, epochs run, best epoch, and the verdict against the floor."""
    universe, floor, rows = cfg.universes[0], FLOORS[0], []
    for m in cfg.converged_models:
        hist = histories[(histories["model"] == m + CONVERGED) & (histories["universe"] == universe)]
        for metric in ("IC", "RankIC"):
            budget = _pair(daily, universe, floor, m, metric)
            conv = _pair(daily, universe, floor, m + CONVERGED, metric)
            rows.append({"model": m, "metric": metric, "budget run": budget[m], "converged": conv[m + CONVERGED],
                         "ridge floor": conv[floor], "converged - floor": conv["difference"],
                         "paired p": conv["paired p"], "verdict vs floor": conv["verdict"],
                         "epochs run": len(hist), "best epoch": int(hist.loc[hist["valid_IC"].idxmax(), "epoch"]),
                         "stopped early": len(hist) < cfg.converged_epochs})
    return pd.DataFrame(rows).set_index(["model", "metric"])


def converged_sentences(table: pd.DataFrame, cfg: Config, margin: float = 0.01) -> list[str]:
    """Does budget explain the gap to the paper? Not if the converged model stays within ``margin`` of the floor
    (or below it); partly if it beats the floor by more (paired test over days); otherwise the data cannot tell."""
    printed = paper_tables()["table2"]
    claim = printed.loc[(cfg.universes[0], "HIGSTM"), "IC"] if (cfg.universes[0], "HIGSTM") in printed.index else None
    paper_ic = f" of {claim:.4f}" if claim is not None else ""
    lines = []
    for model, g in table.groupby(level="model", sort=False):
        ic = g.xs("IC", level="metric").iloc[0]
        stop = (f"stopped after {ic['epochs run']} epochs (best: epoch {ic['best epoch']})" if ic["stopped early"]
                else f"reached the cap of {ic['epochs run']} epochs before its stopping rule (best: epoch "
                     f"{ic['best epoch']})")
        gap = ic["converged"] - ic["ridge floor"]
        lines.append(f"- {model} on every training day {stop}: test IC {ic['converged']:+.4f}, against "
                     f"{ic['budget run']:+.4f} on the book budget and {ic['ridge floor']:+.4f} for the ridge floor "
                     f"(difference {gap:+.4f}, paired p = {ic['paired p']:.2f}: {ic['verdict vs floor']}).")
        if gap <= margin:
            lines.append(f"  Trained to convergence it stays within {margin} of the linear floor or below it, so the "
                         f"training budget does not explain the gap to the paper's IC{paper_ic}: the features, the "
                         "label and the test year do.")
        elif ic["verdict vs floor"].startswith("better"):
            lines.append(f"  It beats the linear floor by more than {margin}: the book budget explains part of the "
                         f"gap to the paper's IC{paper_ic}.")
        else:
            lines.append(f"  It lies {gap:.4f} above the floor, but inside the noise of one test year: this run "
                         "cannot tell whether the budget matters.")
    return lines


def converged_curves(results: cs.Results, cfg: Config) -> tuple[pd.DataFrame, dict[str, float]]:
    """Validation IC per epoch of each converged run and the same model's budget run (first seed, first
    universe), with the ridge floor's validation IC as the reference line."""
    universe, seed = cfg.universes[0], cfg.seeds[0]
    names = [n for m in cfg.converged_models for n in (m + CONVERGED, m)]
    hist = results.histories()
    hist = hist[(hist["universe"] == universe) & (hist["seed"] == seed) & hist["model"].isin(names)]
    floor = results.first(FLOORS[0], universe).extras["valid_IC"]
    ordered = pd.concat([hist[hist["model"] == n].sort_values("epoch") for n in names], ignore_index=True)
    return ordered, {f"{FLOORS[0]}: {floor:+.4f}": floor}


def pit_table(metrics_frame: pd.DataFrame, cfg: Config, show: tuple[str, ...] = ("IC", "RankIC", "excess_AR",
                                                                                  "SHARPE")) -> pd.DataFrame:
    """The models run on both universes: the 2023-12-29 list (survivorship) beside point-in-time membership,
    mean over seeds."""
    models = [*cfg.pit_models, *UNTRAINED]
    rows = metrics_frame[metrics_frame["model"].isin(models)]
    means = rows.groupby(["universe", "model"], sort=False)[list(show)].mean()
    out = []
    for universe in cfg.universes:
        if universe + PIT not in means.index.get_level_values("universe"):
            continue
        fixed, pit = means.loc[universe].reindex(models), means.loc[universe + PIT].reindex(models)
        both = pd.concat({"members on " + cfg.as_of: fixed, "point-in-time": pit}, axis=1)
        out.append(both.assign(universe=universe).set_index("universe", append=True).reorder_levels([1, 0]))
    return pd.concat(out)


def pit_sentences(table: pd.DataFrame, cfg: Config) -> list[str]:
    """How much survivorship flatters the test year, from the no-skill portfolio and the models' ICs."""
    lines = []
    fixed_col = "members on " + cfg.as_of
    for universe, g in table.groupby(level="universe", sort=False):
        g = g.droplevel("universe")
        ew = g.loc[cs.UNIVERSE]
        lines.append(f"- {universe.upper()}: the equal-weight universe earns {ew[(fixed_col, 'excess_AR')]:+.2%} a "
                     f"year over the index with the year-end list and {ew[('point-in-time', 'excess_AR')]:+.2%} "
                     "with point-in-time members.")
        ic = [f"{m} {g.loc[m, (fixed_col, 'IC')]:+.4f} -> {g.loc[m, ('point-in-time', 'IC')]:+.4f}"
              for m in g.index if m != cs.UNIVERSE and np.isfinite(g.loc[m, ("point-in-time", "IC")])]
        lines.append("  IC, year-end list -> point-in-time: " + "; ".join(ic) + ".")
    return lines


__all__ = [
    "ABLATIONS", "BASELINES", "CONVERGED", "FEATURES", "FEATURE_NOTES", "FLOORS", "MODELS", "NOTEBOOK",
    "OUR_METRICS", "PAPER", "PIT", "RANK", "TABLE2_METRICS", "TRAINED", "UNAVAILABLE", "UNTRAINED", "Config",
    "beside_paper", "converged_config", "converged_curves", "converged_sentences", "converged_table",
    "feature_table", "features", "focus_member", "graph_neighbours", "headlines", "label_sentences", "label_table",
    "ours_vs_paper", "paper_tables", "pit_sentences", "pit_table", "prepare", "prepare_point_in_time",
    "rank_label_config", "rerun_baselines", "seed_table", "verdict",
]
