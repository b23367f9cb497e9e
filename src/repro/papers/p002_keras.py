"""Paper 002 on the price-forecast protocol: its daily table, Keras models, side studies and tables.

The paper ("Artificial Intelligence in Stock Market Prediction: A Deep Learning
Perspective") predicts the next day's opening price of four stocks from a 5-day window of
prices, six yearly World Bank indicators, a monthly Google Trends score and a weekly
tweet-sentiment score. This module builds that table from StockNet, the World Bank and
scored tweets ([002] section 3), and runs the section-4 protocol without look-ahead:

* every feature of day t is known at the close of day t (tweets are assigned to the
  close at which they are known; the macro value of year Y is the one published for Y-1
  unless ``macro_lag_years=0``; the attention score uses trailing counts);
* the split is chronological (80/20 by date), the validation part is carved from the end
  of the training part, and samples whose target crosses a boundary are dropped;
* scalers are fitted per ticker on training rows only.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from ..config import ParameterError, override, param
from ..data import stocknet, wdi
from ..features.text import calendar_week_mean, cap_per_day, daily_totals, trailing_count, trailing_mean
from ..models import keras_nets
from ..protocols import price_forecast as pf
from . import tables as _tables

NOTEBOOK = "01_keras_baselines"
PAPER = "Paper 002 (Keras deep learning)"
PAPER_TICKERS = ("AAPL", "AMZN", "GOOG", "MSFT")
#: The paper's price columns but ``adj_close``: Yahoo's adjusted close is rescaled at download time for every
#: later dividend, so a row's value depends on what happened after it (and equals ``close`` for GOOG and AMZN).
PRICE_FEATURES = ["open", "high", "low", "close", "volume"]
MACRO_FEATURES = list(wdi.INDICATORS)
TARGET = "next_open"

#: The experiments: which columns each sees (all on the dates with tweets but ``numeric_full``).
FEATURE_SETS = {
    "numeric": PRICE_FEATURES + MACRO_FEATURES + ["trend"],
    "sentiment": PRICE_FEATURES + MACRO_FEATURES + ["trend", "weekly_sentiment_score", "sentiment_known"],
    "numeric_full": PRICE_FEATURES + MACRO_FEATURES,
}
#: Experiments that need tweets (their period is the tweets' and they use the tweet-count attention score).
TEXT_EXPERIMENTS = ("numeric", "sentiment")
#: Protocol variants of the BiLSTM (paper's hyper-parameters): what the paper's order of operations is worth.
PROTOCOL_VARIANTS = {"scaler_fit_all": dict(scaler_fit="all"), "return_target": dict(target="return")}
#: Our model names for the paper's rows.
PAPER_NAMES = {"ARIMA": "ARIMA multi_step/test", "BiLSTM": "bilstm", "CNN": "cnn", "Transformer": "transformer",
               "BERT-inspired": "bert", "Hybrid": "hybrid"}
PAPER_SETTINGS = {"numeric": "numeric", "with sentiment": "sentiment", "both": "sentiment"}
#: The sentiment experiment fitted with the hyper-parameters tuned without sentiment (the paired comparison).
SAME_HP = "sentiment, numeric's hyper-parameters"
LEAKY_WEEK, TRAILING = "sentiment, calendar week (leaks)", "sentiment, trailing days"


@dataclass(frozen=True)
class Config(pf.Config):
    """The chapter's parameters: ours (the ``book`` profile) beside the paper's (section 4)."""

    notebook: ClassVar[str] = NOTEBOOK

    tickers: list[str] = override(pf.Config, "tickers", list(PAPER_TICKERS), paper=list(PAPER_TICKERS),
                                  help="StockNet tickers, pooled (FB has raw tweets too)")
    window: int = override(pf.Config, "window", 5, paper=5)
    experiments: list[str] = param(["numeric", "sentiment"], "feature sets (numeric_full: 2012-2017 without "
                                   "tweets)", choices=FEATURE_SETS)
    models: list[str] = param(list(keras_nets.MODELS), "Keras networks", choices=keras_nets.MODELS)
    trials: int = param(2, "Keras Tuner RandomSearch trials per model and experiment", paper=10, minimum=1)
    tuner_seed: int = param(0, "seed of the tuner and of the sentiment scorer's training split")
    sentiment_backend: str = param("auto", "auto (best of minilm / vader on held-out labels) | minilm | vader | hf",
                                   choices=("auto", "minilm", "vader", "hf"))
    sentiment_model: str | None = param(None, "a Hugging Face id or folder of a sentiment classifier",
                                        paper="yiyanghkust/finbert-tone")
    max_tweets_per_day: int | None = param(2, "tweets scored per ticker and day (None: all); every tweet counts "
                                           "for attention", paper=None, minimum=1)
    sentiment_window: int = param(5, "trading days in the trailing 'weekly' sentiment mean", minimum=1)
    trend_window: int = param(21, "trading days of tweet counts behind the attention score", minimum=1)
    macro_lag_years: int = param(1, "1: a row of year Y uses year Y-1's indicators (published by then)", paper=0,
                                 minimum=0)
    arima_max_order: int = param(3, "ARIMA grid p, d, q in 1..arima_max_order", paper=3, minimum=1)
    ablation: bool = param(True, "the hybrid without CNN / BiLSTM / attention / GBR (paper Table 2)")
    ablation_seeds: list[int] = param([0], "seeds of the hybrid ablation", paper="not stated")
    same_hp_sentiment: bool = param(True, "fit the sentiment experiment with the numeric experiment's "
                                    "hyper-parameters too (the paired effect of the feature alone)")
    calendar_week: bool = param(True, "the BiLSTM (paper's hyper-parameters) with the paper's calendar-week "
                                "sentiment, which includes days after t, beside the trailing one")
    converged_models: list[str] = param(["bilstm"], "networks (of models) also trained until the validation loss "
                                        "stops improving, on returns and on levels", choices=keras_nets.MODELS)
    converged_tickers: list[str] | None = param(None, "tickers of the converged check, fitted together (None: "
                                                "the first of tickers)")
    converged_epochs: int = param(300, "epochs at most of the converged check", minimum=1)
    converged_patience: int = param(10, "early-stopping patience of the converged check", minimum=1)
    protocol_variants: list[str] = param(list(PROTOCOL_VARIANTS), "the BiLSTM (paper's hyper-parameters) under "
                                         "other protocols", choices=PROTOCOL_VARIANTS)
    window_sweep: list[int] = param([], "e.g. [3, 5, 10, 20, 30, 50]: the BiLSTM per window size")
    plot_ticker: str | None = param(None, "ticker of the forecast plots (None: the first of tickers)")

    def check(self) -> None:
        if self.plot_ticker is not None and self.plot_ticker not in self.tickers:
            raise ParameterError(f"plot_ticker {self.plot_ticker!r} is not one of tickers {self.tickers}")
        if not self.experiments:
            raise ParameterError("experiments is empty: choose from " + ", ".join(FEATURE_SETS))
        outside = [t for t in self.converged_tickers or [] if t not in self.tickers]
        if self.converged_models and outside:
            raise ParameterError(f"converged_tickers {outside} are not among tickers {self.tickers}")

    @property
    def shown_ticker(self) -> str:
        return self.plot_ticker or self.tickers[0]

    @property
    def text_tickers(self) -> list[str]:
        """The tickers with tweets upstream (GMRE has none)."""
        return [t for t in self.tickers if t in stocknet.tweet_tickers()]


def needs_text(cfg: Config) -> bool:
    return any(e in TEXT_EXPERIMENTS for e in cfg.experiments)


def resolve_text(cfg: Config) -> tuple[Config, list[str]]:
    """The config to run when some tickers have no tweets, with sentences that say what changed.

    Without any ticker with tweets the text experiments become ``numeric_full`` (prices and
    macro data over the whole price span); with some, the text experiments pool only those.
    """
    missing = [t for t in cfg.tickers if t not in cfg.text_tickers]
    text = [e for e in cfg.experiments if e in TEXT_EXPERIMENTS]
    if not missing or not text:
        return cfg, []
    if cfg.text_tickers:
        return cfg, [f"No tweets upstream for {', '.join(missing)}: the experiments that need them "
                     f"({', '.join(text)}) pool {', '.join(cfg.text_tickers)} only."]
    kept = list(dict.fromkeys([e for e in cfg.experiments if e not in TEXT_EXPERIMENTS] or ["numeric_full"]))
    return dataclasses.replace(cfg, experiments=kept), [
        f"No tweets upstream for {', '.join(missing)}: the experiments that need them ({', '.join(text)}) are "
        f"replaced by {', '.join(kept)} (prices and macro data over the whole price span)."]


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


def coverage(table: pd.DataFrame) -> pd.DataFrame:
    out = table.reset_index().groupby("ticker")["date"].agg(["min", "max", "size"])
    out.columns = ["first day", "last day", "days"]
    return out


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
    scored = cap_per_day(items, max_per_day, items["date"])
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
    known = scored_count.rolling(sentiment_window, min_periods=1).sum() > 0  # "no tweets" is not "neutral"
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
    out["sentiment_known"] = stacked(known.astype(float)).reindex(out.index).to_numpy()
    out["tweets_known"] = stacked(count).reindex(out.index).to_numpy()
    return out


def tweet_span(items: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The dates on which every ticker has tweets (the with-sentiment experiments' period)."""
    spans = items.groupby("ticker")["date"].agg(["min", "max"])
    return spans["min"].max(), spans["max"].min()


def periods(cfg: Config, items: pd.DataFrame | None) -> dict[str, tuple]:
    """Each experiment's date range: the days every ticker has tweets (within start..end), or start..end."""
    if items is None:
        return {"numeric_full": (cfg.start, cfg.end)}
    first, last = tweet_span(items)
    first = max(first, pd.Timestamp(cfg.start)) if cfg.start else first
    last = min(last, pd.Timestamp(cfg.end)) if cfg.end else last
    return {"numeric": (first, last), "sentiment": (first, last), "numeric_full": (cfg.start, cfg.end)}


def datasets(cfg: Config, table: pd.DataFrame, period: dict[str, tuple]) -> dict[str, pf.Dataset]:
    """The windows of each experiment, split 80/20 by date with validation from the end of training."""
    text_rows = table.index.get_level_values("ticker").isin(cfg.text_tickers)
    return {name: pf.make_dataset(name, table[text_rows] if name in TEXT_EXPERIMENTS else table,
                                  FEATURE_SETS[name], TARGET, cfg.window, *period[name], target=cfg.target)
            for name in cfg.experiments}


# --------------------------------------------------------------------------- baselines and networks
def baselines(cfg: Config, table: pd.DataFrame, data: dict[str, pf.Dataset], collector: pf.Collector
              ) -> pd.DataFrame:
    """Persistence on every experiment and ARIMA on the first [002 eq. 1]; returns ARIMA's orders."""
    for ds in data.values():
        collector.add(*pf.baseline_scores(ds, pf.persistence_predictions(ds)))
    base = data[cfg.experiments[0]]
    orders = list(itertools.product(range(1, cfg.arima_max_order + 1), repeat=3))
    arima_preds, arima_orders = pf.arima_runs(table, base, "open", orders)
    named = {f"ARIMA {v}": pf.align(base, g) for v, g in arima_preds.groupby("variant")}
    collector.add(*pf.baseline_scores(base, named))
    return arima_orders


def tuner(cfg: Config):
    """Keras Tuner RandomSearch on a dataset's validation part, as :func:`pf.tune_all` wants it."""
    def tune(model: str, ds: pf.Dataset):
        (Xf, yf), (Xv, yv) = ds.arrays("train"), ds.arrays("valid")
        res = keras_nets.tune(model, Xf, yf, Xv, yv, trials=cfg.trials, epochs=cfg.max_epochs, seed=cfg.tuner_seed,
                              batch_size=cfg.batch_size, patience=cfg.patience)
        return res.best, res.trials
    return tune


def keras_fit(model: str, values: dict, cfg: Config, without: tuple[str, ...] = (), label: str | None = None
              ) -> pf.Fit:
    """One Keras network with fixed hyper-parameters, as a :class:`pf.Fit`.

    The hybrid yields two outputs from one training run: the GBR's prediction (the model,
    [002 eq. 12]) and the network's own output ("w/o GBR").
    """
    label = label or model

    def fit(ds: pf.Dataset, seed: int) -> pf.Fitted:
        (Xf, yf), (Xv, yv) = ds.arrays("train"), ds.arrays("valid")
        res = keras_nets.fit_predict(model, values, Xf, yf, Xv, yv, ds.X[ds.mask("test")], seed=seed,
                                     epochs=cfg.max_epochs, batch_size=cfg.batch_size, patience=cfg.patience,
                                     without=without)
        out = {label: res.pred} if res.pred_gbr is None else {label: res.pred_gbr, f"{label} w/o GBR": res.pred}
        return pf.Fitted(out, res.epochs)
    return fit


def final_fits(cfg: Config, data: dict[str, pf.Dataset], tuned: pf.Tuned, collector: pf.Collector) -> None:
    """Every model with its tuned hyper-parameters, once per seed, on every experiment."""
    for name, model in itertools.product(cfg.experiments, cfg.models):
        fit = keras_fit(model, tuned.best[(name, model)], cfg)
        collector.add(*pf.fit_seeds(data[name], fit, cfg.seeds))


def best_hyperparameters(tuned: pf.Tuned) -> dict[str, dict]:
    """Ours per "experiment/model" and the paper's per "paper/model" (for the results folder)."""
    return {f"{e}/{m}": v for (e, m), v in tuned.best.items()} | {
        f"paper/{m}": v for m, v in keras_nets.PAPER_BEST.items()}


def hyperparameter_table(cfg: Config, tuned: pf.Tuned) -> pd.DataFrame:
    """The paper's reported best hyper-parameters beside ours, per model and experiment."""
    fmt = lambda values: ", ".join(f"{k}={v}" for k, v in values.items())  # noqa: E731
    rows = [{"model": keras_nets.TITLES[m], "paper": fmt(keras_nets.PAPER_BEST[m]),
             **{f"ours ({e})": fmt(tuned.best[(e, m)]) for e in cfg.experiments}} for m in cfg.models]
    return pd.DataFrame(rows).set_index("model")


# --------------------------------------------------------------------------- side studies
def hybrid_ablation(cfg: Config, data: dict[str, pf.Dataset], tuned: pf.Tuned, scores: pd.DataFrame,
                    collector: pf.Collector) -> pd.DataFrame | None:
    """The hybrid minus one part at a time ([002] Table 2); "w/o GBR" comes from the full hybrid's runs."""
    if not (cfg.ablation and "hybrid" in cfg.models):
        return None
    parts = []
    for name in cfg.experiments:
        for part in ("cnn", "bilstm", "attention"):
            fit = keras_fit("hybrid", tuned.best[(name, "hybrid")], cfg, without=(part,), label=f"hybrid w/o {part}")
            p, s = pf.fit_seeds(data[name], fit, cfg.ablation_seeds)
            keep_p, keep_s = ~p["model"].str.endswith("w/o GBR"), ~s["model"].str.endswith("w/o GBR")
            parts.append(collector.add(p[keep_p], s[keep_s], main=False))
    table = pd.concat([scores[scores["model"].str.startswith("hybrid")], *parts], ignore_index=True)
    return pf.summarise(table, ("MAE", "MSE", "MAPE", "R2"))


def protocol_variants(cfg: Config, table: pd.DataFrame, data: dict[str, pf.Dataset], period: dict[str, tuple],
                      scores: pd.DataFrame, collector: pf.Collector) -> tuple[pd.DataFrame, str] | None:
    """The BiLSTM at the paper's hyper-parameters under the honest protocol and each variant of
    :data:`PROTOCOL_VARIANTS`, on the first experiment; (table, a sentence with the R² of each)."""
    if not (cfg.protocol_variants and "bilstm" in cfg.models):
        return None
    base, parts = cfg.experiments[0], []
    fit = keras_fit("bilstm", keras_nets.PAPER_BEST["bilstm"], cfg, label="bilstm (paper hp)")
    for variant in cfg.protocol_variants:
        ds = pf.make_dataset(f"{base}/{variant}", table, FEATURE_SETS[base], TARGET, cfg.window, *period[base],
                             **{"target": cfg.target, **PROTOCOL_VARIANTS[variant]})
        parts.append(collector.add(*pf.fit_seeds(ds, fit, cfg.seeds), main=False))
    parts.append(collector.add(*pf.fit_seeds(data[base], fit, cfg.seeds), main=False))
    rows = pd.concat([*parts, scores[(scores["model"] == pf.PERSISTENCE) & (scores["experiment"] == base)]],
                     ignore_index=True)
    means = rows[rows["ticker"] == "mean"]
    r2 = means[means["model"] == "bilstm (paper hp)"].groupby("experiment")["R2"].mean()
    said = [f"{n.split('/')[-1] if '/' in n else 'honest protocol'}: {v:.3f}" for n, v in r2.items()]
    persistence_r2 = means[means["model"] == pf.PERSISTENCE]["R2"].mean()
    sentence = ("Per-ticker R² of the BiLSTM (paper's hyper-parameters), mean over seeds -- " + "; ".join(said)
                + f". Persistence: {persistence_r2:.3f}.")
    return pf.summarise(rows, ("MAE", "MSE", "MAPE", "R2")), sentence


def same_hp_sentiment(cfg: Config, data: dict[str, pf.Dataset], tuned: pf.Tuned, collector: pf.Collector
                      ) -> pd.DataFrame | None:
    """Every network on the sentiment experiment with the hyper-parameters tuned on ``numeric``, same seeds and
    days: with and without the column, only the column differs. Per ticker, Diebold-Mariano (:data:`SAME_HP`
    against ``numeric``; "better": smaller squared error with sentiment)."""
    from .. import report

    if not (cfg.same_hp_sentiment and {"numeric", "sentiment"} <= set(cfg.experiments)):
        return None
    ds = dataclasses.replace(data["sentiment"], name=SAME_HP)
    collector.add(*pf.baseline_scores(ds, pf.persistence_predictions(ds)), main=False)
    for model in cfg.models:
        collector.add(*pf.fit_seeds(ds, keras_fit(model, tuned.best[("numeric", model)], cfg), cfg.seeds),
                      main=False)
    return report.variant_verdict(collector.predictions(), SAME_HP, "numeric")


def calendar_week_variant(cfg: Config, table: pd.DataFrame, items: pd.DataFrame, data: dict[str, pf.Dataset],
                          period: dict[str, tuple], collector: pf.Collector) -> pd.DataFrame | None:
    """The BiLSTM (paper's hyper-parameters) with the paper's calendar-week sentiment (which averages tweets of
    days after t) against the trailing one, same seeds and days: what the leak is worth, per ticker."""
    from .. import report

    if not (cfg.calendar_week and "sentiment" in cfg.experiments and "bilstm" in cfg.models):
        return None
    leaky = add_text_features(table, items, cfg.sentiment_window, cfg.trend_window, weekly="calendar_week")
    leaky_ds = datasets(dataclasses.replace(cfg, experiments=["sentiment"]), leaky, period)["sentiment"]
    fit = keras_fit("bilstm", keras_nets.PAPER_BEST["bilstm"], cfg, label="bilstm (paper hp)")
    for ds in (dataclasses.replace(leaky_ds, name=LEAKY_WEEK), dataclasses.replace(data["sentiment"], name=TRAILING)):
        collector.add(*pf.fit_seeds(ds, fit, cfg.seeds), main=False)
    return report.variant_verdict(collector.predictions(), LEAKY_WEEK, TRAILING)


def converged_check(cfg: Config, table: pd.DataFrame, period: dict[str, tuple], tuned: pf.Tuned,
                    collector: pf.Collector) -> pd.DataFrame | None:
    """Each of ``converged_models`` (tuned hyper-parameters of the first experiment) on ``converged_tickers``,
    trained with the run's epoch budget and until the validation loss stops improving (``converged_epochs``,
    ``converged_patience``), on returns and on levels; every one against persistence per ticker
    (Diebold-Mariano), with the epochs it ran."""
    from .. import report

    models = [m for m in cfg.converged_models if m in cfg.models]  # tuned in this run
    if not models:
        return None
    base = cfg.experiments[0]
    longer = dataclasses.replace(cfg, max_epochs=cfg.converged_epochs, patience=cfg.converged_patience)
    rows = table[table.index.get_level_values("ticker").isin(cfg.converged_tickers or cfg.tickers[:1])]
    epochs, labels = [], [pf.PERSISTENCE]
    for target in ("return", "level"):
        ds = pf.make_dataset(f"converged check, {target} target", rows, FEATURE_SETS[base], TARGET, cfg.window,
                             *period[base], target=target)
        collector.add(*pf.baseline_scores(ds, pf.persistence_predictions(ds)), main=False)
        for model in models:
            for run_cfg, how in ((cfg, f"{cfg.max_epochs} epochs at most"), (longer, "converged")):
                labels.append(f"{model} ({how})")
                fit = keras_fit(model, tuned.best[(base, model)], run_cfg, label=labels[-1])
                scores = collector.add(*pf.fit_seeds(ds, fit, cfg.seeds), main=False)
                epochs.append(scores.groupby(["experiment", "model"])["epochs"].mean())
    preds = collector.predictions()
    mine = preds["experiment"].str.startswith("converged check") & preds["model"].isin(labels)
    verdict = report.point_verdict(preds[mine], pf.PERSISTENCE)
    ran = pd.concat(epochs).rename("epochs (mean over seeds)")
    return verdict.join(ran, on=["experiment", "model"])


def converged_sentences(check: pd.DataFrame) -> list[str]:
    """Whether training longer lets a network tie or beat persistence, from :func:`converged_check`."""
    lines = []
    for (experiment, model), g in check.groupby(level=["experiment", "model"], sort=False):
        verdicts = ", ".join(f"{t}: skill {row['skill']:+.3f}, {row['verdict']}"
                             for (_, _, t), row in g.iterrows())
        lines.append(f"- {experiment}, **{model}** ({g['epochs (mean over seeds)'].iloc[0]:.0f} epochs on average): "
                     f"{verdicts}.")
    converged = check[check.index.get_level_values("model").str.endswith("(converged)")]
    words = converged["verdict"].str.split(" ").str[0]
    if len(converged) and (words != "worse").all():
        lines.append("- Trained until the validation loss stops improving, it ties or beats persistence in every "
                     "case: the budget explains the gap.")
    elif len(converged):
        still = sorted({e.split(", ")[1] for e in converged.index.get_level_values("experiment")[words == "worse"]})
        lines.append("- Trained until the validation loss stops improving, it still loses to persistence with the "
                     f"{' and the '.join(still)}: the budget does not explain the gap there.")
    return lines


def price_ranges(data: dict[str, pf.Dataset], experiment: str) -> pd.DataFrame:
    """Per ticker: the training part's range of the target price, the test part's, and the share of test
    targets outside the training range (which a level-trained network must extrapolate to)."""
    ds = data[experiment]
    rows = {}
    for ticker in sorted(set(ds.ticker)):
        train = ds.y_raw[(ds.ticker == ticker) & (ds.part == "train")]
        test = ds.y_raw[(ds.ticker == ticker) & (ds.part == "test")]
        rows[ticker] = {"train min": train.min(), "train max": train.max(), "test min": test.min(),
                        "test max": test.max(), "test outside train range": float(np.mean((test > train.max())
                                                                                         | (test < train.min())))}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("ticker")


def range_sentences(ranges: pd.DataFrame, skill_per_ticker: pd.DataFrame, experiment: str,
                    models: list[str]) -> list[str]:
    """Which tickers' test prices leave the training range, and whether the networks lose to persistence on
    the tickers whose prices stay inside it (then extrapolation does not explain the loss)."""
    out = ranges["test outside train range"]
    leave = [f"{t} ({v:.0%} of test days)" for t, v in out.items() if v > 0]
    inside = [t for t, v in out.items() if v == 0]
    lines = ["- Test prices outside the training range: " + (", ".join(leave) if leave else "none") + "; inside it: "
             + (", ".join(inside) if inside else "none") + "."]
    if inside:
        sk = skill_per_ticker.loc[experiment].reindex(index=models, columns=inside)
        lo, hi = np.nanmin(sk.to_numpy()), np.nanmax(sk.to_numpy())
        verdict = ("so extrapolation does not explain their loss" if hi < 0 else
                   "so on those tickers some network does as well as persistence or better")
        lines.append(f"- On {', '.join(inside)}, whose test prices stay inside the training range, the networks' MSE "
                     f"skill against persistence ranges from {lo:+.3f} to {hi:+.3f} ({experiment}), {verdict}.")
    return lines


def window_sweep(cfg: Config, table: pd.DataFrame, period: dict[str, tuple], collector: pf.Collector
                 ) -> pd.DataFrame | None:
    """The BiLSTM (paper's hyper-parameters) on the first experiment for each window size of ``window_sweep``."""
    if not (cfg.window_sweep and "bilstm" in cfg.models):
        return None
    base, parts = cfg.experiments[0], []
    for w in cfg.window_sweep:
        ds = pf.make_dataset(f"window {w}", table, FEATURE_SETS[base], TARGET, w, *period[base], target=cfg.target)
        p, s = pf.fit_seeds(ds, keras_fit("bilstm", keras_nets.PAPER_BEST["bilstm"], cfg), cfg.seeds)
        parts.append(collector.add(p, s, main=False).assign(window=w))
    return pf.summarise(pd.concat(parts), ("MAE", "R2"))


# --------------------------------------------------------------------------- beside the paper
def paper_tables() -> dict[str, pd.DataFrame]:
    return _tables(__name__)


def _experiment_for(setting: str, experiments: list[str]) -> str:
    exp = PAPER_SETTINGS[setting]
    return exp if exp in experiments else experiments[0]


def paper_comparison(scores: pd.DataFrame, experiments: list[str]) -> pd.DataFrame:
    """The paper's pooled MAE and R² beside ours (pooled too, for this comparison only) and persistence's."""
    pooled = scores[scores["ticker"] == "pooled"].groupby(["experiment", "model"], sort=False)[["MAE", "R2"]].mean()
    rows = []
    for model, r in paper_tables()["results"].iterrows():
        exp = _experiment_for(r["setting"], experiments)
        key = (exp, PAPER_NAMES[model])
        mine = pooled.loc[key] if key in pooled.index else pd.Series({"MAE": np.nan, "R2": np.nan})
        rows.append({"model": model, "paper setting": r["setting"], "paper MAE": r["MAE"], "paper R2": r["R2"],
                     "our experiment": exp, "our pooled MAE": mine["MAE"], "our pooled R2": mine["R2"],
                     "paper note": r["note"]})
    persist = pooled.loc[(experiments[0], pf.PERSISTENCE)]
    rows.append({"model": "persistence (not in the paper)", "paper setting": "", "our experiment": experiments[0],
                 "our pooled MAE": persist["MAE"], "our pooled R2": persist["R2"], "paper note": "today's close"})
    return pd.DataFrame(rows).set_index("model")


def model_lines(scores: pd.DataFrame, experiments: list[str]) -> list[str]:
    """One markdown line per paper row: the paper's numbers, ours (per-ticker means, mean ± std over seeds for
    MAPE) and persistence's."""
    means = scores[scores["ticker"] == "mean"]
    lines = []
    for title, paper in paper_tables()["results"].iterrows():
        exp = _experiment_for(paper["setting"], experiments)
        r = means[(means["experiment"] == exp) & (means["model"] == PAPER_NAMES[title])]
        p = means[(means["experiment"] == exp) & (means["model"] == pf.PERSISTENCE)]
        if r.empty:
            lines.append(f"- **{title}**: not run in this profile.")
            continue
        paper_txt = ", ".join(f"{k} {paper[k]:.4g}" for k in ("MAE", "R2") if pd.notna(paper[k]))
        spread = f" ± {r['MAPE'].std(ddof=1):.4f}" if len(r) > 1 else ""
        lines.append(f"- **{title}** -- paper: {paper_txt} ({paper['setting']}). Ours ({exp}, {len(r)} seed(s)): "
                     f"MAPE {r['MAPE'].mean():.4f}{spread}, MAE {r['MAE'].mean():.2f}, R² {r['R2'].mean():.3f}; "
                     f"persistence: MAPE {p['MAPE'].mean():.4f}, MAE {p['MAE'].mean():.2f}, R² {p['R2'].mean():.3f}.")
    return lines


# --------------------------------------------------------------------------- verdict
def verdict(predictions: pd.DataFrame, cfg: Config) -> tuple[pd.DataFrame, list[str]]:
    """Every network against persistence per ticker (Diebold-Mariano, seed check), and what the
    sentiment column changes (the same network and seeds with and without it, same days).

    Returns (the per-ticker table against persistence, markdown lines).
    """
    from .. import report

    main = predictions[predictions["experiment"].isin(cfg.experiments)
                       & predictions["model"].isin([*cfg.models, pf.PERSISTENCE])]
    table = report.point_verdict(main, pf.PERSISTENCE)
    summary = report.point_summary(table)
    beating = [f"{m} ({e})" for (e, m), row in summary.iterrows() if row["better"] > 0]
    lines = ["Against persistence (today's close as tomorrow's open), per ticker:", "",
             *report.point_sentences(summary, "persistence"), "",
             "- Networks that beat persistence on at least one ticker: "
             + (", ".join(beating) if beating else "none") + "."]
    if {"numeric", "sentiment"} <= set(cfg.experiments):
        paired = SAME_HP in set(predictions["experiment"])
        with_ = SAME_HP if paired else "sentiment"
        effect = report.variant_verdict(predictions[predictions["model"].isin(cfg.models)], with_, "numeric")
        changed = effect[effect["verdict"] != "indistinguishable"]
        how = ("same network, hyper-parameters, seeds and days" if paired else
               "same network, seeds and days, but hyper-parameters tuned separately")
        lines.append(f"- With the sentiment column against without ({how}), the squared error differs on "
                     f"{len(changed)} of {len(effect)} (network, ticker) pairs"
                     + (": " + ", ".join(f"{m} on {t} ({v})" for (m, t), v in changed["verdict"].items())
                        if len(changed) else "") + ".")
    return table, lines


#: The headline claims the book's overview checks: (paper's model, metric column, label), section 5's numbers.
HEADLINES = (("BiLSTM", "R2", "R²"), ("CNN", "MAE", "MAE (dollars)"))


def headlines(res) -> list:
    """The overview's rows (:mod:`repro.overview`): section 5's pooled R² and MAE beside ours and persistence's,
    with the per-ticker Diebold-Mariano verdict against persistence. Models not run are left out."""
    from .. import overview

    experiments = res.params["experiments"]
    out = []
    for title, column, label in HEADLINES:
        paper = paper_tables()["results"].loc[title]
        model = PAPER_NAMES[title]
        if not res.ran("models", model):
            continue
        exp = _experiment_for(paper["setting"], experiments)
        ours = res.rows("metrics.csv", f"{model}'s pooled {column}", experiment=exp, model=model, ticker="pooled")
        base = res.rows("metrics.csv", f"persistence's pooled {column}", experiment=exp, model=pf.PERSISTENCE,
                        ticker="pooled")
        preds = res.table("predictions.parquet")
        preds = preds[preds["experiment"] == exp]
        tests = {t: overview.point_test(preds, model, pf.PERSISTENCE, t) for t in res.params["tickers"]}
        word, words = overview.across_tickers(tests, "persistence")
        mean, std, n = overview.seed_stats(ours.groupby("seed")[column].mean())
        out.append(overview.Headline(
            claim=f"{title} ({paper['setting']}): {column.replace('R2', 'R²')} {paper[column]:.4f}",
            metric=f"{label}, pooled over {len(res.params['tickers'])} ticker(s) (paper: 4); {exp} features",
            paper_value=float(paper[column]), ours=mean, ours_std=std, seeds=n,
            baseline="persistence", baseline_value=float(base[column].mean()), vs_baseline=word,
            verdict=words[0].upper() + words[1:] + ".", section="Beside the paper",
            higher_is_better=column == "R2"))
    return out


__all__ = [
    "FEATURE_SETS", "HEADLINES", "LEAKY_WEEK", "MACRO_FEATURES", "NOTEBOOK", "PAPER", "PAPER_TICKERS",
    "PRICE_FEATURES", "PROTOCOL_VARIANTS", "SAME_HP", "TARGET", "TEXT_EXPERIMENTS", "TRAILING", "Config",
    "add_text_features", "baselines", "best_hyperparameters", "calendar_week_variant", "converged_check",
    "converged_sentences", "coverage", "daily_table", "datasets", "final_fits", "headlines", "hybrid_ablation",
    "hyperparameter_table", "keras_fit", "model_lines", "needs_text", "paper_comparison", "paper_tables", "periods",
    "price_ranges", "protocol_variants", "range_sentences", "resolve_text", "same_hp_sentiment", "tuner",
    "tweet_items", "tweet_span", "verdict", "window_sweep",
]
