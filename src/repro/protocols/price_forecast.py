"""Forecast one stock's next price: the protocol of the single-stock chapters (papers 000, 001, 002).

1. **Windows** -- from a daily table with one row per (ticker, date), the features of the
   last ``window`` days up to the decision day t and a target known after t (the next
   open, the next close, ...).
2. **Split** -- chronological by date: the first ``train`` share of the dates is for
   training (its last ``valid`` share for validation: tuning and early stopping), the rest
   for testing; samples whose target falls into a later part are dropped. Scalers are
   fitted per ticker on training rows only (``scaler_fit="all"`` reproduces the leak of
   scaling before splitting, to measure it).
3. **Targets** -- ``"level"`` predicts the price itself (the papers' formulation);
   ``"return"`` predicts target / reference - 1 (the reference is today's close) and the
   price is rebuilt from it.
4. **Models** -- a tuner picks hyper-parameters on the validation part; each model is then
   fitted once per seed. A model is a function ``fit(dataset, seed)`` returning its test
   predictions in scaled target units (:class:`Fitted`).
5. **Scores** -- per ticker (never pooled across price levels, which inflates R²), the
   mean over tickers, the skill against persistence (tomorrow's value is today's close),
   and every test prediction saved for the verdicts of :mod:`repro.report`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import metrics, report
from ..config import ChapterConfig, param
from ..data import DateRangeError
from ..features import Scaler, make_windows, split_by_fraction
from ..features.splits import DateSplit
from ..models import arima, naive

PARTS = ("train", "valid", "test")
PERSISTENCE = "persistence (close)"


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class Config(ChapterConfig):
    """The protocol's parameters; a chapter's config derives from it and sets its own defaults."""

    tickers: list[str] = param(["AAPL"], "tickers, pooled in one data set and scored one by one")
    window: int = param(5, "days per input window", minimum=1)
    start: str | None = param(None, "first date of the experiments (None: the chapter's default period)")
    end: str | None = param(None, "last date of the experiments")
    target: str = param("level", "level: predict the price (the papers' formulation) | return: predict the "
                        "change from today's close and rebuild the price", choices=("level", "return"))
    max_epochs: int = param(15, "epochs per fit at most, early stopping on the validation part", minimum=1)
    patience: int = param(2, "early-stopping patience (epochs)", minimum=1)
    batch_size: int = param(32, "mini-batch size", minimum=1)
    seeds: list[int] = param([0, 1, 2], "final fits are repeated per seed; tables show mean ± std")


# --------------------------------------------------------------------------- datasets
@dataclass
class Dataset:
    """Pooled windows of several tickers, scaled per ticker on training rows only."""

    name: str
    features: list[str]
    window: int
    split: DateSplit
    X: np.ndarray
    y: np.ndarray  # scaled target
    y_raw: np.ndarray  # target in price units
    ticker: np.ndarray
    date: pd.DatetimeIndex  # decision dates t
    target_date: pd.DatetimeIndex
    part: np.ndarray  # "train" | "valid" | "test"
    last_close: np.ndarray  # reference price at t (price units): persistence, and the base of returns
    last_open: np.ndarray  # open_t
    target_scalers: dict[str, Scaler] = field(default_factory=dict)
    feature_scalers: dict[str, Scaler] = field(default_factory=dict)
    target: str = "level"
    scaler_fit: str = "train"

    def arrays(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        m = self.part == part
        return self.X[m], self.y[m]

    def mask(self, part: str = "test") -> np.ndarray:
        return self.part == part

    def to_price(self, pred_scaled: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Undo the per-ticker target scaling of predictions for the samples in ``mask`` (and rebuild prices)."""
        mask = np.ones(len(self.y), bool) if mask is None else mask
        out = np.empty(int(mask.sum()))
        tick = self.ticker[mask]
        for t, sc in self.target_scalers.items():  # one vectorised inverse per ticker
            sel = tick == t
            out[sel] = sc.inverse_transform(np.asarray(pred_scaled)[sel], feature=0)
        if self.target == "return":  # a predicted return applies to today's close
            out = self.last_close[mask] * (1.0 + out)
        return out

    def select(self, keep: np.ndarray) -> Dataset:
        """The samples where ``keep`` is true (e.g. days with texts), scalers and split unchanged."""
        keep = np.asarray(keep, bool)
        if keep.shape != self.y.shape:
            raise ValueError(f"keep has {keep.size} entries for {self.y.size} samples")
        arrays = {f: getattr(self, f)[keep] for f in ("X", "y", "y_raw", "ticker", "date", "target_date", "part",
                                                       "last_close", "last_open")}
        return dataclasses.replace(self, **arrays)

    def split_table(self) -> pd.DataFrame:
        rows = []
        for part in PARTS:
            m = self.part == part
            rows.append({"part": part, "first decision day": self.date[m].min().date(),
                         "last decision day": self.date[m].max().date(), "samples": int(m.sum()),
                         "tickers": len(set(self.ticker[m]))})
        return pd.DataFrame(rows).set_index("part")


def make_dataset(name: str, table: pd.DataFrame, features: list[str], target_col: str, window: int = 5,
                 start: object = None, end: object = None, train: float = 0.8, valid: float = 0.2,
                 target: str = "level", scaler_fit: str = "train", reference_col: str = "close") -> Dataset:
    """Windows of ``features`` for every ticker in ``table`` within [start, end], split by date.

    ``table`` has a (ticker, date) index and the columns ``features``, ``target_col`` (the
    value to forecast, stamped at the decision day), ``reference_col`` and ``open``. The
    first ``train`` share of the dates is for training, the last ``valid`` share of those
    for validation. A sample belongs to the part of its decision date; samples whose target
    (the next trading day) falls into a later part are dropped.
    """
    if target not in ("level", "return") or scaler_fit not in ("train", "all"):
        raise ValueError("target must be 'level' or 'return'; scaler_fit 'train' or 'all'")
    table = table.sort_index()
    dates = table.index.get_level_values("date")
    keep = np.ones(len(table), bool)
    if start is not None:
        keep &= dates >= pd.Timestamp(start)
    if end is not None:
        keep &= dates <= pd.Timestamp(end)
    if keep.sum() < 2 * (window + 2):
        spans = pd.Series(dates).groupby(table.index.get_level_values("ticker")).agg(["min", "max"])
        have = "; ".join(f"{t}: {a:%Y-%m-%d}..{b:%Y-%m-%d}" for t, (a, b) in spans.iterrows())
        raise DateRangeError(f"{name}: {int(keep.sum())} rows between start={start} and end={end} are too few for "
                             f"{window}-day windows; the data covers {have}. Choose start/end inside it.")
    table = table[keep]
    split = split_by_fraction(table.index.get_level_values("date").unique(), train=train, valid=valid)
    train_end = split.train[1]  # scalers see the training part only, not the validation part
    blocks = []
    t_scalers, f_scalers = {}, {}
    for ticker, frame in table.groupby(level="ticker", sort=True):
        frame = frame.droplevel("ticker")
        # training rows: decision day and target day inside the training part
        next_day = pd.Series(frame.index, index=frame.index).shift(-1)
        fit_rows = (frame.index <= train_end) & (next_day <= train_end).to_numpy()
        if scaler_fit == "all":
            fit_rows = next_day.notna().to_numpy()
        y_col = frame[[target_col]].to_numpy(float)
        if target == "return":
            y_col = y_col / frame[[reference_col]].to_numpy(float) - 1.0
        fsc = Scaler("standard").fit(frame.loc[fit_rows, features].to_numpy(float), dates=frame.index[fit_rows])
        tsc = Scaler("standard").fit(y_col[fit_rows], dates=frame.index[fit_rows])
        scaled = pd.DataFrame(fsc.transform(frame[features].to_numpy(float)), index=frame.index, columns=features)
        scaled["_y"] = tsc.transform(y_col)[:, 0]
        w = make_windows(scaled, features, "_y", window, horizon=0)
        pos = scaled.index.get_indexer(w.dates)
        blocks.append(pd.DataFrame({
            "ticker": ticker, "date": w.dates, "target_date": pd.DatetimeIndex(next_day.to_numpy()[pos]), "y": w.y,
            "y_raw": frame[target_col].to_numpy(float)[pos], "close": frame[reference_col].to_numpy(float)[pos],
            "open": frame["open"].to_numpy(float)[pos]}).assign(_X=list(w.X)))
        t_scalers[ticker], f_scalers[ticker] = tsc, fsc
    allw = pd.concat(blocks, ignore_index=True)
    part = np.full(len(allw), "", dtype=object)
    for name_ in split.ranges():
        part[split.mask(allw["date"], name_, label_dates=allw["target_date"])] = name_
    allw = allw[part != ""].assign(part=part[part != ""]).reset_index(drop=True)
    return Dataset(
        name=name, features=list(features), window=window, split=split,
        X=np.stack(allw["_X"].to_list()).astype(np.float32), y=allw["y"].to_numpy(float),
        y_raw=allw["y_raw"].to_numpy(float), ticker=allw["ticker"].to_numpy(), date=pd.DatetimeIndex(allw["date"]),
        target_date=pd.DatetimeIndex(allw["target_date"]), part=allw["part"].to_numpy(),
        last_close=allw["close"].to_numpy(float), last_open=allw["open"].to_numpy(float),
        target_scalers=t_scalers, feature_scalers=f_scalers, target=target, scaler_fit=scaler_fit,
    )


# --------------------------------------------------------------------------- scoring
def score(ds: Dataset, pred_price: np.ndarray, part: str = "test") -> pd.DataFrame:
    """MAE, MSE, RMSE, MAPE, R² per ticker on one part, their mean over tickers ("mean"), and all
    tickers pooled ("pooled"). Pooled R² is inflated by the spread of price levels *between*
    tickers; the per-ticker mean is the honest summary."""
    m = ds.mask(part)
    if len(pred_price) != int(m.sum()):
        raise ValueError(f"{len(pred_price)} predictions for {int(m.sum())} {part} samples")
    frame = pd.DataFrame({"ticker": ds.ticker[m], "y": ds.y_raw[m], "p": pred_price})
    rows = {t: metrics.regression_report(g["y"], g["p"]) for t, g in frame.groupby("ticker")}
    table = pd.DataFrame(rows).T
    table.loc["mean"] = table.mean()
    table.loc["pooled"] = pd.Series(metrics.regression_report(frame["y"], frame["p"]))
    table.index.name = "ticker"
    return table


def persistence_predictions(ds: Dataset, part: str = "test") -> dict[str, np.ndarray]:
    """The naive forecasts: today's close, and today's open, as the next value."""
    m = ds.mask(part)
    return {PERSISTENCE: naive.persistence(ds.last_close[m]), "persistence (open)": naive.persistence(ds.last_open[m])}


def prediction_frame(ds: Dataset, pred_price: np.ndarray, part: str = "test", **labels) -> pd.DataFrame:
    """Per-sample predictions with their keys (for the results folder)."""
    m = ds.mask(part)
    frame = pd.DataFrame({"ticker": ds.ticker[m], "date": ds.date[m], "target_date": ds.target_date[m],
                          "y_true": ds.y_raw[m], "y_pred": pred_price})
    for k, v in labels.items():
        frame.insert(0, k, v)
    return frame


def predictions_and_scores(ds: Dataset, price: np.ndarray, model: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test predictions in price units -> (prediction rows, per-ticker score rows), keyed alike."""
    keys = dict(experiment=ds.name, model=model, seed=seed)
    return prediction_frame(ds, price, **keys), score(ds, price).reset_index().assign(**keys)


def baseline_scores(ds: Dataset, predictions: Mapping[str, np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions and metrics of deterministic baselines (seed -1) on the test part."""
    pairs = [predictions_and_scores(ds, price, name, seed=-1) for name, price in predictions.items()]
    return pd.concat([p for p, _ in pairs], ignore_index=True), pd.concat([s for _, s in pairs], ignore_index=True)


# --------------------------------------------------------------------------- models
@dataclass
class Fitted:
    """What one fit returns: test predictions in scaled target units per output name, and epochs trained."""

    predictions: dict[str, np.ndarray]
    epochs: int | None = None


Fit = Callable[[Dataset, int], Fitted]


def fit_seeds(ds: Dataset, fit: Fit, seeds: Iterable[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit once per seed; (predictions: one row per test sample, output and seed; metrics per ticker)."""
    preds, scores = [], []
    test = ds.mask("test")
    for seed in seeds:
        out = fit(ds, seed)
        for name, pred in out.predictions.items():
            p, sc = predictions_and_scores(ds, ds.to_price(pred, test), name, seed)
            preds.append(p)
            scores.append(sc.assign(epochs=out.epochs))
    return pd.concat(preds, ignore_index=True), pd.concat(scores, ignore_index=True)


@dataclass
class Tuned:
    best: dict[tuple[str, str], dict]  # (experiment, model) -> hyper-parameters
    trials: pd.DataFrame  # every trial, with experiment and model


def tune_all(datasets: Mapping[str, Dataset], models: Sequence[str],
             tune: Callable[[str, Dataset], tuple[dict, pd.DataFrame]]) -> Tuned:
    """Tune every model on every experiment's validation part: ``tune(model, dataset) -> (best, trials)``."""
    best, tables = {}, []
    for name, ds in datasets.items():
        for model in models:
            best[(name, model)], trials = tune(model, ds)
            tables.append(trials.assign(experiment=name, model=model))
    return Tuned(best, pd.concat(tables, ignore_index=True))


class Collector:
    """Predictions and per-ticker metrics of a chapter's runs, gathered as they come.

    Every prediction is kept (the results folder's ``predictions.parquet``); the metrics of
    the main runs (``main=True``) form the chapter's headline table, side studies keep theirs.
    """

    def __init__(self) -> None:
        self._predictions: list[pd.DataFrame] = []
        self._scores: list[pd.DataFrame] = []

    def add(self, predictions: pd.DataFrame, scores: pd.DataFrame, main: bool = True) -> pd.DataFrame:
        self._predictions.append(predictions)
        if main:
            self._scores.append(scores)
        return scores

    def predictions(self) -> pd.DataFrame:
        return pd.concat(self._predictions, ignore_index=True)

    def scores(self) -> pd.DataFrame:
        return pd.concat(self._scores, ignore_index=True)


# --------------------------------------------------------------------------- tables
def summarise(scores: pd.DataFrame, metrics_: tuple[str, ...] = ("MAE", "MSE", "RMSE", "MAPE", "R2"),
              digits: int = 4) -> pd.DataFrame:
    """Mean ± std over seeds of the ticker-averaged metrics, one row per (experiment, model)."""
    mean_rows = scores[scores["ticker"] == "mean"]
    table = metrics.mean_std(mean_rows[["experiment", "model", "seed", *metrics_]], by=["experiment", "model"])
    return metrics.format_mean_std(table, list(metrics_), digits).set_index(["experiment", "model"])


def _skill_rows(scores: pd.DataFrame, reference: str) -> pd.DataFrame:
    """1 - MSE / MSE_ref for every (experiment, model, seed, ticker) row of ``scores``."""
    rows = scores[~scores["ticker"].isin(["mean", "pooled"])]
    ref = rows[rows["model"] == reference].groupby(["experiment", "ticker"])["MSE"].mean()
    ratio = rows["MSE"].to_numpy() / ref.reindex(pd.MultiIndex.from_frame(rows[["experiment", "ticker"]])).to_numpy()
    return rows[["experiment", "model", "seed", "ticker"]].assign(skill=1 - ratio)


def skill_per_ticker(scores: pd.DataFrame, reference: str = PERSISTENCE) -> pd.DataFrame:
    """MSE skill against ``reference`` per (experiment, model) row and ticker column, mean over seeds.
    Scale-free, so tickers at different price levels weigh the same."""
    rows = _skill_rows(scores, reference)
    return rows.groupby(["experiment", "model", "ticker"], sort=False)["skill"].mean().unstack("ticker")


def skill(scores: pd.DataFrame, reference: str = PERSISTENCE) -> pd.DataFrame:
    """MSE skill against the persistence forecast per experiment and model: 1 - MSE / MSE_ref computed per
    ticker and seed, averaged over tickers, then mean and std over seeds.

    Positive: the model beats persistence; negative: it does worse. Never a ratio of
    dollar errors pooled across tickers (which the highest-priced ticker would dominate).
    """
    per_seed = _skill_rows(scores, reference).groupby(["experiment", "model", "seed"], sort=False)["skill"].mean()
    by_model = per_seed.groupby(level=["experiment", "model"], sort=False)
    return pd.DataFrame({"MSE skill vs persistence": by_model.mean(), "std over seeds": by_model.std(ddof=1)})


def paired_effect(scores: pd.DataFrame, with_: str, without: str,
                  metrics_: tuple[str, ...] = ("MAE", "R2")) -> pd.DataFrame:
    """What changes from experiment ``without`` to ``with_``, per model: metric difference paired by seed.

    With both experiments on the same dates the difference is the feature's effect plus
    training noise, which the std over seeds shows.
    """
    rows = scores[(scores["ticker"] == "mean") & scores["experiment"].isin([with_, without])]
    wide = rows.pivot_table(index=["model", "seed"], columns="experiment", values=list(metrics_))
    out = {}
    for m in metrics_:
        diff = (wide[(m, with_)] - wide[(m, without)]).dropna()
        grouped = diff.groupby(level="model", sort=False)
        out[f"Δ{m} mean"] = grouped.mean()
        out[f"Δ{m} std"] = grouped.std(ddof=1)
    table = pd.DataFrame(out)
    table["seeds"] = diff.groupby(level="model", sort=False).size()
    return table


def per_ticker(scores: pd.DataFrame, experiments: Sequence[str], metric: str = "MAE") -> pd.DataFrame:
    """``metric`` per (experiment, model) row and ticker column, mean over seeds."""
    def one(experiment: str) -> pd.DataFrame:
        rows = scores[(scores["experiment"] == experiment) & ~scores["ticker"].isin(["pooled"])]
        return rows.pivot_table(index="model", columns="ticker", values=metric, aggfunc="mean", sort=False)
    return pd.concat({name: one(name) for name in experiments}, names=["experiment"])


def persistence_verdict(predictions: pd.DataFrame, experiment: str) -> tuple[pd.DataFrame, list[str]]:
    """Every model of ``experiment`` against persistence per ticker (Diebold-Mariano, seed check), with sentences."""
    sel = predictions[predictions["experiment"] == experiment]
    table = report.point_verdict(sel, PERSISTENCE)
    if table.empty:
        return table, ["No model to compare with persistence in this run."]
    return table, report.point_sentences(report.point_summary(table), PERSISTENCE)


def paired_forecasts(predictions: pd.DataFrame, experiment: str, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Diebold-Mariano per ticker for each (model, against) pair on the same test days and seeds; pairs with a
    model missing from the run are left out. Indexed by (model, against, ticker)."""
    sel = predictions[predictions["experiment"] == experiment]
    parts = []
    for a, b in pairs:
        fa, fb = sel[sel["model"] == a], sel[sel["model"] == b]
        if len(fa) and len(fb):
            parts.append(report.compare_forecasts(fa, fb).reset_index().assign(model=a, against=b))
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True).set_index(["model", "against", "ticker"])


def split_tables(datasets: Mapping[str, Dataset]) -> pd.DataFrame:
    """Each experiment's parts: first and last decision day, samples and tickers."""
    return pd.concat({name: ds.split_table() for name, ds in datasets.items()}, names=["experiment"])


def forecast_panels(predictions: pd.DataFrame, experiment: str, ticker: str, models: Sequence[str],
                    reference: str = PERSISTENCE) -> list[dict]:
    """Inputs of :func:`repro.plots.forecast_diagnostics`: each model's first seed on one ticker, with the reference."""
    sel = predictions[(predictions["experiment"] == experiment) & (predictions["ticker"] == ticker)]
    first_seed = sel[sel["seed"] == sel.groupby("model")["seed"].transform("min")]
    ref = sel[sel["model"] == reference].set_index("target_date")["y_pred"]
    panels = []
    for model in [m for m in models if m in set(sel["model"])]:
        rows = first_seed[first_seed["model"] == model].sort_values("target_date")
        panels.append({"title": f"{ticker}: {model}", "dates": rows["target_date"], "y_true": rows["y_true"],
                       "y_pred": rows["y_pred"], "reference": ref.reindex(rows["target_date"]).to_numpy()})
    return panels


# --------------------------------------------------------------------------- ARIMA
def arima_runs(table: pd.DataFrame, ds: Dataset, series: str, orders=arima.PAPER_GRID
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ARIMA on each ticker's ``series`` column, orders chosen on validation (honest) or on test (leakage).

    Returns (predictions for the test samples of ``ds`` per variant, the order table).
    Variants: ``one_step/valid`` (honest), ``one_step/test`` and ``multi_step/test`` (the
    order is the one that scores best on the test set, as some papers choose it).
    """
    split = ds.split
    fit_end = split.train[1]
    train_end = split.valid[1] if split.valid else split.train[1]
    preds, orders_rows = [], []
    test_mask = ds.mask("test")
    for ticker in sorted(ds.target_scalers):
        values = table.loc[ticker, series]
        values = values[(values.index >= split.train[0]) & (values.index <= split.test[1])]
        y_fit = values[values.index <= fit_end].to_numpy(float)
        y_val = values[(values.index > fit_end) & (values.index <= train_end)].to_numpy(float)
        y_train = values[values.index <= train_end].to_numpy(float)
        after = values[values.index > train_end]
        want = ds.target_date[test_mask & (ds.ticker == ticker)]
        val_err, _ = arima.grid(y_fit, y_val, orders)
        test_err, paths = arima.grid(y_train, after.to_numpy(float), orders)
        choices = {"one_step/valid": ("one_step", arima.best_order(val_err, "one_step")),
                   "one_step/test": ("one_step", arima.best_order(test_err, "one_step")),
                   "multi_step/test": ("multi_step", arima.best_order(test_err, "multi_step"))}
        for variant, (mode, order) in choices.items():
            path = pd.Series(paths[(order, mode)], index=after.index)
            preds.append(pd.DataFrame({"variant": variant, "ticker": ticker, "target_date": want,
                                       "y_pred": path.reindex(want).to_numpy()}))
            orders_rows.append({"ticker": ticker, "variant": variant, "order": str(order),
                                "chosen on": "validation" if variant.endswith("valid") else "test (leakage)"})
    return pd.concat(preds, ignore_index=True), pd.DataFrame(orders_rows)


def align(ds: Dataset, frame: pd.DataFrame, part: str = "test") -> np.ndarray:
    """Reorder per-(ticker, target_date) predictions to the dataset's sample order."""
    m = ds.mask(part)
    keys = pd.MultiIndex.from_arrays([ds.ticker[m], ds.target_date[m]])
    return frame.set_index(["ticker", "target_date"])["y_pred"].reindex(keys).to_numpy(float)


__all__ = [
    "Collector", "Config", "Dataset", "Fit", "Fitted", "PARTS", "PERSISTENCE", "Tuned", "align", "arima_runs",
    "baseline_scores", "fit_seeds", "forecast_panels", "make_dataset", "paired_effect", "paired_forecasts",
    "per_ticker", "persistence_verdict",
    "persistence_predictions", "prediction_frame", "predictions_and_scores", "score", "skill", "skill_per_ticker",
    "split_tables",
    "summarise", "tune_all",
]
