"""Rank a universe's stocks every day: the protocol of the cross-sectional chapters (papers 003, 004).

1. **Panel** -- a CSI universe as arrays over (day, stock[, feature]); the chapter supplies
   the features of day t (from data up to t) through a function of the prices. The label
   of day t is the return from the close of t + ``delay`` to the close of t + ``delay`` +
   ``horizon``.
2. **Split** -- chronological train / valid / test decision days (by day counts or by
   dates); days whose label reaches into a later part are purged; the feature scaler is
   fitted on training days only.
3. **Training** -- one sample is one day with all its stocks; a per-day loss (minus the
   Pearson correlation, [003 eq. 22], or MSE); Adam with gradient clipping; after each
   epoch the IC on the validation days (all of them unless ``valid_days`` says otherwise)
   selects the weights kept; early stopping after ``patience`` epochs without improvement.
4. **Evaluation** -- the test days are scored once: daily IC and Rank IC, and the top-k,
   hold-n-days backtest of :mod:`repro.backtest`. Momentum (yesterday's return) is the
   naive score every model must beat.

A model is any ``torch.nn.Module`` mapping one day -- ``x`` (N stocks, T days, F), the
index window (T,) and the mask of stocks that exist (N,) -- to N scores. A chapter passes
a registry ``{name: factory}``, each factory building a model from the panel and the config.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .. import backtest as bt
from .. import metrics, report
from ..config import ChapterConfig, ParameterError, param
from ..data import cn_industry, cn_qlib
from ..features import Scaler, split_by_counts, split_by_dates
from ..features.splits import DateSplit
from ..models import linear
from ..runs import Run, seed_everything

SPLITS = ("train", "valid", "test")
#: The backtest's metrics every run reports (beside IC, Rank IC and ICIR).
BACKTEST_METRICS = ("PNL", "MAXD", "SHARPE", "WINR", "PL", "AR", "excess_AR", "IR")


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class Config(ChapterConfig):
    """The protocol's parameters; a chapter's config derives from it and sets its own defaults."""

    universes: list[str] = param(["csi300"], "CSI universes, each run separately", choices=cn_qlib.UNIVERSES)
    as_of: str = param("2023-12-29", "membership of the universe fixed on this day (survivorship-biased)")
    point_in_time: bool = param(False, "True: every stock that was a member within start..end, counted only on its "
                                       "member days (as_of unused)")
    start: str | None = param(None, "first day of the data (None: 2010-01-04)")
    end: str | None = param(None, "last day of the data (None: 2023-12-29)")
    max_stocks: int | None = param(None, "keep the first n stocks by code (quick runs)", minimum=1)
    horizon: int = param(1, "label: return over this many days", minimum=1)
    label_delay: int = param(0, "label starts at the close of t + label_delay (qlib's label: 1)", minimum=0)
    window: int = param(16, "days of history per input", minimum=2)
    split_counts: list[int] | None = param(None, "train / valid / test decision days (the last ones of the data)")
    split_dates: list[str] | None = param(None, "last day of train, valid and test (instead of split_counts)")
    scaler: str = param("standard", "feature scaler fitted on training days", choices=("standard", "robust"))
    loss: str = param("pearson", "per-day training loss", choices=("pearson", "mse"))
    train_label: str = param("raw", "training label: the return, or its rank across the day's stocks (CSRankNorm)",
                             choices=("raw", "rank"))
    epochs: int = param(4, "training epochs at most (early stopping on validation IC)", minimum=1)
    days_per_epoch: int | None = param(None, "random training days per epoch (None: all)", minimum=1)
    valid_days: int | None = param(None, "evenly spaced validation days for model selection (None: all)", minimum=1)
    patience: int = param(3, "epochs without a better validation IC before stopping", minimum=1)
    lr: float = param(1e-3, "Adam learning rate")
    clip: float = param(3.0, "gradient norm clipping")
    seeds: list[int] = param([0, 1], "seeds of the models; tables show mean ± std over them")
    portfolio_top: float = param(0.1, "backtest: share of the day's stocks bought (top scores)")
    holding_days: int = param(10, "backtest: days each purchase is held", minimum=1)
    buy_cost: float = param(0.0005, "backtest: fee on buying (fraction of the amount)")
    sell_cost: float = param(0.0015, "backtest: fee on selling")
    device: str = param("auto", "auto (cuda when available) | cpu | cuda", choices=("auto", "cpu", "cuda"))

    def check(self) -> None:
        if (self.split_counts is None) == (self.split_dates is None):
            raise ParameterError("give exactly one of split_counts (train, valid, test days) and split_dates")
        split = self.split_counts if self.split_counts is not None else self.split_dates
        if len(split) != 3:
            raise ParameterError(f"the split needs three values (train, valid, test), got {split!r}")

    @property
    def backtest(self) -> dict:
        return dict(top=self.portfolio_top, hold=self.holding_days, buy_cost=self.buy_cost, sell_cost=self.sell_cost)

    def torch_device(self) -> str:
        return ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device


# --------------------------------------------------------------------------- data
@dataclass
class Prices:
    """A universe's daily prices as (days, stocks) float32 arrays; NaN where suspended or not listed.

    ``close`` is adjusted (qlib's format); ``factor`` is the adjustment factor, so
    ``close / factor`` is the traded price.
    """

    universe: str
    dates: pd.DatetimeIndex
    codes: list[str]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    factor: np.ndarray

    def previous(self, values: np.ndarray) -> np.ndarray:
        """``values`` one row later: day t holds day t-1's value (NaN on the first day)."""
        return np.vstack([np.full((1, values.shape[1]), np.nan, np.float32), values[:-1]])

    def last_valid(self, values: np.ndarray) -> np.ndarray:
        """Day t holds the last finite value before day t (the close before a suspension; NaN before listing).

        A return over a suspension is measured from this value, so the move made while the
        stock did not trade is earned on the day it trades again instead of being lost.
        """
        return self.previous(pd.DataFrame(values).ffill().to_numpy(np.float32))


def load_prices(universe: str, as_of: object = cn_qlib.END, start: object = None, end: object = None,
                max_stocks: int | None = None, point_in_time: bool = False) -> Prices:
    """The members of ``universe`` on ``as_of`` -- or, ``point_in_time``, every stock that was a member on some
    day of ``start``..``end`` -- (the first ``max_stocks`` by code), daily."""
    codes = cn_qlib.members_between(universe, start, end) if point_in_time else cn_qlib.universe(universe, as_of)
    if max_stocks:
        codes = codes[:max_stocks]
    cube, dates, codes, _ = cn_qlib.load_array(codes, cn_qlib.FIELDS, start, end)
    return Prices(universe, dates, list(codes), *(cube[..., i] for i in range(len(cn_qlib.FIELDS))))


@dataclass
class Panel:
    """Everything a day-by-day model needs, as arrays over (day, stock[, feature])."""

    dates: pd.DatetimeIndex
    codes: list[str]
    x: np.ndarray  # (days, stocks, features) float32, raw features (NaN where missing)
    features: list[str]
    index: np.ndarray  # (days,) index close, forward-filled
    returns: np.ndarray  # (days, stocks) close_t / last close before t - 1 (NaN when suspended or not listed)
    label: np.ndarray  # (days, stocks) the label of decision day t
    exists: np.ndarray  # (days, stocks) bool: traded on that day (and a member, with point_in_time)
    universe: str
    horizon: int
    delay: int = 0
    industry: pd.Series | None = None
    scaler: Scaler | None = None
    #: Per-day inputs a model takes beside ``x`` (name -> (days, stocks[, ...]) array), passed by keyword to
    #: models that list the name in their ``side_inputs`` (e.g. HIST's market-value weights).
    side: dict[str, np.ndarray] = field(default_factory=dict)
    _rank: np.ndarray | None = field(default=None, repr=False)

    def target(self, kind: str = "raw") -> np.ndarray:
        """The training label (days, stocks): the return (``raw``) or its rank across each day's stocks
        (``rank``, :func:`repro.models.linear.rank_label`). Evaluation always uses the raw label."""
        if kind == "raw":
            return self.label
        if kind != "rank":
            raise ValueError(f"unknown training label {kind!r}; use 'raw' or 'rank'")
        if self._rank is None:
            self._rank = linear.rank_label(self.label, self.exists)
        return self._rank

    def resumptions(self) -> int:
        """Stock-days whose return spans a suspension: traded, not traded the day before, traded earlier."""
        traded = np.isfinite(self.returns)
        earlier = np.maximum.accumulate(traded, axis=0)
        return int((traded[2:] & ~traded[1:-1] & earlier[:-2]).sum())

    def scaled(self, days: np.ndarray | slice) -> np.ndarray:
        """Features of ``days`` (days, stocks, features), scaled, missing values at the mean (0): what models see."""
        x = self.x[days]
        return np.nan_to_num(self.scaler.transform(x) if self.scaler is not None else x, nan=0.0)

    def window(self, t: int, window: int) -> np.ndarray:
        """What a model sees on decision day ``t``: (stocks, window, features), oldest day first."""
        return self.scaled(slice(t - window + 1, t + 1)).transpose(1, 0, 2)

    @property
    def n_stocks(self) -> int:
        return len(self.codes)

    @property
    def label_lag(self) -> int:
        """Days from a decision day to the last day its label uses."""
        return self.delay + self.horizon


def make_panel(prices: Prices, features: Mapping[str, np.ndarray], horizon: int = 1, delay: int = 0,
               point_in_time: bool = False) -> Panel:
    """A panel of ``features`` (name -> (days, stocks) array, each from data up to day t) and the label."""
    c = prices.close
    x = np.stack([features[name] for name in features], axis=-1).astype(np.float32)
    exists = np.isfinite(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = c / prices.last_valid(c) - 1  # across a suspension: from the last close before it
        fwd = np.full_like(c, np.nan)
        lag = delay + horizon  # label of day t: close_{t+delay+horizon} / close_{t+delay} - 1
        fwd[:-lag] = c[lag:] / c[delay: len(c) - horizon] - 1
    returns = np.where(exists, returns, np.nan).astype(np.float32)
    if point_in_time:
        exists &= cn_qlib.membership_mask(prices.universe, prices.dates, prices.codes).to_numpy()
    idx = cn_qlib.index_series(prices.universe, prices.dates[0], prices.dates[-1])["close"]
    idx = idx.reindex(prices.dates).ffill().bfill()
    industry = cn_industry.industries(prices.codes)["industry"]
    return Panel(prices.dates, list(prices.codes), x, list(features), idx.to_numpy(np.float32), returns,
                 fwd.astype(np.float32), exists, prices.universe, horizon, delay, industry)


def sample_days(panel: Panel, window: int) -> pd.DatetimeIndex:
    """Decision days with a full window before them, a label after them and at least 10 labelled stocks."""
    ok = np.zeros(len(panel.dates), bool)
    ok[window - 1: len(panel.dates) - panel.label_lag] = True
    ok &= (panel.exists & np.isfinite(panel.label)).sum(axis=1) >= 10
    return panel.dates[ok]


def make_split(panel: Panel, window: int, counts: Sequence[int] | None = None,
               dates: Sequence[object] | None = None) -> DateSplit:
    """Train / valid / test by decision day: the last ``sum(counts)`` sample days, or up to the given dates.

    With counts and a date range shorter than their sum, the proportions are kept.
    """
    days = sample_days(panel, window)
    if dates is not None:
        return split_by_dates(days, *dates)
    counts = tuple(int(c) for c in counts)
    if sum(counts) > len(days):
        scale = len(days) / sum(counts)  # short date ranges: keep the paper's proportions
        counts = tuple(max(1, int(c * scale)) for c in counts)
    return split_by_counts(days, counts)


def split_days(panel: Panel, split: DateSplit, window: int) -> dict[str, np.ndarray]:
    """Positions (into ``panel.dates``) of each part's decision days; labels crossing a boundary are purged."""
    days = sample_days(panel, window)
    pos = panel.dates.get_indexer(days)
    label_day = panel.dates[np.minimum(pos + panel.label_lag, len(panel.dates) - 1)]
    return {name: pos[split.mask(days, name, label_dates=label_day)] for name in split.ranges()}


def fit_scaler(panel: Panel, train_pos: np.ndarray, kind: str = "standard", clip: float = 5.0) -> Panel:
    """Fit the feature scaler on the training period only (nothing after the last training label)."""
    last = train_pos.max() + panel.label_lag
    rows = panel.x[: last + 1][panel.exists[: last + 1]]
    panel.scaler = Scaler(kind, clip=clip).fit(rows, dates=panel.dates[[0, last]])
    return panel


@dataclass
class Experiment:
    """A prepared universe: its panel, the split and each part's decision days."""

    panel: Panel
    split: DateSplit
    parts: dict[str, np.ndarray]


def prepare(cfg: Config, universe: str, features: Callable[[Prices], Mapping[str, np.ndarray]]) -> Experiment:
    """Load a universe, compute the chapter's ``features``, split it and fit the scaler on training days."""
    prices = load_prices(universe, cfg.as_of, cfg.start, cfg.end, cfg.max_stocks, cfg.point_in_time)
    panel = make_panel(prices, features(prices), cfg.horizon, cfg.label_delay, cfg.point_in_time)
    split = make_split(panel, cfg.window, cfg.split_counts, cfg.split_dates)
    parts = split_days(panel, split, cfg.window)
    fit_scaler(panel, parts["train"], cfg.scaler)
    return Experiment(panel, split, parts)


def split_table(experiments: Mapping[str, Experiment], window: int) -> pd.DataFrame:
    """Start, end and number of decision days of each part, with the number of stocks, per universe."""
    table = pd.concat({u: e.split.table(sample_days(e.panel, window)) for u, e in experiments.items()},
                      names=["universe"])
    table["stocks"] = [experiments[u].panel.n_stocks for u in table.index.get_level_values("universe")]
    return table


def day_batch(panel: Panel, t: int, window: int, device: str = "cpu", label: str = "raw"):
    """Inputs of decision day ``t``: x (N, window, F), index window (window,), mask (N,), label (N,), labelled (N,).

    ``label`` picks the training label (:meth:`Panel.target`)."""
    x = panel.window(t, window)
    idx = panel.index[t - window + 1: t + 1]
    idx = idx / idx[-1] - 1.0  # the index path relative to day t
    mask = panel.exists[t]
    y = panel.target(label)[t]
    ok = mask & np.isfinite(y)
    as_t = lambda a, dtype=torch.float32: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    return as_t(x), as_t(idx), as_t(mask, torch.bool), as_t(np.nan_to_num(y), torch.float32), as_t(ok, torch.bool)


def side_batch(model, panel: Panel, t: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The per-day side inputs ``model`` asks for (its ``side_inputs``) on day ``t``, as tensors by name."""
    names = getattr(model, "side_inputs", ())
    missing = [n for n in names if n not in panel.side]
    if missing:
        raise ValueError(f"the model needs side inputs {missing}; the panel has {sorted(panel.side)}")
    return {n: torch.as_tensor(np.nan_to_num(panel.side[n][t]), dtype=torch.float32, device=device) for n in names}


# --------------------------------------------------------------------------- training
def pearson_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """[003 eq. 22]: minus the Pearson correlation across the day's stocks (masked)."""
    if mask is not None:
        pred, target = pred[mask], target[mask]
    p, t = pred - pred.mean(), target - target.mean()
    return -(p * t).sum() / (p.norm() * t.norm() + 1e-8)


def mse_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the day's labelled stocks (HIST's and MTMD's loss)."""
    if mask is not None:
        pred, target = pred[mask], target[mask]
    return torch.mean((pred - target) ** 2)


LOSSES = {"pearson": pearson_loss, "mse": mse_loss}


@dataclass
class TrainResult:
    history: pd.DataFrame  # per epoch: train loss, valid IC, seconds
    best_epoch: int
    seconds_per_epoch: float


def predict(model, panel: Panel, days: np.ndarray, window: int, device: str = "cpu") -> np.ndarray:
    """Scores (len(days), N) of a trained model; NaN for stocks that do not exist that day."""
    model.eval()
    out = np.full((len(days), panel.n_stocks), np.nan, dtype=np.float32)
    with torch.inference_mode():
        for i, t in enumerate(days):
            x, idx, mask, _, _ = day_batch(panel, int(t), window, device)
            score = model(x, idx, mask, **side_batch(model, panel, int(t), device)).float().cpu().numpy()
            out[i] = np.where(panel.exists[t], score, np.nan)
    return out


def mean_ic(scores: np.ndarray, panel: Panel, days: np.ndarray) -> float:
    """Mean over ``days`` of the daily IC of ``scores`` against the label (the model-selection criterion)."""
    labels = np.where(panel.exists[days], panel.label[days], np.nan)
    return float(np.nanmean(metrics.daily_ic(scores, labels).to_numpy()))


def train(model, panel: Panel, parts: dict[str, np.ndarray], epochs: int, window: int, lr: float = 1e-3,
          seed: int = 0, days_per_epoch: int | None = None, valid_days: int | None = None, patience: int = 5,
          device: str = "cpu", clip: float = 3.0, loss: str = "pearson", label: str = "raw",
          log=print) -> TrainResult:
    """Adam on the per-day loss against the ``label`` (:meth:`Panel.target`); keep the weights of the epoch with
    the best validation IC (always against the raw return).

    ``days_per_epoch`` trains on that many random training days per epoch (all by default);
    ``valid_days`` selects on that many evenly spaced validation days (all by default).
    """
    loss_fn = LOSSES[loss]
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
            x, idx, mask, y, ok = day_batch(panel, int(t), window, device, label)
            if int(ok.sum()) < 10:
                continue
            opt.zero_grad()
            value = loss_fn(model(x, idx, mask, **side_batch(model, panel, int(t), device)), y, ok)
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            losses.append(value.item())
        train_s = time.perf_counter() - t0
        ic = mean_ic(predict(model, panel, valid, window, device), panel, valid)
        rows.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "valid_IC": ic,
                     "train_seconds": train_s, "days": len(order), "valid_days": len(valid)})
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


def evaluate_frames(scores: pd.DataFrame, labels: pd.DataFrame, returns: pd.DataFrame,
                    benchmark: pd.Series | None = None, **backtest_kw) -> tuple[dict, bt.BacktestResult]:
    """IC, Rank IC, ICIR and the backtest from (day x stock) frames.

    Only saved quantities enter: a chapter's tables can be recomputed from its results
    folder's ``predictions.parquet`` and ``returns.parquet`` with this function.
    """
    rank = metrics.ranking_report(scores, labels.reindex_like(scores))
    res = bt.run_backtest(scores, returns, benchmark=benchmark, **backtest_kw)
    return {"IC": rank["IC"], "RankIC": rank["RankIC"], "ICIR": rank["ICIR"],
            **{k: res.metrics[k] for k in BACKTEST_METRICS if k in res.metrics}}, res


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


def momentum_scores(panel: Panel, days: np.ndarray) -> np.ndarray:
    """The naive score of day t: each stock's return of day t (momentum over one day)."""
    return np.where(panel.exists[days], panel.returns[days], np.nan)


# --------------------------------------------------------------------------- running models
Factory = Callable[[Panel, Config], torch.nn.Module]
MOMENTUM = "momentum (yesterday's return)"
FLOOR = "ridge floor ({} label)"
UNIVERSE = "universe (equal weight)"


def n_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


@dataclass
class ModelRun:
    universe: str
    name: str
    seed: int
    metrics: dict
    predictions: pd.DataFrame  # long format, test days
    history: pd.DataFrame
    backtest: bt.BacktestResult
    seconds_per_epoch: float
    parameters: int
    extras: dict = field(default_factory=dict)  # e.g. HIGSTM's last test day's graphs


def run_model(name: str, factory: Factory, experiment: Experiment, cfg: Config, seed: int, log=print,
              run_name: str | None = None) -> ModelRun:
    """Seed, build, train (model selection on validation), score the test days once, evaluate.

    ``run_name`` names the run in the results (default ``name``)."""
    panel, parts, device = experiment.panel, experiment.parts, cfg.torch_device()
    seed_everything(seed)
    model = factory(panel, cfg).to(device)
    name = run_name or name
    log(f"{name} (seed {seed}, {n_parameters(model):,} parameters)")
    result = train(model, panel, parts, cfg.epochs, cfg.window, lr=cfg.lr, seed=seed,
                   days_per_epoch=cfg.days_per_epoch, valid_days=cfg.valid_days, patience=cfg.patience,
                   device=device, clip=cfg.clip, loss=cfg.loss, label=cfg.train_label, log=log)
    if hasattr(model, "reset_records"):  # a model's own per-day notes (e.g. MTMD's memory use): test days only
        model.reset_records()
    scores = predict(model, panel, parts["test"], cfg.window, device)
    out, res = evaluate(scores, panel, parts["test"], **cfg.backtest)
    extras = {k: v.cpu().numpy() for k, v in getattr(model, "last_graphs", {}).items()}
    extras.update(model.records() if hasattr(model, "records") else {})
    preds = long_predictions(panel, scores, parts["test"], model=name, seed=seed)
    return ModelRun(panel.universe, name, seed, out, preds, result.history.assign(model=name, seed=seed), res,
                    result.seconds_per_epoch, n_parameters(model), extras)


def scores_run(name: str, experiment: Experiment, cfg: Config, scores: np.ndarray, seed: int = -1) -> ModelRun:
    """Test-day scores (days, stocks) made outside :func:`train` (a rule, or a model fitted elsewhere, such as
    LightGBM), evaluated like a trained model; seed -1 means nothing random was involved."""
    panel, test = experiment.panel, experiment.parts["test"]
    out, res = evaluate(scores, panel, test, **cfg.backtest)
    preds = long_predictions(panel, scores, test, model=name, seed=seed)
    return ModelRun(panel.universe, name, seed, out, preds, pd.DataFrame(), res, 0.0, 0)


def floor_run(experiment: Experiment, cfg: Config, label: str = "raw") -> ModelRun:
    """The budget-free floor: a cross-sectional ridge regression of the ``label`` (raw or rank) on the scaled
    day-t features, fitted in closed form on every training day (:class:`repro.models.linear.CrossSectionalRidge`)."""
    panel, parts = experiment.panel, experiment.parts
    train_days = parts["train"]
    model = linear.CrossSectionalRidge().fit(panel.scaled(train_days), panel.target(label)[train_days],
                                            panel.exists[train_days])
    scores = np.where(panel.exists[parts["test"]], model.predict(panel.scaled(parts["test"])), np.nan)
    run = scores_run(FLOOR.format(label), experiment, cfg, scores)
    run.extras["coef"] = pd.Series(model.coef_, index=panel.features, name=run.name)
    run.extras["valid_IC"] = mean_ic(model.predict(panel.scaled(parts["valid"])), panel, parts["valid"])
    return run


def universe_run(experiment: Experiment, cfg: Config) -> ModelRun:
    """No skill: every stock of the day bought with equal money, same holding days and fees as the models.

    It has no ranking, so no IC; its return is what a portfolio earns without choosing stocks."""
    panel, test = experiment.panel, experiment.parts["test"]
    scores = np.where(panel.exists[test], 0.0, np.nan)
    s, _ = frames(panel, scores, test)
    res = bt.run_backtest(s, returns_frame(panel), benchmark=benchmark_returns(panel),
                          **{**cfg.backtest, "top": panel.n_stocks})
    out = {"IC": np.nan, "RankIC": np.nan, "ICIR": np.nan, **{k: res.metrics[k] for k in BACKTEST_METRICS}}
    empty = long_predictions(panel, scores[:0], test[:0], model=UNIVERSE, seed=-1)
    return ModelRun(panel.universe, UNIVERSE, -1, out, empty, pd.DataFrame(), res, 0.0, 0)


def naive_run(experiment: Experiment, cfg: Config) -> ModelRun:
    """The momentum score on the test days, evaluated like a model (seed -1: nothing is trained)."""
    return scores_run(MOMENTUM, experiment, cfg, momentum_scores(experiment.panel, experiment.parts["test"]))


@dataclass
class Results:
    """Every run of a chapter, with the tables the results folder holds."""

    runs: list[ModelRun]
    _daily: pd.DataFrame | None = field(default=None, init=False, repr=False)  # daily_ic(), computed once

    def metrics(self) -> pd.DataFrame:
        """One row per (universe, model, seed): IC, Rank IC, ICIR and the backtest's metrics."""
        return pd.DataFrame([{"universe": r.universe, "model": r.name, "seed": r.seed, **r.metrics}
                             for r in self.runs])

    def predictions(self) -> pd.DataFrame:
        return pd.concat([r.predictions.assign(universe=r.universe) for r in self.runs], ignore_index=True)

    def histories(self) -> pd.DataFrame:
        return pd.concat([r.history.assign(universe=r.universe) for r in self.runs if len(r.history)],
                         ignore_index=True)

    def daily_ic(self) -> pd.DataFrame:
        """Daily IC and Rank IC of every (universe, model, seed): what the verdicts test (saved, and read
        by each verdict, so it is computed once)."""
        if self._daily is None:
            preds = self.predictions()
            self._daily = pd.concat({u: report.daily_ic_frame(g, keys=("model", "seed")) for u, g in
                                     preds.groupby("universe", sort=False)}, names=["universe", None]).reset_index(
                level=0).reset_index(drop=True)
        return self._daily

    def curves(self, exclude: Sequence[str] = ()) -> dict[str, dict[str, pd.DataFrame]]:
        """Each universe's backtest daily frames, the first seed run of every model but ``exclude``."""
        out: dict[str, dict[str, pd.DataFrame]] = {}
        for r in self.runs:
            if r.name not in exclude:
                out.setdefault(r.universe, {}).setdefault(r.name, r.backtest.daily)
        return out

    def first(self, name: str, universe: str | None = None) -> ModelRun:
        """The first run of model ``name`` (in ``universe``)."""
        return next(r for r in self.runs if r.name == name and (universe is None or r.universe == universe))

    def __add__(self, other: "Results") -> "Results":
        return Results(self.runs + other.runs)

    def cost(self) -> pd.DataFrame:
        """Seconds per epoch, epochs run, best epoch and size of every trained run."""
        return pd.DataFrame([{"universe": r.universe, "model": r.name, "seed": r.seed,
                              "seconds per epoch": r.seconds_per_epoch, "epochs run": len(r.history),
                              "best epoch": int(r.history.loc[r.history["valid_IC"].idxmax(), "epoch"]),
                              "parameters": r.parameters} for r in self.runs if len(r.history)])

    def save(self, run: Run, experiments: Mapping[str, Experiment]) -> None:
        """Write metrics, predictions, daily ICs, returns, benchmark, histories and cost to the results folder."""
        run.save("metrics.csv", self.metrics())
        run.save("predictions.parquet", self.predictions())
        run.save("daily_ic.csv", self.daily_ic())
        run.save("returns.parquet", pd.concat({u: returns_frame(e.panel).stack().rename("return").to_frame()
                                               for u, e in experiments.items()}, names=["universe"]))
        # float64 in the CSV: the float32 returns are exactly representable, so the file round-trips
        run.save("benchmark.csv", pd.concat({u: benchmark_returns(e.panel).astype(float)
                                             for u, e in experiments.items()}, axis=1))
        run.save("training_history.csv", self.histories())
        run.save("cost.csv", self.cost())


def run_models(models: Mapping[str, Factory], names: Sequence[str], experiments: Mapping[str, Experiment],
               cfg: Config, seeds: Sequence[int] | None = None, log=print, suffix: str = "") -> Results:
    """Train and test every model of ``names`` (keys of the registry ``models``) on every universe and seed;
    ``suffix`` is appended to each run's name (a variant of the config, e.g. " (rank label)")."""
    unknown = [n for n in names if n not in models]
    if unknown:
        raise ParameterError(f"unknown model(s) {unknown}; this chapter has {list(models)}")
    runs = []
    for universe, experiment in experiments.items():
        for name in names:
            for seed in (cfg.seeds if seeds is None else seeds):
                runs.append(run_model(name, models[name], experiment, cfg, seed, log=log, run_name=name + suffix))
    return Results(runs)


def run_naive(experiments: Mapping[str, Experiment], cfg: Config, floors: Sequence[str] = ()) -> Results:
    """Momentum, the no-skill equal-weight universe and the ridge floor with each label of ``floors``."""
    return Results([run for e in experiments.values()
                    for run in (naive_run(e, cfg), universe_run(e, cfg), *(floor_run(e, cfg, lab) for lab in floors))])


__all__ = [
    "BACKTEST_METRICS", "Config", "Experiment", "FLOOR", "LOSSES", "MOMENTUM", "ModelRun", "Panel", "Prices",
    "Results", "UNIVERSE", "benchmark_returns", "day_batch", "evaluate", "evaluate_frames", "fit_scaler", "floor_run",
    "frames", "load_prices", "long_predictions", "make_panel", "make_split", "mean_ic", "momentum_scores",
    "mse_loss", "n_parameters", "naive_run", "pearson_loss", "predict", "prepare", "returns_frame", "run_model",
    "run_models", "run_naive", "sample_days", "scores_run", "side_batch", "split_days", "split_table", "train",
    "universe_run",
]
