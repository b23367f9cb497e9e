"""Paper 003 (HIGSTM) end to end: CSI panels, day-by-day training, ranking metrics and backtest.

Data (paper section 4.1, appendix A.1): the constituents of a CSI index on a fixed day
(2023-12-29 by default, as the paper -- survivorship-biased; ``point_in_time=True`` uses
membership on each day instead), daily 2010-2023, the index's own series for the
decomposition. Of the paper's 45 Tushare fields only those derivable from open, high,
low, close, volume and the adjustment factor are built (:data:`FEATURES`); the others are
listed in :data:`UNAVAILABLE`. Every feature of day t uses data up to t; the label is the
return from the close of t to the close of t + horizon.

Training (section 3.5): one sample is one trading day with all its stocks; the loss is
minus the Pearson correlation of scores and returns across the day's stocks (eq. 22).
Model selection by IC on the validation days; the test days are scored once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .. import backtest as bt
from .. import metrics
from ..data import cn_industry, cn_qlib
from ..features import Scaler, cs_zscore_array, split_by_counts
from ..features.splits import DateSplit

#: Paper appendix A.4: input length 16; split 2677 / 239 / 243 trading days.
WINDOW = 16
PAPER_SPLIT = (2677, 239, 243)

#: Features built from OHLCV and the adjustment factor (paper Table 4 names), made scale-free.
FEATURES = ["open", "high", "low", "pre_close", "pct_chg", "change", "ma5", "ma10", "ma15", "ma20", "ma25",
            "vol", "amount"]
FEATURE_NOTES = {
    "open": "open / close - 1 (same day)", "high": "high / close - 1", "low": "low / close - 1",
    "pre_close": "previous close / close - 1", "pct_chg": "close / previous close - 1",
    "change": "close - previous close, in raw (unadjusted) price units / 100",
    **{f"ma{k}": f"{k}-day mean close / close - 1" for k in (5, 10, 15, 20, 25)},
    "vol": "log(1 + raw volume), z-scored across the day's stocks",
    "amount": "log(1 + raw close x raw volume), z-scored across the day's stocks (no amount field upstream)",
}
#: Table 4 fields that no reachable source provides.
UNAVAILABLE = ["turnover_rate", "turnover_rate_f", "volume_ratio", "pe", "pe_ttm", "pb", "ps", "ps_ttm", "dv_ratio",
               "dv_ttm", "total_share", "float_share", "free_share", "total_mv", "circ_mv", "buy_sm_vol",
               "buy_sm_amount", "sell_sm_vol", "sell_sm_amount", "buy_md_vol", "buy_md_amount", "sell_md_vol",
               "sell_md_amount", "buy_lg_vol", "buy_lg_amount", "sell_lg_vol", "sell_lg_amount", "buy_elg_vol",
               "buy_elg_amount", "sell_elg_vol", "sell_elg_amount", "net_mf_vol", "net_mf_amount", "up_limit",
               "down_limit"]

#: Paper Table 2 (IC, PNL, MAXD, SHARPE, WINR, PL) for the three universes.
_T2 = {
    "csi500": """ASTGCN 0.0434 0.0811 0.1387 0.4676 0.5110 1.0899
MTGNN 0.0503 0.0797 0.1582 0.6963 0.5232 1.1866
DCRNN 0.0521 0.1401 0.1537 0.9265 0.5162 1.1688
STEMGNN 0.0479 0.0708 0.1308 0.7475 0.4699 1.0375
FC-STGNN 0.0420 0.0946 0.1441 0.5858 0.5124 1.1102
MASTER 0.0567 0.1766 0.1086 1.2904 0.5579 1.2493
MICN 0.0668 0.0834 0.1390 0.6408 0.5165 1.1197
Filternet 0.0464 0.1345 0.0688 0.8863 0.5165 1.1688
iTransformer 0.0400 0.1214 0.1412 0.8340 0.4835 1.1574
TimeMixer 0.0472 0.1044 0.1436 0.7657 0.5041 1.1398
TimesNet 0.0346 0.0516 0.1250 0.3374 0.5041 1.0621
HIGSTM 0.0791 0.2619 0.1028 1.4846 0.5596 1.3207""",
    "csi800": """ASTGCN 0.0431 0.0712 0.1380 0.5149 0.5027 1.1140
MTGNN 0.0433 0.0939 0.1279 0.6682 0.5091 1.1409
DCRNN 0.0373 0.0482 0.1374 0.3406 0.5098 1.0693
STEMGNN 0.0364 0.0594 0.1289 0.3849 0.5032 1.0809
FC-STGNN 0.0285 0.0312 0.1468 0.1803 0.5124 1.0322
MASTER 0.0628 0.1603 0.1116 1.2076 0.4959 1.2363
MICN 0.0380 0.0212 0.1493 0.1614 0.5165 1.0288
Filternet 0.0302 0.0951 0.1255 0.6352 0.5083 1.1188
iTransformer 0.0457 0.0314 0.1348 0.2192 0.4752 1.0397
TimeMixer 0.0338 0.0487 0.1280 0.3028 0.5083 1.0548
TimesNet 0.0253 0.0311 0.1427 0.2112 0.4793 1.0387
HIGSTM 0.0708 0.1918 0.1040 1.2602 0.5263 1.3617""",
    "csi1000": """ASTGCN 0.0694 0.1313 0.1295 0.9434 0.4932 1.0884
MTGNN 0.0701 0.1108 0.1406 1.1415 0.5098 1.2393
DCRNN 0.0726 0.1426 0.1614 1.1791 0.5531 1.2593
STEMGNN 0.0688 0.1392 0.1021 1.1334 0.4867 1.2084
FC-STGNN 0.0733 0.1514 0.1365 0.9339 0.5537 1.1709
MASTER 0.0850 0.1843 0.0995 1.3382 0.5455 1.2601
MICN 0.0876 0.1779 0.1467 1.2339 0.5455 1.2359
Filternet 0.0723 0.1883 0.1312 1.2715 0.5413 1.2392
iTransformer 0.0747 0.1642 0.1407 1.1638 0.5289 1.2226
TimeMixer 0.0797 0.1580 0.1178 1.0681 0.5289 1.2007
TimesNet 0.0766 0.1512 0.1092 1.0244 0.5372 1.1922
HIGSTM 0.0918 0.2178 0.0759 1.4173 0.5845 1.3566""",
}
METRICS = ["IC", "PNL", "MAXD", "SHARPE", "WINR", "PL"]


def paper_table2(universe: str) -> pd.DataFrame:
    """The paper's Table 2 for one universe (model x IC, PNL, MAXD, SHARPE, WINR, PL)."""
    rows = [line.split() for line in _T2[universe].splitlines()]
    return pd.DataFrame([[float(v) for v in r[1:]] for r in rows], index=[r[0] for r in rows], columns=METRICS)


#: Paper Table 3 (ablation), IC and SHARPE on CSI500 and CSI1000.
PAPER_TABLE3 = pd.DataFrame(
    [("w/o TIGSTM", 0.0733, 0.8262, 0.0745, 0.9026), ("w/o GIGSTM", 0.0604, 0.6124, 0.0701, 1.0075),
     ("w/o T&GIGSTM", 0.0409, 0.0333, 0.0630, 0.9172), ("w/o Decomposition", 0.0539, 0.6822, 0.0594, 0.4605),
     ("w/o Index", 0.0451, 0.5711, 0.0592, 0.7073), ("HIGSTM", 0.0791, 1.4846, 0.0918, 1.4173)],
    columns=["variant", "csi500 IC", "csi500 SHARPE", "csi1000 IC", "csi1000 SHARPE"]).set_index("variant")

#: Ablation name in :class:`repro.models.higstm.HIGSTM` for each row of Table 3.
ABLATIONS = {"w/o TIGSTM": ("tigstm",), "w/o GIGSTM": ("gigstm",), "w/o T&GIGSTM": ("tigstm", "gigstm"),
             "w/o Decomposition": ("decomposition",), "w/o Index": ("index",)}


# --------------------------------------------------------------------------- the panel
@dataclass
class Panel:
    """Everything a day-by-day model needs, as arrays over (day, stock[, feature])."""

    dates: pd.DatetimeIndex
    codes: list[str]
    x: np.ndarray  # (days, stocks, features) float32, raw scale-free features (NaN where missing)
    index: np.ndarray  # (days,) index close, forward-filled
    returns: np.ndarray  # (days, stocks) close_t / close_{t-1} - 1 (NaN when suspended or not listed)
    label: np.ndarray  # (days, stocks) return from close t to close t + horizon
    exists: np.ndarray  # (days, stocks) bool: traded on that day (and a member, with point_in_time)
    universe: str
    horizon: int
    industry: pd.Series = field(default=None)
    scaler: Scaler | None = None

    @property
    def n_stocks(self) -> int:
        return len(self.codes)


def build_panel(universe: str = "csi500", as_of: object = cn_qlib.END, start: object = None, end: object = None,
                horizon: int = 1, point_in_time: bool = False, max_stocks: int | None = None) -> Panel:
    """The universe's stocks as arrays, features computed for every day without look-ahead.

    ``max_stocks`` keeps the first stocks by code (for quick runs); ``point_in_time`` marks
    stocks as absent on days they were not members (they are then neither trained on nor
    traded), instead of fixing the membership of ``as_of`` for all days.
    """
    codes = cn_qlib.universe(universe, as_of)
    if max_stocks:
        codes = codes[:max_stocks]
    cube, dates, codes, _ = cn_qlib.load_array(codes, cn_qlib.FIELDS, start, end)
    o, h, lo, c, v, f = (cube[..., i] for i in range(6))
    with np.errstate(invalid="ignore", divide="ignore"):
        prev = np.vstack([np.full((1, c.shape[1]), np.nan, np.float32), c[:-1]])
        raw_close, raw_prev = c / f, prev / np.vstack([np.full((1, f.shape[1]), np.nan, np.float32), f[:-1]])
        close_df = pd.DataFrame(c)
        feats = {
            "open": o / c - 1, "high": h / c - 1, "low": lo / c - 1, "pre_close": prev / c - 1,
            "pct_chg": c / prev - 1, "change": (raw_close - raw_prev) / 100.0,
        }
        for k in (5, 10, 15, 20, 25):  # NaN when any of the k days is missing (suspended)
            ma = close_df.rolling(k, min_periods=k).mean().to_numpy(np.float32)
            feats[f"ma{k}"] = ma / c - 1
        feats["vol"] = cs_zscore_array(np.log1p(v))
        feats["amount"] = cs_zscore_array(np.log1p(raw_close * v))
    x = np.stack([feats[name] for name in FEATURES], axis=-1).astype(np.float32)
    exists = np.isfinite(c)
    returns = np.where(exists, feats["pct_chg"], np.nan).astype(np.float32)
    fwd = np.full_like(c, np.nan)
    fwd[:-horizon] = c[horizon:] / c[:-horizon] - 1  # the label of day t: close_{t+h} / close_t - 1
    if point_in_time:
        exists &= cn_qlib.membership_mask(universe, dates, codes).to_numpy()
    idx = cn_qlib.index_series(universe, dates[0], dates[-1])["close"].reindex(dates).ffill().bfill()
    industry = cn_industry.industries(codes)["industry"]
    return Panel(dates, list(codes), x, idx.to_numpy(np.float32), returns, fwd.astype(np.float32), exists,
                 universe, horizon, industry)


def sample_days(panel: Panel, window: int = WINDOW) -> pd.DatetimeIndex:
    """Decision days with a full window before them and a label after them."""
    ok = np.zeros(len(panel.dates), bool)
    ok[window - 1: len(panel.dates) - panel.horizon] = True
    ok &= (panel.exists & np.isfinite(panel.label)).sum(axis=1) >= 10
    return panel.dates[ok]


def make_split(panel: Panel, counts: tuple[int, int, int] = PAPER_SPLIT, window: int = WINDOW) -> DateSplit:
    """Train / valid / test by date, in the paper's day counts (the last sum(counts) sample days).

    Training decision days whose label reaches into the validation period are dropped by
    :func:`split_days`, likewise at the validation/test boundary.
    """
    days = sample_days(panel, window)
    if sum(counts) > len(days):
        scale = len(days) / sum(counts)  # short date ranges: keep the paper's proportions
        counts = tuple(max(1, int(c * scale)) for c in counts)
    return split_by_counts(days, counts)


def split_days(panel: Panel, split: DateSplit, window: int = WINDOW) -> dict[str, np.ndarray]:
    """Positions (into ``panel.dates``) of the decision days of each part, labels purged at boundaries."""
    days = sample_days(panel, window)
    pos = panel.dates.get_indexer(days)
    label_day = panel.dates[np.minimum(pos + panel.horizon, len(panel.dates) - 1)]
    return {name: pos[split.mask(days, name, label_dates=label_day)] for name in split.ranges()}


def fit_scaler(panel: Panel, train_pos: np.ndarray, window: int = WINDOW) -> Panel:
    """Standardise features with statistics of the training period only (clipped at +-5)."""
    last = train_pos.max() + panel.horizon  # nothing after the last training label
    rows = panel.x[: last + 1][panel.exists[: last + 1]]
    panel.scaler = Scaler("standard", clip=5.0).fit(rows, dates=panel.dates[[0, last]])
    return panel


def day_batch(panel: Panel, t: int, window: int = WINDOW, device: str = "cpu"):
    """Inputs of decision day ``t``: x (N, window, F), index window (window,), mask (N,), label (N,)."""
    x = panel.x[t - window + 1: t + 1].transpose(1, 0, 2)
    if panel.scaler is not None:
        x = panel.scaler.transform(x)
    x = np.nan_to_num(x, nan=0.0)
    idx = panel.index[t - window + 1: t + 1]
    idx = idx / idx[-1] - 1.0  # the index path relative to day t
    mask = panel.exists[t]
    y = panel.label[t]
    ok = mask & np.isfinite(y)
    as_t = lambda a, dtype=torch.float32: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    return as_t(x), as_t(idx), as_t(mask, torch.bool), as_t(np.nan_to_num(y), torch.float32), as_t(ok, torch.bool)


# --------------------------------------------------------------------------- models
MODELS = ("HIGSTM", "LSTM", "GRU", "Mamba", "iTransformer", "Industry-GAT", "MASTER")


def make_model(name: str, panel: Panel, cfg: dict, window: int = WINDOW):
    """A model by its chapter name (HIGSTM, an ablation such as "w/o TIGSTM", or a baseline).

    ``cfg`` holds d_model, d_state, d_conv, expand, d_te, d_ge, d_attn, top_share (paper A.4).
    """
    from ..models import panel_baselines as pb
    from ..models.higstm import HIGSTM

    n_feat = len(FEATURES)
    if name == "HIGSTM" or name in ABLATIONS:
        return HIGSTM(n_feat, panel.n_stocks, window, cfg["d_model"], cfg["d_state"], cfg["d_conv"], cfg["expand"],
                      cfg["d_te"], cfg["d_ge"], cfg["d_attn"], cfg.get("top_share", 0.3),
                      ablation=ABLATIONS.get(name, ()))
    if name in ("LSTM", "GRU"):
        return pb.RNN(n_feat, cfg["d_model"], cell=name.lower())
    if name == "Mamba":
        return pb.MambaTS(n_feat, cfg["d_model"], cfg["d_state"], cfg["d_conv"], cfg["expand"])
    if name == "iTransformer":
        return pb.ITransformer(n_feat, window, cfg["d_model"])
    if name == "Industry-GAT":
        return pb.IndustryGAT(n_feat, pb.industry_adjacency(panel.industry.reindex(panel.codes)), cfg["d_model"])
    if name == "MASTER":
        return pb.MASTER(n_feat, window, cfg["d_model"])
    raise ValueError(f"unknown model {name!r}; choose from {MODELS} or {tuple(ABLATIONS)}")


def n_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


# --------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    history: pd.DataFrame  # per epoch: train loss, valid IC, seconds
    best_epoch: int
    seconds_per_epoch: float


def predict(model, panel: Panel, days: np.ndarray, window: int = WINDOW, device: str = "cpu") -> np.ndarray:
    """Scores (len(days), N) of a trained model; NaN for stocks that do not exist that day."""
    model.eval()
    out = np.full((len(days), panel.n_stocks), np.nan, dtype=np.float32)
    with torch.inference_mode():
        for i, t in enumerate(days):
            x, idx, mask, _, _ = day_batch(panel, int(t), window, device)
            score = model(x, idx, mask).float().cpu().numpy()
            out[i] = np.where(panel.exists[t], score, np.nan)
    return out


def daily_ic(scores: np.ndarray, panel: Panel, days: np.ndarray) -> float:
    labels = np.where(panel.exists[days], panel.label[days], np.nan)
    return float(np.nanmean(metrics.daily_ic(scores, labels).to_numpy()))


def train(model, panel: Panel, parts: dict[str, np.ndarray], epochs: int, lr: float = 1e-3, seed: int = 0,
          days_per_epoch: int | None = None, valid_days: int | None = None, patience: int = 5,
          window: int = WINDOW, device: str = "cpu", clip: float = 3.0, log=print) -> TrainResult:
    """Adam on the per-day Pearson loss (eq. 22); keep the weights of the epoch with the best valid IC.

    ``days_per_epoch`` trains on that many random training days per epoch (all by default);
    ``valid_days`` evaluates every k-th validation day for model selection (all by default).
    """
    from ..models.higstm import pearson_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    valid = parts["valid"]
    if valid_days and valid_days < len(valid):
        valid = valid[np.linspace(0, len(valid) - 1, valid_days).round().astype(int)]
    best, best_state, rows, stale = -np.inf, None, [], 0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        order = rng.permutation(parts["train"])
        if days_per_epoch:
            order = order[:days_per_epoch]
        losses = []
        for t in order:
            x, idx, mask, y, ok = day_batch(panel, int(t), window, device)
            if int(ok.sum()) < 10:
                continue
            opt.zero_grad()
            loss = pearson_loss(model(x, idx, mask), y, ok)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            losses.append(loss.item())
        train_s = time.perf_counter() - t0
        ic = daily_ic(predict(model, panel, valid, window, device), panel, valid)
        rows.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "valid_IC": ic,
                     "train_seconds": train_s, "days": len(order)})
        log(f"  epoch {epoch + 1}: loss {np.mean(losses):+.4f}, valid IC {ic:+.4f}, {train_s:.1f} s")
        if ic > best:
            best, stale = ic, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    hist = pd.DataFrame(rows)
    return TrainResult(hist, int(hist.loc[hist["valid_IC"].idxmax(), "epoch"]), float(hist["train_seconds"].mean()))


# --------------------------------------------------------------------------- evaluation
BACKTEST = dict(top=0.1, hold=10, buy_cost=0.0005, sell_cost=0.0015)


def evaluate_frames(scores: pd.DataFrame, labels: pd.DataFrame, returns: pd.DataFrame,
                    benchmark: pd.Series | None = None, **backtest_kw) -> tuple[dict, bt.BacktestResult]:
    """IC, Rank IC, ICIR and the paper's backtest (top 10%, hold 10 days, fees) from (day x stock) frames.

    Only saved quantities enter: the chapter's tables can be recomputed from the results
    folder's ``predictions.parquet`` and ``returns.parquet`` with this function.
    """
    rank = metrics.ranking_report(scores, labels.reindex_like(scores))
    res = bt.run_backtest(scores, returns, benchmark=benchmark, **(BACKTEST | backtest_kw))
    keep = ("PNL", "MAXD", "SHARPE", "WINR", "PL", "AR", "IR")
    return {"IC": rank["IC"], "RankIC": rank["RankIC"], "ICIR": rank["ICIR"],
            **{k: res.metrics[k] for k in keep if k in res.metrics}}, res


def frames(panel: Panel, scores: np.ndarray, days: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, labels) of the given decision days as (day x stock) frames."""
    dates = panel.dates[days]
    labels = np.where(panel.exists[days], panel.label[days], np.nan)
    return (pd.DataFrame(scores, index=dates, columns=panel.codes),
            pd.DataFrame(labels, index=dates, columns=panel.codes))


def returns_frame(panel: Panel) -> pd.DataFrame:
    return pd.DataFrame(panel.returns, index=panel.dates, columns=panel.codes)


def benchmark_returns(panel: Panel) -> pd.Series:
    """Daily returns of the universe's index (the backtest's benchmark for IR)."""
    return pd.Series(panel.index, index=panel.dates).pct_change().rename("benchmark")


def evaluate(scores: np.ndarray, panel: Panel, days: np.ndarray, **backtest_kw) -> tuple[dict, bt.BacktestResult]:
    """:func:`evaluate_frames` for scores of ``days`` (rows) on a panel."""
    s, lab = frames(panel, scores, days)
    return evaluate_frames(s, lab, returns_frame(panel), benchmark_returns(panel), **backtest_kw)


def long_predictions(panel: Panel, scores: np.ndarray, days: np.ndarray, **keys) -> pd.DataFrame:
    """One row per (day, stock) that exists: score and label, with the given keys (model, seed)."""
    s, lab = frames(panel, scores, days)
    out = pd.DataFrame({"score": s.stack(), "label": lab.stack()}).reset_index()
    out.columns = ["datetime", "instrument", "score", "label"]
    for k, v in keys.items():
        out.insert(0, k, v)
    return out


@dataclass
class ModelRun:
    name: str
    seed: int
    metrics: dict
    predictions: pd.DataFrame  # long format, test days
    history: pd.DataFrame
    backtest: bt.BacktestResult
    graphs: dict  # HIGSTM only: the last test day's temporal (T, N, N) and global (N, N) graphs
    seconds_per_epoch: float
    parameters: int


def run_model(name: str, panel: Panel, parts: dict[str, np.ndarray], cfg: dict, seed: int, train_kw: dict,
              device: str = "cpu", window: int = WINDOW, log=print) -> ModelRun:
    """Seed, build, train (model selection on validation), score the test days once, evaluate."""
    from ..runs import seed_everything

    seed_everything(seed)
    model = make_model(name, panel, cfg, window).to(device)
    log(f"{name} (seed {seed}, {n_parameters(model):,} parameters)")
    result = train(model, panel, parts, seed=seed, window=window, device=device, log=log, **train_kw)
    scores = predict(model, panel, parts["test"], window, device)
    out, res = evaluate(scores, panel, parts["test"])
    graphs = {k: v.cpu().numpy() for k, v in getattr(model, "last_graphs", {}).items()}
    preds = long_predictions(panel, scores, parts["test"], model=name, seed=seed)
    return ModelRun(name, seed, out, preds, result.history.assign(model=name, seed=seed), res, graphs,
                    result.seconds_per_epoch, n_parameters(model))


def momentum_scores(panel: Panel, days: np.ndarray) -> np.ndarray:
    """The naive score: each stock's return of day t (yesterday's return for day t+1)."""
    return np.where(panel.exists[days], panel.returns[days], np.nan)
