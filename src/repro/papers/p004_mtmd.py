"""Paper 004 (MTMD) on qlib's Alpha360 recipe inside the day-by-day protocol: config, models, tables, verdicts.

The chapter first re-runs qlib's CSI300 / Alpha360 benchmark recipe (LightGBM and a ridge,
:mod:`repro.protocols.qlib_alpha360`) on the same stocks, days and label as everything after
it, so the neural models can be read against a many-seed public reference. Then HIST
(Xu et al. 2021), MTMD (HIST with memory-aware aggregators, [004] section III) and qlib's
neural baselines are trained on identical inputs: each stock's 60-day Alpha360 window
(close, open, high, low, vwap, volume, relative to day t, ``RobustZScoreNorm``-ed), the label
``Ref($close,-2)/Ref($close,-1)-1`` rank-normalised per day for training (``CSRankNorm``),
MSE loss [004 eq. 23], one trading day per batch, model selection on the validation IC.
Evaluation is against the raw label, as qlib's signal analysis does.

Predefined concepts: HIST's stock-concept matrix is not public; the chapter uses industry and
province from the tushare snapshot (:mod:`repro.data.cn_industry`), each stock weighted in its
concepts by a 20-day mean of close x volume (a market-value stand-in for [004 eq. 4]) or
equally (``concept_weight``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from ..config import override, param
from ..models import panel_baselines as pb
from ..protocols import cross_section as cs
from ..protocols import qlib_alpha360 as qa
from . import tables as _tables

NOTEBOOK = "05_mtmd"
PAPER = "Paper 004 (MTMD)"

#: The model's names for the rows of [004] Tables V-VII (memory on which block; the MLP backbone).
MEMORY = {"MTMD": ("predefined", "hidden"), "MTMD (predefined)": ("predefined",), "MTMD (hidden)": ("hidden",),
          "HIST": ()}
BASELINES = ("MLP", "LSTM", "GRU", "ALSTM", "GATs", "iTransformer", "MASTER")
ABLATIONS = ("MTMD (predefined)", "MTMD (hidden)", "MLP backbone", "MTMD-MLP")
TRAINED = ("MTMD", "HIST", *BASELINES, *ABLATIONS)
LIGHTGBM, FLOOR = "LightGBM (qlib recipe)", "ridge floor"
UNTRAINED = (FLOOR, cs.MOMENTUM, cs.UNIVERSE)
PRECISION_N = (3, 5, 10, 30)
TABLE3_METRICS = ("IC", "RankIC", *(f"P@{n}" for n in PRECISION_N))
#: Our tables add the t-statistic of the IC, the raw-return precision and the backtest.
OUR_METRICS = ("IC", "RankIC", "ICIR", *(f"P@{n}" for n in PRECISION_N), "P@10 (return > 0)", "excess_AR", "IR",
               "MAXD")


@dataclass(frozen=True)
class Config(cs.Config):
    """The chapter's parameters: ours (the ``book`` profile) beside the paper's (section IV-A, Table II)."""

    notebook: ClassVar[str] = NOTEBOOK

    universes: list[str] = override(cs.Config, "universes", ["csi300"], paper=["csi100", "csi300"])
    point_in_time: bool = override(cs.Config, "point_in_time", True, paper=True)
    start: str | None = override(cs.Config, "start", "2010-01-04", paper="2007-01-01")
    end: str | None = override(cs.Config, "end", "2020-08-31", paper="2020-12-31",
                               help="last day of the data (a few days after the test end, for its labels)")
    label_delay: int = override(cs.Config, "label_delay", 1, paper=0,
                                help="label from the close of t + label_delay: 1 is qlib's Ref($close,-2)/"
                                     "Ref($close,-1)-1; 0 is HIST's and MTMD's next-day Ref($close,-1)/$close-1")
    window: int = override(cs.Config, "window", 60, paper=60, help="Alpha360: days of history per input")
    split_counts: list[int] | None = override(cs.Config, "split_counts", None, paper=None)
    split_dates: list[str] | None = override(cs.Config, "split_dates", ["2014-12-31", "2016-12-31", "2020-08-01"],
                                             paper=["2014-12-31", "2016-12-31", "2020-12-31"])
    scaler: str = override(cs.Config, "scaler", "robust", paper="robust",
                           help="qlib's RobustZScoreNorm per lag and block, fitted on training days")
    loss: str = override(cs.Config, "loss", "mse", paper="mse")
    train_label: str = override(cs.Config, "train_label", "rank", paper="rank")
    epochs: int = override(cs.Config, "epochs", 4, paper=200)
    days_per_epoch: int | None = override(cs.Config, "days_per_epoch", 100, paper=None)
    valid_days: int | None = override(cs.Config, "valid_days", 80, paper=None)
    patience: int = override(cs.Config, "patience", 3, paper=30)
    lr: float = override(cs.Config, "lr", 1e-3, paper=2e-4)
    seeds: list[int] = override(cs.Config, "seeds", [0, 1], paper="not stated")
    hidden: int = param(64, "hidden units of every model (Table II per model and universe)", paper=128, minimum=1)
    layers: int = param(2, "recurrent layers of the encoders", paper=2, minimum=1)
    memory_items: int = param(96, "memory items per block (the reference code's 96)", paper="lost in extraction",
                              minimum=1)
    memory_topk: int = param(5, "stocks that update each memory item [004 eq. 20]", paper="lost in extraction",
                             minimum=1)
    concepts: list[str] = param(["industry", "province"], "predefined concepts (HIST's matrix is not public)",
                                paper="HIST's concepts (Tushare)", choices=("industry", "province"))
    concept_weight: str = param("value", "a stock's weight in its concepts [004 eq. 4]: value (20-day mean close x "
                                "volume, a market-value stand-in) or equal", paper="market capitalisation",
                                choices=("value", "equal"))
    baselines: list[str] = param(["GRU", "MLP", "GATs"], "baselines trained on identical inputs",
                                 paper=list(BASELINES), choices=BASELINES)
    ablations: list[str] = param(list(ABLATIONS), "memory ablations (Tables V-VII)", paper=list(ABLATIONS),
                                 choices=ABLATIONS)
    ablation_seeds: list[int] = param([0], "seeds of the ablations", paper="not stated")
    lightgbm: bool = param(True, "run qlib's LightGBM recipe (the calibration)")
    lightgbm_rounds: int = param(1000, "LightGBM boosting rounds at most (early stopping after 50 without a "
                                 "better validation l2)", paper=1000, minimum=1)
    lightgbm_seeds: list[int] = param([0], "LightGBM seeds (qlib sets none)")
    lightgbm_penalty_scale: float = param(1.0, "multiplies qlib's lambda_l1 and lambda_l2 (they are sums over rows: "
                                          "a few thousand rows need far less than qlib's 360,000)", paper=1.0)
    precision_n: list[int] = param(list(PRECISION_N), "N of Precision@N", paper=list(PRECISION_N))
    next_day_models: list[str] = param(["GRU"], "models also trained and tested on HIST's and MTMD's next-day label "
                                       "(first universe)", choices=TRAINED)
    next_day_seeds: list[int] = param([0], "seeds of the next-day label runs")


# --------------------------------------------------------------------------- data
def prepare(cfg: Config, universe: str) -> tuple[cs.Experiment, qa.Data]:
    """One universe with Alpha360 windows and qlib's label, split by ``split_dates``, the window normaliser
    fitted on training days; the concept weights of ``concept_weight``. Also the same prices in the form the
    calibration reads (:func:`repro.protocols.qlib_alpha360.run`)."""
    experiment, data = qa.prepare_experiment(cfg, universe)
    if cfg.concept_weight == "equal":
        experiment.panel.side["weight"] = np.where(experiment.panel.exists, 1.0, 0.0).astype(np.float32)
    return experiment, data


def calibrate(cfg: Config, universe: str, experiment: cs.Experiment, data: qa.Data, log=print) -> qa.Calibration:
    """qlib's recipe (LightGBM per seed when ``cfg.lightgbm``, the ridge) on the experiment's segments."""
    params = dict(qa.LGB_PARAMS)
    for key in ("lambda_l1", "lambda_l2"):
        params[key] *= cfg.lightgbm_penalty_scale
    settings = qa.calibration_settings(cfg, universe, experiment, seeds=tuple(cfg.lightgbm_seeds),
                                       num_boost_round=cfg.lightgbm_rounds, lgb_params=params)
    return qa.run(settings, data=data, log=log, lightgbm=cfg.lightgbm)


def calibration_runs(calibration: qa.Calibration, experiment: cs.Experiment, cfg: Config) -> cs.Results:
    """LightGBM and the ridge floor as runs of the protocol (same test days and stocks as the neural models)."""
    return cs.Results(qa.calibration_runs(calibration, experiment, cfg, {qa.LIGHTGBM: LIGHTGBM, qa.RIDGE: FLOOR}))


def calibration_table(calibrations: dict[str, qa.Calibration]) -> pd.DataFrame:
    """Per universe: our LightGBM and ridge beside qlib's published CSI300 / Alpha360 rows."""
    return pd.concat({u: c.table for u, c in calibrations.items()}, names=["universe"])


def calibration_figure_table(table: pd.DataFrame, universe: str,
                             others: tuple[str, ...] = ("MLP", "GRU", "GATs", "HIST")) -> pd.DataFrame:
    """One universe's calibration rows, then qlib's published ``others`` (their "ours" columns empty)."""
    ours = table.loc[universe]
    qlib = qa.published()
    extra = pd.DataFrame({"IC (qlib)": qlib["IC"], "Rank IC (qlib)": qlib["Rank IC"]}).reindex(
        [m for m in others if m in qlib.index and m not in ours.index])
    return pd.concat([ours, extra]).reindex(columns=ours.columns)


def calibration_sentences(table: pd.DataFrame, tolerance: float = 0.01) -> list[str]:
    """Is LightGBM within ``tolerance`` IC of qlib's published value? Computed per universe."""
    lines = []
    for universe, g in table.groupby(level="universe", sort=False):
        g = g.droplevel("universe")
        if "LightGBM" not in g.index:
            continue
        row = g.loc["LightGBM"]
        ours, theirs = row["IC (ours)"], row["IC (qlib)"]
        if not np.isfinite(theirs):
            lines.append(f"- {universe.upper()}: LightGBM IC {ours:.4f} (t = {row['t(IC)']:.1f}); qlib publishes no "
                         "table for this universe.")
            continue
        gap = ours - theirs
        within = "within" if abs(gap) <= tolerance else "outside"
        lines.append(f"- {universe.upper()}: LightGBM IC {ours:.4f} (t = {row['t(IC)']:.1f} over {int(row['days'])} "
                     f"days) against qlib's {theirs:.4f}: a gap of {gap:+.4f}, {within} the {tolerance} the "
                     f"calibration allows; Rank IC {row['Rank IC (ours)']:.4f} against {row['Rank IC (qlib)']:.4f}.")
    return lines


# --------------------------------------------------------------------------- models
def _hist(memory: tuple[str, ...]) -> cs.Factory:
    def build(panel: cs.Panel, cfg: Config):
        from ..models import hist

        stock2concept, _ = hist.concept_matrix(panel.codes, tuple(cfg.concepts))
        return hist.HIST(stock2concept, d_feat=len(panel.features), hidden=cfg.hidden, layers=cfg.layers,
                         memory=memory, memory_items=cfg.memory_items, topk=cfg.memory_topk)
    return build


def _mlp_memory(memory: bool) -> cs.Factory:
    def build(panel: cs.Panel, cfg: Config):
        from ..models import hist

        return hist.MLPMemory(cfg.window * len(panel.features), hidden=cfg.hidden, memory=memory,
                              memory_items=cfg.memory_items, topk=cfg.memory_topk)
    return build


def _qlib(name: str) -> cs.Factory:
    def build(panel: cs.Panel, cfg: Config):
        from ..models import qlib_nets

        if name == "MLP":
            return qlib_nets.MLP(cfg.window * len(panel.features))
        return getattr(qlib_nets, name)(d_feat=len(panel.features), hidden=cfg.hidden, layers=cfg.layers)
    return build


#: Every model of the chapter by name.
MODELS: dict[str, cs.Factory] = {
    **{name: _hist(memory) for name, memory in MEMORY.items()},
    "MLP backbone": _mlp_memory(False),
    "MTMD-MLP": _mlp_memory(True),
    "MLP": _qlib("MLP"),
    "ALSTM": _qlib("ALSTM"),
    "GATs": _qlib("GATs"),
    "LSTM": lambda panel, cfg: pb.RNN(len(panel.features), cfg.hidden, cfg.layers, cell="lstm"),
    "GRU": lambda panel, cfg: pb.RNN(len(panel.features), cfg.hidden, cfg.layers, cell="gru"),
    "iTransformer": lambda panel, cfg: pb.ITransformer(len(panel.features), cfg.window, cfg.hidden),
    "MASTER": lambda panel, cfg: pb.MASTER(len(panel.features), cfg.window, cfg.hidden),
}


# --------------------------------------------------------------------------- metrics
def precision_table(predictions: pd.DataFrame, ns=PRECISION_N) -> pd.DataFrame:
    """Precision@N per (universe, model, seed) from the saved long predictions, in percent, two ways:

    * ``P@N`` -- as HIST's and MTMD's code count it (``utils.metric_fn`` on the rank-normalised label):
      the share of the day's N top-scored stocks whose return is above the day's median, denominator N;
    * ``P@N (return > 0)`` -- the share whose return is positive (the paper's wording).

    Rows without a label are dropped first (qlib's ``DropnaLabel``); days with fewer than N stocks are skipped."""
    from .. import metrics

    rows = []
    for (universe, model, seed), g in predictions.dropna(subset=["label"]).groupby(["universe", "model", "seed"],
                                                                                   sort=False):
        scores = g.pivot(index="datetime", columns="instrument", values="score")
        labels = g.pivot(index="datetime", columns="instrument", values="label").reindex_like(scores)
        above = labels.rank(axis=1, pct=True) - 0.5  # > 0 exactly when CSRankNorm's label is > 0
        row = {"universe": universe, "model": model, "seed": seed}
        for n in ns:
            row[f"P@{n}"] = 100 * metrics.precision_at_n(scores, above, n)
            row[f"P@{n} (return > 0)"] = 100 * metrics.precision_at_n(scores, labels, n)
        rows.append(row)
    return pd.DataFrame(rows)


def all_metrics(results: cs.Results, ns=PRECISION_N) -> pd.DataFrame:
    """One row per (universe, model, seed): the protocol's metrics and Precision@N (both definitions)."""
    return results.metrics().merge(precision_table(results.predictions(), ns), on=["universe", "model", "seed"],
                                   how="left")


def seed_table(frame: pd.DataFrame, models: list[str], show=OUR_METRICS) -> pd.DataFrame:
    """Mean and std over seeds of ``show`` per (universe, model), for the given models."""
    from .. import metrics

    rows = frame[frame["model"].isin(models)]
    show = [c for c in show if c in rows]
    return metrics.mean_std(rows[["universe", "model", "seed", *show]], by=["universe", "model"])


# --------------------------------------------------------------------------- the paper's tables beside ours
def paper_tables() -> dict[str, pd.DataFrame]:
    return _tables(__name__)


def paper_table_for(universe: str, kind: str = "main") -> str | None:
    """The paper's table for a universe: Table III (CSI100, CSI300) or IV (CSI500); for ``kind="ablation"``
    Table V (CSI100) or VI (CSI300)."""
    names = {"main": {"csi100": "table3", "csi300": "table3", "csi500": "table4"},
             "ablation": {"csi100": "table5", "csi300": "table6"}}[kind]
    return names.get(universe)


def beside_paper(table: pd.DataFrame, universe: str, paper: str | None = None,
                 show=TABLE3_METRICS) -> pd.DataFrame | None:
    """Our mean over seeds beside the printed value, for each of our models (None: the paper has no such table)."""
    from .. import report

    paper = paper or paper_table_for(universe)
    if paper is None:
        return None
    printed = paper_tables()[paper]
    if universe not in printed.index.get_level_values("universe"):
        return None
    ours = table[table["universe"] == universe].set_index("model")
    ours = ours[[f"{m}_mean" for m in show if f"{m}_mean" in ours]]
    ours.columns = [c[: -len("_mean")] for c in ours.columns]
    return report.side_by_side(ours, printed.loc[universe], [m for m in show if m in ours])


def printed(universe: str, paper: str | None = None) -> pd.DataFrame | None:
    """The paper's rows for ``universe`` as "mean (std)" text, as printed."""
    paper = paper or paper_table_for(universe)
    if paper is None:
        return None
    table = paper_tables()[paper]
    if universe not in table.index.get_level_values("universe"):
        return None
    rows = table.loc[universe]
    out = pd.DataFrame(index=rows.index)
    for m in TABLE3_METRICS:
        sd = rows[f"{m} std"]
        out[m] = [f"{v:g}" + (f" ({s:g})" if np.isfinite(s) else "") for v, s in zip(rows[m], sd)]
    return out


#: Our rows of each ablation table, by the paper's row name (Table VII's "MLP" is the backbone without memory).
ABLATION_ROWS = {"table5": {m: m for m in MEMORY}, "table6": {m: m for m in MEMORY},
                 "table7": {"HIST": "HIST", "MTMD": "MTMD", "MLP": "MLP backbone", "MTMD-MLP": "MTMD-MLP"}}


def ablation_beside(table: pd.DataFrame, universe: str, paper: str) -> pd.DataFrame | None:
    """One of Tables V-VII beside our means: its rows only, ours renamed to the paper's row names."""
    rows = ABLATION_ROWS[paper]
    ours = table[table["model"].isin(rows.values())].copy()
    ours["model"] = ours["model"].map({v: k for k, v in rows.items()})
    return beside_paper(ours, universe, paper)


# --------------------------------------------------------------------------- verdicts
def verdict(daily: pd.DataFrame, cfg: Config, metric: str = "IC", reference: str = "MTMD",
            models: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Per universe: every model (or ``models``) against ``reference`` on daily ``metric`` (paired t-test over the
    test days, seed check), with the paper's claim for the reference beside it. Returns (table, markdown lines)."""
    from .. import report

    tables, lines = [], []
    for universe in cfg.universes:
        g = daily[daily["universe"] == universe]
        if models is not None:
            g = g[g["model"].isin([reference, *models])]
        table = report.ranking_verdict(g, reference, metric)
        tables.append(table.assign(universe=universe).set_index("universe", append=True).reorder_levels([1, 0]))
        name = paper_table_for(universe)
        claim = ""
        if name is not None and metric in paper_tables()[name] and (universe, reference) in paper_tables()[name].index:
            claim = (f" The paper reports {metric} {paper_tables()[name].loc[(universe, reference), metric]:.3f} "
                     f"for {reference}.")
        lines += [f"**{universe.upper()}**.{claim}", "", *report.ranking_sentences(table), ""]
    return pd.concat(tables), lines


def ablation_table(daily: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """The memory's effect, each pair on the same days and seeds: MTMD's variants against HIST, MTMD-MLP against
    its MLP backbone -- difference in IC and Rank IC, paired p over days and the verdict."""
    from .. import report

    pairs = [("HIST", m) for m in ("MTMD (predefined)", "MTMD (hidden)", "MTMD")] + [("MLP backbone", "MTMD-MLP")]
    rows = []
    for universe in cfg.universes:
        g = daily[daily["universe"] == universe]
        present = set(g["model"])
        for base, variant in pairs:
            if not {base, variant} <= present:
                continue
            # the pair on the seeds both ran, so the difference is paired over seeds as well as days
            seeds = set(g.loc[g["model"] == base, "seed"]) & set(g.loc[g["model"] == variant, "seed"])
            pair = g[g["model"].isin([base, variant]) & g["seed"].isin(seeds)]
            for metric in ("IC", "RankIC"):
                v = report.ranking_verdict(pair, base, metric)
                rows.append({"universe": universe, "memory": variant, "without": base, "metric": metric,
                             "with memory": v.loc[variant, "mean"], "without memory": v.loc[base, "mean"],
                             "difference": v.loc[variant, "vs reference"], "paired p": v.loc[variant, "paired p"],
                             "seeds": len(seeds), "verdict": v.loc[variant, "verdict"]})
    return pd.DataFrame(rows).set_index(["universe", "memory", "metric"])


def ablation_sentences(table: pd.DataFrame) -> list[str]:
    """What the memory changes, per pair, from the table."""
    lines = []
    for (universe, variant), g in table.groupby(level=["universe", "memory"], sort=False):
        ic = g.xs("IC", level="metric").iloc[0]
        word = ic["verdict"]
        said = word if word.startswith("indistinguishable") else f"{word} than without it"
        lines.append(f"- {universe.upper()}, {variant} against {ic['without']}: IC {ic['without memory']:+.4f} -> "
                     f"{ic['with memory']:+.4f} ({ic['difference']:+.4f}, paired p = {ic['paired p']:.2f} over the "
                     f"test days, {ic['seeds']} seed(s)): {said}.")
    return lines


def headlines(res) -> list:
    """The overview's rows (:mod:`repro.overview`): Table III's MTMD IC per universe beside ours (mean and std
    over seeds, t over the test days) and momentum's, with MTMD against momentum, HIST and LightGBM."""
    from .. import overview, report

    out = []
    table3 = paper_tables()["table3"]
    for universe in ("csi100", "csi300"):
        if not res.ran("universes", universe):
            continue
        daily = res.rows("daily_ic.csv", f"the daily IC on {universe}", universe=universe)
        for model in ("MTMD", cs.MOMENTUM):
            res.rows("daily_ic.csv", f"{model}'s daily IC on {universe}", universe=universe, model=model)
        table = report.ranking_verdict(daily, "MTMD", "IC")
        ours = table.loc["MTMD"]
        word, words = overview.ranking_words(table, "MTMD", cs.MOMENTUM, "momentum")
        extra = [overview.ranking_words(table, "MTMD", other, name)[1]
                 for other, name in (("HIST", "HIST"), (LIGHTGBM, "qlib's LightGBM")) if other in table.index]
        out.append(overview.Headline(
            claim=f"MTMD IC {table3.loc[(universe, 'MTMD'), 'IC']:.3f} on {universe.upper()} (Table III)",
            metric=f"daily Pearson IC, {universe.upper()} point in time, test days",
            paper_value=float(table3.loc[(universe, "MTMD"), "IC"]),
            ours=float(ours["mean"]), ours_std=float(ours["seed std"]), seeds=int(ours["seeds"]),
            baseline="momentum", baseline_value=float(table.loc[cs.MOMENTUM, "mean"]), vs_baseline=word,
            verdict=f"MTMD's IC has t = {ours['t']:.2f} over {int(ours['days'])} days; it is "
                    + " and ".join([words, *extra]) + ".",
            section="Results beside the paper's Table III"))
    return out


# --------------------------------------------------------------------------- figures' data
def monthly_ic(daily: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Mean daily IC per calendar month (rows) and model (columns), seeds averaged first."""
    g = daily[daily["model"].isin(models)].copy()
    g["month"] = pd.DatetimeIndex(g["datetime"]).to_period("M").to_timestamp()
    per_day = g.groupby(["model", "datetime", "month"], sort=False)["IC"].mean().reset_index()
    return per_day.pivot_table(index="month", columns="model", values="IC", aggfunc="mean")[
        [m for m in models if m in set(g["model"])]]


def excess_curves(results: cs.Results, models: list[str], universe: str) -> dict[str, pd.Series]:
    """Cumulative return in excess of the equal-weight universe portfolio (first seed of each model)."""
    curves = results.curves().get(universe, {})
    if cs.UNIVERSE not in curves:
        return {}
    base = curves[cs.UNIVERSE]["return"]
    return {m: (curves[m]["return"] - base).cumsum() for m in models if m in curves}


def memory_usage(extras: dict, dates: pd.DatetimeIndex) -> dict[str, pd.DataFrame]:
    """The mean matching probability of each memory item per test day, per block (from a run's extras)."""
    out = {}
    for key, value in extras.items():
        if key.startswith("memory_usage_"):
            out[key[len("memory_usage_"):]] = pd.DataFrame(value, index=dates[: len(value)])
    return out


def memory_sentences(usage: dict[str, pd.DataFrame]) -> list[str]:
    """How far the items' use departs from uniform, per block: the most and least used item's mean share over the
    test days as a multiple of 1 / items, and how much an item's monthly share moves over time."""
    lines = []
    for block, frame in usage.items():
        items = frame.shape[1]
        mean = frame.mean() * items
        monthly = frame.groupby(frame.index.to_period("M")).mean() * items
        lines.append(f"- {block} block, {items} items: the most used item takes {mean.max():.4f} times the uniform "
                     f"share over the test days, the least used {mean.min():.4f} times; month to month an item's "
                     f"share moves by {monthly.std().mean():.4f} times the uniform share (mean std over items).")
        if mean.max() / max(mean.min(), 1e-12) < 1.01:
            lines.append("  Every stock reads almost the same mixture of items on every day: the read returns the "
                         "stock's feature times (nearly) the mean item, a per-feature gain, not a lookup of distinct "
                         "stored patterns.")
    return lines


def config_for_ablations(cfg: Config) -> Config:
    return dataclasses.replace(cfg, seeds=cfg.ablation_seeds)


# --------------------------------------------------------------------------- the label's first day
NEXT_DAY = " (next-day label)"


def next_day_config(cfg: Config) -> Config:
    """The chapter's config with HIST's and MTMD's label, ``Ref($close,-1)/$close-1`` (from the close of the
    decision day), the first universe and the next-day seeds."""
    return dataclasses.replace(cfg, label_delay=0, universes=cfg.universes[:1], seeds=cfg.next_day_seeds)


def with_suffix(results: cs.Results, suffix: str) -> cs.Results:
    """The same runs named ``<name><suffix>`` (in their predictions and histories too)."""
    runs = []
    for r in results.runs:
        name = r.name + suffix
        runs.append(dataclasses.replace(r, name=name, predictions=r.predictions.assign(model=name),
                                        history=r.history.assign(model=name) if len(r.history) else r.history))
    return cs.Results(runs)


def next_day_table(metrics_frame: pd.DataFrame, cfg: Config, models: list[str]) -> pd.DataFrame:
    """IC and Rank IC of the same models and untrained scores with qlib's label (from t+1) and the paper's
    next-day label (from t), mean over seeds, first universe."""
    universe = cfg.universes[0]
    rows = metrics_frame[metrics_frame["universe"] == universe]
    means = rows.groupby("model", sort=False)[["IC", "RankIC"]].mean()
    out = []
    for m in models:
        if m in means.index and m + NEXT_DAY in means.index:
            out.append({"model": m, "IC, qlib's label": means.loc[m, "IC"],
                        "IC, next-day label": means.loc[m + NEXT_DAY, "IC"],
                        "Rank IC, qlib's label": means.loc[m, "RankIC"],
                        "Rank IC, next-day label": means.loc[m + NEXT_DAY, "RankIC"]})
    return pd.DataFrame(out).set_index("model") if out else pd.DataFrame()


def next_day_sentences(table: pd.DataFrame, paper_ic: float | None = None) -> list[str]:
    """How much of the paper's IC the label's first day explains, from the table."""
    lines = []
    for model, row in table.iterrows():
        qlib_ic = row["IC, qlib's label"]
        ratio = row["IC, next-day label"] / qlib_ic if qlib_ic else np.nan
        lines.append(f"- {model}: IC {qlib_ic:+.4f} with qlib's label, "
                     f"{row['IC, next-day label']:+.4f} with the next-day label"
                     + (f" ({ratio:.1f} times as large)." if np.isfinite(ratio) and ratio > 0 else "."))
    if paper_ic is not None and len(table):
        best = table["IC, next-day label"].max()
        lines.append(f"The paper's ICs ({paper_ic:.3f} for MTMD) are to be read against the next-day column: the "
                     f"largest next-day IC here is {best:+.4f}.")
    return lines


__all__ = [
    "ABLATIONS", "ABLATION_ROWS", "BASELINES", "FLOOR", "LIGHTGBM", "MEMORY", "MODELS", "NEXT_DAY", "NOTEBOOK",
    "OUR_METRICS", "PAPER", "PRECISION_N", "TABLE3_METRICS", "TRAINED", "UNTRAINED", "Config", "ablation_beside",
    "ablation_sentences", "ablation_table", "all_metrics", "beside_paper", "calibrate", "calibration_figure_table",
    "calibration_runs", "calibration_sentences", "calibration_table", "config_for_ablations", "excess_curves",
    "headlines", "memory_sentences", "memory_usage", "monthly_ic", "next_day_config", "next_day_sentences",
    "next_day_table",
    "paper_table_for", "paper_tables", "precision_table", "prepare", "printed", "seed_table", "verdict",
    "with_suffix",
]
