"""Paper 002 end to end: the daily table, leakage-free datasets, baselines and tuned networks.

The paper ("Artificial Intelligence in Stock Market Prediction: A Deep Learning
Perspective") predicts the next day's opening price of four stocks from a 5-day window of
prices, six yearly World Bank indicators, a monthly Google Trends score and a weekly
tweet-sentiment score. This module builds that table from StockNet, the World Bank and
scored tweets (section 3), and runs the section-4 protocol without look-ahead:

* every feature of day t is known at the close of day t (tweets are assigned to the
  close at which they are known; the macro value of year Y is the one published for Y-1
  unless ``macro_lag_years=0``; the attention score uses trailing counts);
* the split is chronological (80/20 by date), the validation part is carved from the end
  of the training part, and samples whose target crosses a boundary are dropped;
* scalers are fitted per ticker on training rows only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import metrics
from ..data import stocknet, wdi
from ..features import Scaler, make_windows, split_by_fraction
from ..features.splits import DateSplit
from ..features.text import calendar_week_mean, daily_totals, trailing_count, trailing_mean
from ..models import arima

PAPER_TICKERS = ("AAPL", "AMZN", "GOOG", "MSFT")
PRICE_FEATURES = ["open", "high", "low", "close", "adj_close", "volume"]
MACRO_FEATURES = list(wdi.INDICATORS)
TARGET = "next_open"

#: Numbers the paper's text gives (Table 1 itself was lost in extraction; section 5 quotes these).
PAPER_RESULTS = pd.DataFrame(
    [
        ("ARIMA", "numeric", 4.9881, 34.2816, np.nan, 0.6046, "order (2, 0, 1), chosen on the test set"),
        ("BiLSTM", "with sentiment", 1.4128, np.nan, np.nan, 0.9973, "best trial; R2 'up to 0.9973' (0.9873 in the conclusion)"),
        ("CNN", "with sentiment", 1.3921, np.nan, np.nan, 0.9876, "best trial"),
        ("Transformer", "numeric", np.nan, np.nan, np.nan, 0.9978, ""),
        ("BERT-inspired", "with sentiment", 1.9350, np.nan, np.nan, 0.9840, ""),
        ("Hybrid", "both", 4.0867, np.nan, np.nan, np.nan, "MAE 4.0867 to 6.3640"),
    ],
    columns=["model", "setting", "MAE", "MSE", "MAPE", "R2", "note"],
)

#: The paper's hybrid ablation (Table 2 as quoted in the text; MAPE in %).
PAPER_ABLATION = pd.DataFrame(
    [
        ("full", 1.14, 9.03, 2.63, 0.9876),
        ("w/o CNN", np.nan, np.nan, np.nan, 0.9929),
        ("w/o BiLSTM", 1.33, np.nan, np.nan, 0.9818),
        ("w/o attention", np.nan, np.nan, np.nan, np.nan),
        ("w/o GBR", 2.70, np.nan, 6.78, np.nan),
    ],
    columns=["variant", "MAE", "MSE", "MAPE_pct", "R2"],
)


# --------------------------------------------------------------------------- the daily table
def daily_table(tickers: list[str], macro_lag_years: int = 1) -> pd.DataFrame:
    """One row per (ticker, date): prices, the six World Bank indicators, and the target ``next_open``.

    The indicators are matched by calendar year; with ``macro_lag_years=1`` (the default) a
    row of year Y gets the value for Y-1, the latest one published by then (the paper
    matches year Y itself, which uses figures published only after the year ends).
    """
    macro = wdi.indicators()
    frames = []
    for t in tickers:
        px = stocknet.prices(t)
        out = px[PRICE_FEATURES].copy()
        years = px.index.year - macro_lag_years
        for col in MACRO_FEATURES:
            out[col] = macro[col].reindex(years).to_numpy()
        out[TARGET] = px["open"].shift(-1)  # the label: next trading day's open
        out.insert(0, "ticker", t)
        frames.append(out)
    table = pd.concat(frames)
    table.index.name = "date"
    return table.reset_index().set_index(["ticker", "date"]).sort_index()


def tweet_items(tickers: list[str], scorer, max_per_day: int | None = None) -> pd.DataFrame:
    """Scored tweets of ``tickers``: ``timestamp``, ``ticker``, ``score``, ``source``.

    The raw tweets (full text) are used where StockNet has them (AAPL AMZN FB GOOG MSFT),
    the preprocessed tokens otherwise. ``max_per_day`` keeps at most that many tweets per
    ticker and day (a deterministic choice by tweet hash) to bound the scoring cost: the
    others keep ``score`` NaN (``scored`` False) but still count for the attention score; the
    trailing mean of a sample estimates the trailing mean of all. Identical texts are scored
    once.
    """
    parts = []
    raw_names = [t for t in tickers if t in stocknet.RAW_TWEET_TICKERS]
    pre_names = [t for t in tickers if t not in stocknet.RAW_TWEET_TICKERS]
    if raw_names:
        parts.append(stocknet.tweets(raw_names, raw=True)[["timestamp", "date", "ticker", "text"]].assign(source="raw"))
    if pre_names:
        parts.append(stocknet.tweets(pre_names)[["timestamp", "date", "ticker", "text"]].assign(source="preprocessed"))
    items = pd.concat(parts, ignore_index=True)
    scored = np.ones(len(items), bool)
    if max_per_day:
        key = pd.util.hash_pandas_object(items[["ticker", "timestamp", "text"]], index=False).to_numpy()
        rank = (pd.DataFrame({"ticker": items["ticker"], "date": items["date"], "k": key})
                .groupby(["ticker", "date"])["k"].rank(method="first"))
        scored = (rank <= max_per_day).to_numpy()
    unique = items.loc[scored, "text"].drop_duplicates()
    scores = pd.Series(scorer.score(unique.tolist()), index=unique.to_numpy())
    items = items.assign(score=np.where(scored, items["text"].map(scores).to_numpy(), np.nan), scored=scored)
    return items.sort_values(["timestamp", "ticker"], kind="stable").reset_index(drop=True)


def add_text_features(table: pd.DataFrame, items: pd.DataFrame, sentiment_window: int = 5,
                      trend_window: int = 21, weekly: str = "trailing") -> pd.DataFrame:
    """Add ``weekly_sentiment_score`` and the attention proxy ``trend`` (0..100) to the table.

    ``weekly="trailing"``: mean score of the tweets known over the last ``sentiment_window``
    trading days (0 when there are none). ``weekly="calendar_week"`` is the paper's weekly
    mean over the calendar week, which looks ahead; it exists to measure the leak.
    ``trend``: tweets known over the last ``trend_window`` days as a percentage of the
    largest such count so far -- a causal stand-in for the paper's Google Trends score,
    which no offline source provides.
    """
    tickers = list(table.index.get_level_values("ticker").unique())
    calendar = table.index.get_level_values("date").unique().sort_values()
    scored = items[items["score"].notna()]
    total, scored_count = daily_totals(scored, calendar, tickers)
    _, count = daily_totals(items.assign(one=1.0), calendar, tickers, value="one")  # every tweet counts
    if weekly == "trailing":
        sent = trailing_mean(total, scored_count, sentiment_window)
    elif weekly == "calendar_week":
        sent = calendar_week_mean(scored, calendar, tickers)
    else:
        raise ValueError("weekly must be 'trailing' or 'calendar_week'")
    attention = trailing_count(count, trend_window)
    trend = 100 * attention / attention.cummax().where(lambda m: m > 0)
    out = table.copy()
    stacked = lambda f: f.stack().reorder_levels([1, 0]).rename_axis(["ticker", "date"])  # noqa: E731
    out["weekly_sentiment_score"] = stacked(sent).reindex(out.index).to_numpy()
    out["trend"] = stacked(trend.fillna(0.0)).reindex(out.index).to_numpy()
    out["tweets_known"] = stacked(count).reindex(out.index).to_numpy()
    return out


def tweet_span(items: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The dates on which every ticker has tweets (the with-sentiment experiments' period)."""
    spans = items.groupby("ticker")["date"].agg(["min", "max"])
    return spans["min"].max(), spans["max"].min()


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
    part: np.ndarray  # "fit" | "val" | "test"
    last_close: np.ndarray  # close_t (price units), for persistence
    last_open: np.ndarray  # open_t
    target_scalers: dict[str, Scaler] = field(default_factory=dict)
    feature_scalers: dict[str, Scaler] = field(default_factory=dict)
    target: str = "level"  # "level": next open; "return": next open / close_t - 1
    scaler_fit: str = "train"

    def arrays(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        m = self.part == part
        return self.X[m], self.y[m]

    def to_price(self, pred_scaled: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Undo the per-ticker target scaling of predictions for the samples in ``mask``."""
        mask = np.ones(len(self.y), bool) if mask is None else mask
        out = np.empty(int(mask.sum()))
        tick = self.ticker[mask]
        for t, sc in self.target_scalers.items():  # one vectorised inverse per ticker
            sel = tick == t
            out[sel] = sc.inverse_transform(np.asarray(pred_scaled)[sel], feature=0)
        if self.target == "return":  # a predicted return applies to today's close
            out = self.last_close[mask] * (1.0 + out)
        return out

    def split_table(self) -> pd.DataFrame:
        rows = []
        for part in ("fit", "val", "test"):
            m = self.part == part
            rows.append({"part": part, "first decision day": self.date[m].min().date(),
                         "last decision day": self.date[m].max().date(), "samples": int(m.sum()),
                         "tickers": len(set(self.ticker[m]))})
        return pd.DataFrame(rows).set_index("part")


def make_dataset(name: str, table: pd.DataFrame, features: list[str], window: int = 5,
                 start: object = None, end: object = None, train: float = 0.8, valid: float = 0.2,
                 target: str = "level", scaler_fit: str = "train") -> Dataset:
    """Windows of ``features`` for every ticker in ``table`` within [start, end], split by date.

    80/20 train/test by date (``train``), the last ``valid`` share of the training dates as
    validation. A sample belongs to the part of its decision date; samples whose target
    (next day's open) falls into a later part are dropped.

    ``target="level"`` predicts the next open in price units (the paper); ``"return"``
    predicts next open / close_t - 1 and turns it back into a price with close_t.
    ``scaler_fit="train"`` fits the per-ticker scalers on training rows only;
    ``"all"`` fits them on every row, test included -- the paper's order of operations
    ("standardized using StandardScaler, and then split"), which leaks the test period's
    price range into training. It exists to measure that leak.
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
    table = table[keep]
    split = split_by_fraction(table.index.get_level_values("date").unique(), train=train, valid=valid)
    train_end = split.valid[1] if split.valid else split.train[1]
    blocks = []
    t_scalers, f_scalers = {}, {}
    for ticker, frame in table.groupby(level="ticker", sort=True):
        frame = frame.droplevel("ticker")
        # train rows: decision day and target day inside the training part
        next_day = pd.Series(frame.index, index=frame.index).shift(-1)
        fit_rows = (frame.index <= train_end) & (next_day <= train_end).to_numpy()
        if scaler_fit == "all":
            fit_rows = next_day.notna().to_numpy()
        y_col = frame[[TARGET]].to_numpy(float)
        if target == "return":
            y_col = y_col / frame[["close"]].to_numpy(float) - 1.0
        fsc = Scaler("standard").fit(frame.loc[fit_rows, features].to_numpy(float), dates=frame.index[fit_rows])
        tsc = Scaler("standard").fit(y_col[fit_rows], dates=frame.index[fit_rows])
        scaled = pd.DataFrame(fsc.transform(frame[features].to_numpy(float)), index=frame.index, columns=features)
        scaled["_y"] = tsc.transform(y_col)[:, 0]
        scaled["_y_raw"] = frame[TARGET].to_numpy(float)
        scaled["_close"] = frame["close"].to_numpy(float)
        scaled["_open"] = frame["open"].to_numpy(float)
        w = make_windows(scaled, features, "_y", window, horizon=0)
        pos = scaled.index.get_indexer(w.dates)
        target_date = next_day.to_numpy()[pos]
        blocks.append(pd.DataFrame({
            "ticker": ticker, "date": w.dates, "target_date": pd.DatetimeIndex(target_date), "y": w.y,
            "y_raw": scaled["_y_raw"].to_numpy()[pos], "close": scaled["_close"].to_numpy()[pos],
            "open": scaled["_open"].to_numpy()[pos]}).assign(_X=list(w.X)))
        t_scalers[ticker], f_scalers[ticker] = tsc, fsc
    allw = pd.concat(blocks, ignore_index=True)
    part = np.full(len(allw), "", dtype=object)
    for label, name_ in (("train", "fit"), ("valid", "val"), ("test", "test")):
        if label in split.ranges():
            part[split.mask(allw["date"], label, label_dates=allw["target_date"])] = name_
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
    """MAE, MSE, RMSE, MAPE, R2 per ticker on one part, their mean over tickers ("mean"), and the
    metrics of all tickers pooled ("pooled"). Pooled R2 is inflated by the spread of price
    levels *between* tickers; the per-ticker mean is the honest summary."""
    m = ds.part == part
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
    m = ds.part == part
    return {"persistence (close)": ds.last_close[m], "persistence (open)": ds.last_open[m]}


def prediction_frame(ds: Dataset, pred_price: np.ndarray, part: str = "test", **labels) -> pd.DataFrame:
    """Per-sample predictions with their keys (for the results folder)."""
    m = ds.part == part
    frame = pd.DataFrame({"ticker": ds.ticker[m], "date": ds.date[m], "target_date": ds.target_date[m],
                          "y_true": ds.y_raw[m], "y_pred": pred_price})
    for k, v in labels.items():
        frame.insert(0, k, v)
    return frame


def _predictions_and_scores(ds: Dataset, price: np.ndarray, model: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test predictions in price units -> (prediction rows, per-ticker score rows), keyed alike."""
    keys = dict(experiment=ds.name, model=model, seed=seed)
    return prediction_frame(ds, price, **keys), score(ds, price).reset_index().assign(**keys)


# --------------------------------------------------------------------------- networks
def run_network(ds: Dataset, model: str, values: dict, seeds: list[int], epochs: int, patience: int = 5,
                batch_size: int = 32, without: tuple[str, ...] = (), label: str | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train ``model`` once per seed with fixed hyper-parameters; test predictions and metrics.

    Returns (predictions: one row per test sample and seed, metrics: one row per seed and
    ticker incl. the mean over tickers). The hybrid yields two rows per seed: the GBR's
    prediction (the model) and the network's own output ("w/o GBR"), from one training run.
    """
    from ..models import keras_nets

    Xf, yf = ds.arrays("fit")
    Xv, yv = ds.arrays("val")
    test = ds.part == "test"
    label = label or model
    preds, scores = [], []
    for seed in seeds:
        res = keras_nets.fit_predict(model, values, Xf, yf, Xv, yv, ds.X[test], seed=seed, epochs=epochs,
                                     batch_size=batch_size, patience=patience, without=without)
        outputs = {label: res.pred}
        if res.pred_gbr is not None:
            outputs = {label: res.pred_gbr, f"{label} w/o GBR": res.pred}
        for name, pred in outputs.items():
            p, sc = _predictions_and_scores(ds, ds.to_price(pred, test), name, seed)
            preds.append(p)
            scores.append(sc.assign(epochs=res.epochs))
    return pd.concat(preds, ignore_index=True), pd.concat(scores, ignore_index=True)


def baseline_scores(ds: Dataset, predictions: dict[str, np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions and metrics of deterministic baselines (no seeds) on the test part."""
    preds, scores = [], []
    for name, price in predictions.items():
        p, sc = _predictions_and_scores(ds, price, name, seed=-1)
        preds.append(p)
        scores.append(sc)
    return pd.concat(preds, ignore_index=True), pd.concat(scores, ignore_index=True)


def summarise(scores: pd.DataFrame, metrics_: tuple[str, ...] = ("MAE", "MSE", "RMSE", "MAPE", "R2"),
              digits: int = 4) -> pd.DataFrame:
    """Mean ± std over seeds of the ticker-averaged metrics, one row per (experiment, model)."""
    mean_rows = scores[scores["ticker"] == "mean"]
    table = metrics.mean_std(mean_rows[["experiment", "model", "seed", *metrics_]], by=["experiment", "model"])
    return metrics.format_mean_std(table, list(metrics_), digits).set_index(["experiment", "model"])


def skill(scores: pd.DataFrame, reference: str = "persistence (close)") -> pd.DataFrame:
    """MSE skill against the persistence forecast, per experiment and model: 1 - MSE / MSE_ref.

    Positive: the model beats persistence; negative: it does worse. Mean over seeds of the
    ticker-averaged MSE.
    """
    mean_rows = scores[scores["ticker"] == "mean"]
    mse = mean_rows.groupby(["experiment", "model"], sort=False)["MSE"].mean()
    ref = mse.xs(reference, level="model")
    out = 1 - mse / ref.reindex(mse.index.get_level_values("experiment")).to_numpy()
    return out.rename("MSE skill vs persistence").to_frame()


def sentiment_effect(scores: pd.DataFrame, with_: str = "sentiment", without: str = "numeric",
                     metrics_: tuple[str, ...] = ("MAE", "R2")) -> pd.DataFrame:
    """What the sentiment column changes, per model: metric(with) - metric(without), paired by seed.

    Both experiments run on the same dates, so the difference is the sentiment feature's
    effect alone (plus training noise, which the std over seeds shows).
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


def per_ticker(scores: pd.DataFrame, experiment: str, metric: str = "MAE") -> pd.DataFrame:
    """``metric`` per model (rows) and ticker (columns), mean over seeds, for one experiment."""
    rows = scores[(scores["experiment"] == experiment) & ~scores["ticker"].isin(["pooled"])]
    return rows.pivot_table(index="model", columns="ticker", values=metric, aggfunc="mean", sort=False)


# --------------------------------------------------------------------------- ARIMA
def arima_runs(table: pd.DataFrame, ds: Dataset, orders=arima.PAPER_GRID) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ARIMA on each ticker's open series, orders chosen on validation (honest) or on test (the paper).

    Returns (predictions for the test samples of ``ds`` per variant, the order table).
    Variants: ``one_step/valid`` (honest), ``one_step/test`` and ``multi_step/test`` (leakage:
    the order is the one that scores best on the test set, as in the paper).
    """
    split = ds.split
    fit_end = split.train[1]
    train_end = split.valid[1] if split.valid else split.train[1]
    preds, orders_rows = [], []
    test_mask = ds.part == "test"
    for ticker in sorted(ds.target_scalers):
        opens = table.loc[ticker, "open"]
        opens = opens[(opens.index >= split.train[0]) & (opens.index <= split.test[1])]
        y_fit = opens[opens.index <= fit_end].to_numpy(float)
        y_val = opens[(opens.index > fit_end) & (opens.index <= train_end)].to_numpy(float)
        y_train = opens[opens.index <= train_end].to_numpy(float)
        after = opens[opens.index > train_end]
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
    m = ds.part == part
    keys = pd.MultiIndex.from_arrays([ds.ticker[m], ds.target_date[m]])
    return frame.set_index(["ticker", "target_date"])["y_pred"].reindex(keys).to_numpy(float)


__all__ = [
    "Dataset", "MACRO_FEATURES", "PAPER_ABLATION", "PAPER_RESULTS", "PAPER_TICKERS", "PRICE_FEATURES", "TARGET",
    "add_text_features", "align", "arima_runs", "baseline_scores", "daily_table", "make_dataset",
    "per_ticker", "persistence_predictions", "prediction_frame", "run_network", "score", "sentiment_effect", "skill",
    "summarise", "tweet_items", "tweet_span",
]
