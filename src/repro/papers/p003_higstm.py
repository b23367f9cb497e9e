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
    valid_days: int | None = override(cs.Config, "valid_days", 32, paper=None)
    seeds: list[int] = override(cs.Config, "seeds", [0, 1], paper="5 runs")
    ablation_seeds: list[int] = param([0], "seeds of the ablations", paper="5 runs")
    baselines: list[str] = param(list(BASELINES), "baselines trained on identical inputs", choices=BASELINES)
    ablations: list[str] = param(list(ABLATIONS), "rows of Table 3 to run", choices=ABLATIONS)
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


def seed_table(results: pd.DataFrame, models: list[str], show: tuple[str, ...] = TABLE2_METRICS) -> pd.DataFrame:
    """Mean and std over seeds of ``show`` per (universe, model), for the given models (the results file)."""
    from .. import metrics

    rows = results[results["model"].isin(models)]
    return metrics.mean_std(rows[["universe", "model", "seed", *show]], by=["universe", "model"])


def ours_vs_paper(table: pd.DataFrame, universe: str, show: tuple[str, ...] = TABLE2_METRICS,
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


# --------------------------------------------------------------------------- verdict
def verdict(daily: pd.DataFrame, cfg: Config, metric: str = "IC") -> tuple[pd.DataFrame, list[str]]:
    """Per universe: every model against HIGSTM on daily ``metric`` (t-tests over days, seed check),
    with the paper's claim beside it. Returns (the table, markdown lines)."""
    from .. import report

    t2, tables, lines = paper_tables()["table2"], [], []
    for universe, g in daily.groupby("universe", sort=False):
        table = report.ranking_verdict(g, "HIGSTM", metric)
        tables.append(table.assign(universe=universe).set_index("universe", append=True).reorder_levels([1, 0]))
        claim = (f" The paper reports {metric} {t2.loc[(universe, 'HIGSTM'), metric]:.4f} for HIGSTM."
                 if metric in t2 and (universe, "HIGSTM") in t2.index else "")
        lines += [f"**{universe.upper()}**.{claim}", "", *report.ranking_sentences(table), ""]
    return pd.concat(tables), lines


__all__ = ["ABLATIONS", "BASELINES", "Config", "FEATURES", "FEATURE_NOTES", "MODELS", "NOTEBOOK", "TABLE2_METRICS",
           "UNAVAILABLE", "beside_paper", "feature_table", "features", "focus_member", "graph_neighbours",
           "ours_vs_paper", "paper_tables", "prepare", "rerun_baselines", "seed_table", "verdict"]
