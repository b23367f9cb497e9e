"""Paper 001 on the price-forecast protocol: a Conv-LSTM, weighted news/tweet sentiment and a T5 on top.

"A Hierarchical conv-LSTM and LLM Integrated Model for Holistic Stock Forecasting"
(Chakraborty & Basu) forecasts the next close of AAPL and GOOG in two levels:

1. a Conv-LSTM on z-scored daily prices over a window whose length an adaptive search
   picks ([001 VI-A], [001 VI-B]; :mod:`repro.models.convlstm`, :mod:`repro.models.window_search`);
2. a T5 fine-tuned on texts "LSTM prediction <p> and sentiment score <s>" -> "actual target
   <y>", where s is the day's reputation-weighted mean sentiment of news articles
   ([001 VI-E], [001 VI-G]; :mod:`repro.models.t5_numbers`).

This module builds both levels on StockNet prices, Reuters headlines and StockNet tweets
without look-ahead: a text counts for the first close after it is known (a Reuters story
carries a date but no time, so by default it counts for the next trading day); the level-1
network predicts the next return and the price is rebuilt from it (the paper's level
formulation is the labelled variant ``level (paper)``); scalers see the training part
only; level 2 is trained on the training part's level-1 forecasts and stopped on the
validation part, where level 1 was not fitted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from .. import metrics
from ..backtest import long_flat
from ..config import ParameterError, override, param
from ..data import DateRangeError, reuters, stocknet
from ..features.text import (
    US_TZ,
    cap_per_day,
    date_only_timestamps,
    fill_textless_days,
    follower_weight,
    weighted_daily_score,
)
from ..models import convlstm, t5_numbers
from ..models.window_search import WindowSearch, adaptive_window_search
from ..protocols import price_forecast as pf
from . import tables as _tables

NOTEBOOK = "02_convlstm_t5"
PAPER = "Paper 001 (Conv-LSTM + T5)"
PAPER_TICKERS = ("AAPL", "GOOG")
#: The paper's columns but the adjusted close (rescaled at download time for later dividends, see chapter 01).
PRICE_FEATURES = ["open", "high", "low", "close", "volume"]
TARGET = "next_close"
SOURCES = ("news", "tweets")
RETURN, LEVEL = "return", "level (paper)"
CONV_LSTM, HYBRID, REGRESSION = "Conv-LSTM", "hybrid (Conv-LSTM + T5)", "regression (2 inputs)"
#: The control fitted where level 1's forecasts are out of sample, as they are on the test days.
REGRESSION_VALID = "regression (2 inputs, validation rows)"
SHUFFLED = ", sentiment shuffled"
MOMENTUM = "momentum"


@dataclass(frozen=True)
class Config(pf.Config):
    """The chapter's parameters: ours (the ``book`` profile) beside the paper's (sections VI-VII)."""

    notebook: ClassVar[str] = NOTEBOOK

    tickers: list[str] = override(pf.Config, "tickers", list(PAPER_TICKERS), paper=list(PAPER_TICKERS),
                                  help="StockNet tickers, each scored on its own (AAPL AMZN FB GOOG MSFT have "
                                       "raw tweets)")
    window: int = override(pf.Config, "window", 10, help="days per input window (the search's start when "
                           "window_search is on)")
    target: str = override(pf.Config, "target", "return", paper="level")
    max_epochs: int = override(pf.Config, "max_epochs", 60)
    patience: int = override(pf.Config, "patience", 8)
    sources: list[str] = param(list(SOURCES), "texts behind the daily sentiment: Reuters news, StockNet tweets",
                               choices=SOURCES, paper="news (News API)")
    news_weight: float = param(1.0, "reputation weight of a Reuters article (tweets: log(1 + followers) "
                               "scaled to 0..1)", minimum=0.0)
    weighting: str = param("reputation", "reputation: the weights above | equal: every text weighs 1",
                           choices=("reputation", "equal"), paper="reputation")
    news_timing: str = param("after_close", "a Reuters story has a date, no time: after_close counts it for the "
                             "next trading day (safe) | before_close for its own date (may look ahead)",
                             choices=("after_close", "before_close"))
    textless_days: str = param("carry", "a day without texts: carry the last score | zero | drop the day",
                               choices=("carry", "zero", "drop"))
    sentiment_backend: str = param("auto", "auto (best of minilm / vader on held-out labels) | minilm | vader | hf",
                                   choices=("auto", "minilm", "vader", "hf"))
    sentiment_model: str | None = param(None, "a Hugging Face id or folder of a sentiment classifier", paper="BERT")
    sentiment_rule: str = param("difference", "an hf classifier's score: P(pos) - P(neg) | paper: the top "
                                "label's probability, negated when negative", choices=("difference", "paper"),
                                paper="paper")
    max_tweets_per_day: int | None = param(5, "tweets scored per ticker and day (None: all)", minimum=1)
    window_search: bool = param(True, "the paper's adaptive window-length search on the validation part")
    window_step: int = param(8, "the search's first step dL (days)", minimum=1)
    window_eta: float = param(0.01, "eta: the least gain in validation performance (minus the MSE of the "
                              "scaled target) that moves the window", minimum=0.0)
    window_alpha: float = param(0.5, "alpha: the step's reduction factor", minimum=0.01)
    window_max: int = param(60, "longest window the search may try", minimum=2)
    filters: int = param(32, "Conv1D filters", minimum=1)
    kernel_size: int = param(3, "Conv1D kernel size (days)", minimum=1)
    hidden: int = param(32, "LSTM units", minimum=1)
    loss: str = param("huber", "level 1's loss: huber (the paper's recommendation) | mse", choices=("huber", "mse"),
                      paper="huber")
    t5_model: str | None = param(None, "a T5 id or folder to fine-tune (None: a small T5 trained from scratch with "
                                 "a tokenizer trained on the numbers)", paper="t5-small")
    t5_d_model: int = param(64, "width of the from-scratch T5", minimum=8)
    t5_layers: int = param(2, "encoder and decoder layers of the from-scratch T5", minimum=1)
    t5_epochs: int = param(60, "T5 epochs at most (early stopping on the validation part)", minimum=1)
    t5_patience: int = param(8, "T5 early-stopping patience (epochs)", minimum=1)
    digits: int = param(2, "decimals of the numbers in the T5 texts (returns in percent, prices in dollars)",
                        minimum=0)
    shuffle_ablation: bool = param(True, "level 2 again with the daily sentiment shuffled across days")
    level_variant: bool = param(True, "both levels again on price levels, the paper's formulation")
    level_seeds: list[int] = param([0], "seeds of the level variant")
    advising_cost: float = param(0.001, "cost of each change of position in the advising backtest (fraction)",
                                 minimum=0.0)
    plot_ticker: str | None = param(None, "ticker of the plots (None: the first of tickers)")

    def check(self) -> None:
        if self.plot_ticker is not None and self.plot_ticker not in self.tickers:
            raise ParameterError(f"plot_ticker {self.plot_ticker!r} is not one of tickers {self.tickers}")
        if not self.sources:
            raise ParameterError("sources is empty: choose news, tweets or both")
        if self.window_search and self.window > self.window_max:
            raise ParameterError(f"window={self.window} exceeds window_max={self.window_max}")

    @property
    def shown_ticker(self) -> str:
        return self.plot_ticker or self.tickers[0]

    def convlstm_settings(self) -> convlstm.ConvLSTMSettings:
        return convlstm.ConvLSTMSettings(filters=self.filters, kernel_size=self.kernel_size, hidden=self.hidden,
                                         loss=self.loss, batch_size=self.batch_size, max_epochs=self.max_epochs,
                                         patience=self.patience)

    def t5_settings(self) -> t5_numbers.T5Settings:
        return t5_numbers.T5Settings(d_model=self.t5_d_model, num_layers=self.t5_layers, max_epochs=self.t5_epochs,
                                     patience=self.t5_patience, digits=self.digits)


# --------------------------------------------------------------------------- data
def price_table(tickers: list[str]) -> pd.DataFrame:
    """One row per (ticker, date): open, high, low, close, volume and the target ``next_close``."""
    frames = []
    for t in tickers:
        px = stocknet.prices(t)[PRICE_FEATURES].copy()
        px[TARGET] = px["close"].shift(-1)
        frames.append(px.assign(ticker=t))
    table = pd.concat(frames).rename_axis("date").reset_index()
    return table.set_index(["ticker", "date"]).sort_index()


def text_items(cfg: Config) -> pd.DataFrame:
    """The texts of the chosen sources, one row each: timestamp, ticker, source, text, weight [001 VI-C].

    News: Reuters headline and lead sentence (title and body concatenated, as the paper
    does), stamped by :func:`date_only_timestamps` with ``news_timing``, weight
    ``news_weight``. Tweets: StockNet's raw tweets with follower counts where it has them
    (weight log(1 + followers) on 0..1), its preprocessed tokens otherwise (weight 1: no
    follower counts); at most ``max_tweets_per_day`` per ticker and day.
    """
    parts = []
    if "news" in cfg.sources:
        names = [t for t in cfg.tickers if t in reuters.tickers()]
        if names:
            news = reuters.headlines(names)
            stamp = date_only_timestamps(news["date"], cfg.news_timing).tz_convert("UTC")  # the tweets' zone
            parts.append(pd.DataFrame({"timestamp": stamp,
                                       "ticker": news["ticker"], "source": "news", "text": news["text"],
                                       "weight": cfg.news_weight}))
    if "tweets" in cfg.sources:
        raw = [t for t in cfg.tickers if t in stocknet.RAW_TWEET_TICKERS]
        pre = [t for t in cfg.tickers if t not in raw and t in stocknet.tweet_tickers()]
        if raw:
            tw = stocknet.tweets(raw, raw=True)
            parts.append(tw[["timestamp", "ticker", "text"]].assign(source="tweets",
                                                                      weight=follower_weight(tw["followers"])))
        if pre:
            parts.append(stocknet.tweets(pre)[["timestamp", "ticker", "text"]].assign(source="tweets", weight=1.0))
    if not parts:
        raise ParameterError(f"no texts for tickers {cfg.tickers} from sources {cfg.sources}: Reuters covers "
                             f"{', '.join(reuters.tickers())}; StockNet tweets cover all its tickers but GMRE")
    items = pd.concat(parts, ignore_index=True)
    tweets = (items["source"] == "tweets").to_numpy()
    keep = ~tweets
    tw = items[tweets]
    keep[tweets] = cap_per_day(tw, cfg.max_tweets_per_day, tw["timestamp"].dt.tz_convert(US_TZ).dt.date)
    items = items[keep]
    if cfg.weighting == "equal":
        items = items.assign(weight=1.0)
    return items.sort_values(["timestamp", "ticker"], kind="stable").reset_index(drop=True)


def in_period(items: pd.DataFrame, period: tuple, lead_days: int = 7) -> pd.DataFrame:
    """The texts a run uses: those of the period and the ``lead_days`` before it (for its first days)."""
    day = _ny_day(items)
    first, last = pd.Timestamp(period[0]) - pd.Timedelta(days=lead_days), pd.Timestamp(period[1])
    return items[(day >= first) & (day <= last)].reset_index(drop=True)


def score_texts(items: pd.DataFrame, scorer) -> pd.DataFrame:
    """Add each text's sentiment in [-1, 1] (identical texts are scored once)."""
    unique = items["text"].drop_duplicates()
    scores = pd.Series(scorer.score(unique.tolist()), index=unique.to_numpy())
    return items.assign(score=items["text"].map(scores).to_numpy(float))


def _ny_day(items: pd.DataFrame) -> pd.Series:
    return items["timestamp"].dt.tz_convert(US_TZ).dt.tz_localize(None).dt.normalize()


def text_spans(items: pd.DataFrame) -> pd.DataFrame:
    """First and last day and count of texts per (ticker, source)."""
    frame = pd.DataFrame({"ticker": items["ticker"], "source": items["source"], "day": _ny_day(items)})
    return frame.groupby(["ticker", "source"])["day"].agg(first="min", last="max", texts="size")


def resolve_period(cfg: Config, items: pd.DataFrame) -> tuple[pd.DataFrame, tuple[pd.Timestamp, pd.Timestamp],
                                                                 list[str]]:
    """The texts and the period of a run: the days every chosen source covers for every ticker, within
    start..end, with sentences that say what changed.

    A ticker whose sources do not overlap (Reuters has FB only from 2016-09, its tweets end in 2016-03)
    keeps the source with the most texts. No common day left is a :class:`DateRangeError` naming each span.
    """
    spans = text_spans(items)
    notes, drop = [], []
    for ticker, g in spans.groupby(level="ticker"):
        if len(g) > 1 and g["first"].max() > g["last"].min():
            keep = g["texts"].idxmax()[1]
            gone = [src for src in g.index.get_level_values("source") if src != keep]
            drop += [(ticker, src) for src in gone]
            when = ", ".join(f"{a:%Y-%m-%d}..{b:%Y-%m-%d}" for a, b in
                             g.loc[[(ticker, x) for x in gone], ["first", "last"]].itertuples(index=False))
            notes.append(f"{ticker}: its {', '.join(gone)} ({when}) do not overlap its {keep}; "
                         f"{ticker} uses {keep} only.")
    if drop:
        keys = pd.MultiIndex.from_frame(items[["ticker", "source"]])
        items = items[~keys.isin(drop)].reset_index(drop=True)
        spans = spans.drop(index=drop)
    first, last = spans["first"].max(), spans["last"].min()
    first = max(first, pd.Timestamp(cfg.start)) if cfg.start else first
    last = min(last, pd.Timestamp(cfg.end)) if cfg.end else last
    if first >= last:
        have = "; ".join(f"{t} {s}: {a:%Y-%m-%d}..{b:%Y-%m-%d}" for (t, s), (a, b, _) in spans.iterrows())
        raise DateRangeError(f"no day is covered by every chosen text source of every ticker within start={cfg.start}"
                             f" and end={cfg.end}. The texts cover {have}. Choose start/end inside one span, fewer "
                             "tickers, or other sources (sources=['news'] or ['tweets']).")
    return items, (first, last), notes


def daily_sentiment(cfg: Config, items: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Per (ticker, trading day): the weighted score of the texts known at that close, the texts counted,
    and the score after ``textless_days`` [001 VI-E.2]."""
    calendar = table.index.get_level_values("date").unique().sort_values()
    score, count = weighted_daily_score(items, calendar, cfg.tickers)
    filled = fill_textless_days(score, cfg.textless_days)
    stack = lambda f: f.stack(future_stack=True).reorder_levels([1, 0]).rename_axis(["ticker", "date"])  # noqa: E731
    out = pd.DataFrame({"raw_score": stack(score), "texts": stack(count), "sentiment": stack(filled)})
    return out.reindex(table.index)


def text_table(items: pd.DataFrame, daily: pd.DataFrame, period: tuple) -> pd.DataFrame:
    """Per ticker and source: texts in the period, and the trading days with and without any text."""
    inside = daily.loc[(slice(None), slice(*period)), :]
    day = items["timestamp"].dt.tz_convert(US_TZ).dt.tz_localize(None)
    sel = items[(day >= period[0]) & (day <= period[1] + pd.Timedelta(days=1))]
    counts = sel.groupby(["ticker", "source"]).size().unstack("source", fill_value=0)
    days = inside.groupby(level="ticker").agg(**{"trading days": ("texts", "size"),
                                                  "days without text": ("texts", lambda c: int((c == 0).sum()))})
    return counts.add_prefix("texts: ").join(days)


def dataset(cfg: Config, table: pd.DataFrame, period: tuple, window: int, target: str | None = None,
            name: str | None = None) -> pf.Dataset:
    """Windows of the price features over ``period``, split 64/16/20 by date (validation from training's end)."""
    target = target or cfg.target
    name = name or (RETURN if target == "return" else LEVEL)
    return pf.make_dataset(name, table, PRICE_FEATURES, TARGET, window, *period, train=0.8, valid=0.2,
                           target=target)


# --------------------------------------------------------------------------- level 1 and the window search
def fit_level1(cfg: Config, ds: pf.Dataset, seed: int, predict: dict[str, np.ndarray] | None = None
               ) -> convlstm.FitResult:
    (Xf, yf), (Xv, yv) = ds.arrays("train"), ds.arrays("valid")
    return convlstm.fit_predict(Xf, yf, Xv, yv, predict if predict is not None else {"all": ds.X},
                                cfg.convlstm_settings(), seed=seed)


def search_window(cfg: Config, table: pd.DataFrame, period: tuple) -> WindowSearch:
    """The paper's adaptive search [001 VI-A.2], P(L) = minus the validation MSE of level 1 (first seed)."""
    def performance(window: int) -> float:
        ds = dataset(cfg, table, period, window)
        return -fit_level1(cfg, ds, cfg.seeds[0], {}).valid_mse

    return adaptive_window_search(performance, start=cfg.window, step=cfg.window_step, eta=cfg.window_eta,
                                  alpha=cfg.window_alpha, min_window=1, max_window=cfg.window_max)


# --------------------------------------------------------------------------- level 2
def to_units(ds: pf.Dataset, price: np.ndarray) -> np.ndarray:
    """What the level-2 texts hold: the return from today's close in percent, or the price itself."""
    return 100.0 * (price / ds.last_close - 1.0) if ds.target == "return" else price


def from_units(ds: pf.Dataset, units: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return ds.last_close[mask] * (1.0 + units / 100.0) if ds.target == "return" else units


def sentiment_of(ds: pf.Dataset, daily: pd.DataFrame) -> np.ndarray:
    """The sentiment known at each sample's decision day (the time mapping of [001 VI-F])."""
    keys = pd.MultiIndex.from_arrays([ds.ticker, ds.date])
    return daily["sentiment"].reindex(keys).to_numpy(float)


def text_days(ds: pf.Dataset, daily: pd.DataFrame, policy: str) -> pf.Dataset:
    """The samples level 2 is trained and everything is scored on (all of them unless ``drop``)."""
    keep = np.isfinite(sentiment_of(ds, daily)) if policy == "drop" else np.ones(len(ds.y), bool)
    return ds.select(keep)


@dataclass
class Level2:
    """Test forecasts of one seed in price units, keyed by model name, and what the T5 did."""

    prices: dict[str, np.ndarray]
    t5_history: pd.DataFrame
    unparsed: dict[str, int]
    examples: pd.DataFrame


def _regression(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """The control: ordinary least squares on the same two inputs the T5 reads."""
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(x_train, y_train).predict(x_test)


def _t5(cfg: Config, texts: np.ndarray, targets: np.ndarray, parts: dict[str, np.ndarray], seed: int
        ) -> tuple[np.ndarray, list[str], pd.DataFrame]:
    """One T5 learns from the training rows, stops on the validation rows, answers the test rows."""
    model = t5_numbers.NumberT5(cfg.t5_settings(), model=cfg.t5_model, seed=seed)
    history = model.fit(list(texts[parts["train"]]), list(targets[parts["train"]]),
                        list(texts[parts["valid"]]), list(targets[parts["valid"]]))
    values, generated = model.predict(list(texts[parts["test"]]))
    return values, generated, history


def t5_inputs(cfg: Config, level1_units: np.ndarray, sentiment: np.ndarray) -> np.ndarray:
    """The T5's input text of every sample [001 VI-F]: "LSTM prediction p and sentiment score s", p in the units
    of :func:`to_units`."""
    return np.array(t5_numbers.serialise(level1_units, sentiment, cfg.digits), dtype=object)


def t5_targets(cfg: Config, y_units: np.ndarray) -> np.ndarray:
    """The T5's target text of every sample [001 VI-F]: "actual target y", y in the units of :func:`to_units`."""
    return np.array(t5_numbers.serialise_targets(y_units, cfg.digits), dtype=object)


def level2(cfg: Config, ds: pf.Dataset, level1_units: np.ndarray, sentiment: np.ndarray, seed: int,
           shuffle: bool) -> Level2:
    """Fit the T5 [001 VI-G] and the regression control on the training part's level-1 forecasts and sentiment,
    stop the T5 on the validation part, forecast the test part -- one model per ticker, as the paper has one
    per stock (its texts do not name the stock). With ``shuffle`` also both again with the sentiment permuted
    across each ticker's days (same values, no information)."""
    y_units = to_units(ds, ds.y_raw)
    test = ds.mask("test")
    runs = {"": sentiment}
    if shuffle:
        rng = np.random.default_rng(seed)
        shuffled = sentiment.copy()
        for t in np.unique(ds.ticker):
            sel = np.flatnonzero(ds.ticker == t)
            shuffled[sel] = sentiment[rng.permutation(sel)]
        runs[SHUFFLED] = shuffled
    targets = t5_targets(cfg, y_units)
    units, histories, unparsed, examples = {}, [], {}, []
    for suffix, s in runs.items():
        texts = t5_inputs(cfg, level1_units, s)
        x = np.column_stack([level1_units, s])
        t5_out, failed = np.full(len(y_units), np.nan), 0
        reg_out, reg_valid = np.full(len(y_units), np.nan), np.full(len(y_units), np.nan)
        for ticker in np.unique(ds.ticker):
            rows = ds.ticker == ticker
            parts = {p: ds.mask(p) & rows for p in pf.PARTS}
            values, generated, hist = _t5(cfg, texts, targets, parts, seed)
            bad = ~np.isfinite(values)
            failed += int(bad.sum())
            t5_out[parts["test"]] = np.where(bad, level1_units[parts["test"]], values)  # unparsable: level 1
            train = parts["train"]  # the rows the T5 learns from
            reg_out[parts["test"]] = _regression(x[train], y_units[train], x[parts["test"]])
            valid = parts["valid"]
            reg_valid[parts["test"]] = _regression(x[valid], y_units[valid], x[parts["test"]])
            histories.append(hist.assign(model=HYBRID + suffix, ticker=ticker, seed=seed))
            if not suffix:
                examples.append(pd.DataFrame({"ticker": ticker, "date": ds.date[parts["test"]],
                                              "input": texts[parts["test"]], "target": targets[parts["test"]],
                                              "generated": generated}))
        unparsed[HYBRID + suffix] = failed
        units[HYBRID + suffix], units[REGRESSION + suffix] = t5_out[test], reg_out[test]
        if not suffix:
            units[REGRESSION_VALID] = reg_valid[test]
    prices = {name: from_units(ds, v, test) for name, v in units.items()}
    return Level2(prices, pd.concat(histories, ignore_index=True), unparsed, pd.concat(examples, ignore_index=True))


@dataclass
class SeedRun:
    predictions: pd.DataFrame
    scores: pd.DataFrame
    level1_history: pd.DataFrame
    t5_history: pd.DataFrame
    unparsed: pd.DataFrame
    examples: pd.DataFrame


def run_seeds(cfg: Config, ds: pf.Dataset, table: pd.DataFrame, daily: pd.DataFrame, seeds: list[int],
              shuffle: bool) -> SeedRun:
    """Both levels once per seed on one dataset: level 1 alone, the hybrid and the controls."""
    scored = text_days(ds, daily, cfg.textless_days)
    sentiment = sentiment_of(scored, daily)
    test = scored.mask("test")
    preds, scores, l1_hist, t5_hist, unparsed, examples = [], [], [], [], [], []
    for seed in seeds:
        fit = fit_level1(cfg, ds, seed, {"scored": scored.X})
        level1_price = scored.to_price(fit.predictions["scored"])
        l2 = level2(cfg, scored, to_units(scored, level1_price), sentiment, seed, shuffle)
        for model, price in {CONV_LSTM: level1_price[test], **l2.prices}.items():
            p, s = pf.predictions_and_scores(scored, price, model, seed)
            preds.append(p)
            scores.append(s)
        l1_hist.append(fit.history.assign(seed=seed, epochs=fit.epochs))
        t5_hist.append(l2.t5_history)
        unparsed.append(pd.DataFrame({"model": list(l2.unparsed), "unparsed": list(l2.unparsed.values()),
                                      "test samples": int(test.sum()), "seed": seed}))
        examples.append(l2.examples.assign(seed=seed))
    base_p, base_s = pf.baseline_scores(scored, naive_forecasts(scored, table))
    cat = lambda f: pd.concat(f, ignore_index=True)  # noqa: E731
    return SeedRun(cat([base_p, *preds]), cat([base_s, *scores]), cat(l1_hist), cat(t5_hist), cat(unparsed),
                   cat(examples).assign(experiment=ds.name))


def naive_forecasts(ds: pf.Dataset, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Persistence (tomorrow's close is today's) and momentum (tomorrow's return is today's)."""
    m = ds.mask("test")
    prev = table["close"].groupby(level="ticker").shift(1)
    prev = prev.reindex(pd.MultiIndex.from_arrays([ds.ticker[m], ds.date[m]])).to_numpy(float)
    close = ds.last_close[m]
    return {pf.PERSISTENCE: close, MOMENTUM: close * close / prev}


# --------------------------------------------------------------------------- tables
def paper_tables() -> dict[str, pd.DataFrame]:
    return _tables(__name__)


def beside_paper(scores: pd.DataFrame, experiment: str = RETURN) -> pd.DataFrame:
    """Per paper ticker: MAE, MSE, RMSE, MAPE (%) of our Conv-LSTM and hybrid (mean ± std over seeds),
    persistence's, and the paper's Tables I and II."""
    paper = paper_tables()
    rows = scores[(scores["experiment"] == experiment) & ~scores["ticker"].isin(["mean", "pooled"])]
    rows = rows.assign(MAPE_pct=100 * rows["MAPE"])
    out = []
    for ticker, g in rows.groupby("ticker"):
        for metric in ("MAE", "MSE", "RMSE", "MAPE_pct"):
            line = {"ticker": ticker, "metric": metric}
            for model in (pf.PERSISTENCE, CONV_LSTM, HYBRID):
                v = g.loc[g["model"] == model, metric]
                line[model] = (f"{v.mean():.4f}" if len(v) == 1 else f"{v.mean():.4f} ± {v.std(ddof=1):.4f}"
                               ) if len(v) else ""
            if ticker in paper:
                line["paper: Conv-LSTM"] = paper[ticker].loc[metric, "Conv-LSTM"]
                line["paper: hybrid"] = paper[ticker].loc[metric, "hybrid"]
            out.append(line)
    return pd.DataFrame(out).set_index(["ticker", "metric"])


def claim_sentences(scores: pd.DataFrame, experiment: str = RETURN) -> list[str]:
    """The paper's headline -- the hybrid cuts the Conv-LSTM's MAE -- per ticker, in the paper's numbers and ours."""
    paper = paper_tables()
    rows = scores[(scores["experiment"] == experiment) & ~scores["ticker"].isin(["mean", "pooled"])]
    mae = rows.groupby(["ticker", "model"])["MAE"].mean().unstack("model")
    lines = []
    for ticker, row in mae.iterrows():
        if not {CONV_LSTM, HYBRID} <= set(row.dropna().index):
            continue
        ours = row[HYBRID] / row[CONV_LSTM] - 1
        text = f"- **{ticker}**: our hybrid changes the Conv-LSTM's MAE by {ours:+.1%} (mean over seeds)"
        if ticker in paper:
            theirs = paper[ticker].loc["MAE", "hybrid"] / paper[ticker].loc["MAE", "Conv-LSTM"] - 1
            text += f"; the paper reports {theirs:+.1%}"
        ref = row.get(pf.PERSISTENCE, np.nan)
        lines.append(text + (f"; persistence's MAE is {ref / row[CONV_LSTM] - 1:+.1%} from the Conv-LSTM's."
                             if np.isfinite(ref) else "."))
    return lines


def direction_table(predictions: pd.DataFrame, closes: pd.Series) -> pd.DataFrame:
    """Direction hit rate per (experiment, model) and ticker, mean over seeds (persistence has none)."""
    keys = pd.MultiIndex.from_frame(predictions[["ticker", "date"]])
    frame = predictions.assign(close=closes.reindex(keys).to_numpy())
    frame = frame[frame["model"] != pf.PERSISTENCE]
    hits = frame.groupby(["experiment", "model", "ticker", "seed"], sort=False).apply(
        lambda g: metrics.direction_hit_rate(g["y_true"], g["y_pred"], g["close"]), include_groups=False)
    return hits.groupby(level=["experiment", "model", "ticker"], sort=False).mean().unstack("ticker")


def pair_sentences(pairs: pd.DataFrame) -> list[str]:
    """One line per pair: on how many tickers ``model`` has smaller squared errors than ``against``."""
    lines = []
    for (a, b), g in pairs.groupby(level=["model", "against"], sort=False):
        word = g["verdict"].str.split(" ").str[0]
        per = ", ".join(f"{t}: identical forecasts" if np.isnan(p) and s == 0 else
                        f"{t}: {v} (skill {s:+.3f}, p = {p:.3f})" for (_, _, t), v, s, p in
                        zip(g.index, word, g["skill"], g["p"]))
        lines.append(f"- **{a}** against **{b}**: {per}.")
    return lines


def sentiment_return_table(daily: pd.DataFrame, table: pd.DataFrame, period: tuple) -> pd.DataFrame:
    """Per ticker: correlation of the day's weighted sentiment (days with texts) with the next day's return,
    its t-statistic and the days counted."""
    ret = (table[TARGET] / table["close"] - 1.0).rename("next_return")
    frame = daily.join(ret).loc[(slice(None), slice(*period)), :].dropna(subset=["raw_score", "next_return"])
    rows = {}
    for t, g in frame.groupby(level="ticker"):
        r = float(np.corrcoef(g["raw_score"], g["next_return"])[0, 1]) if len(g) > 2 else np.nan
        rows[t] = {"corr": r, "t": r * np.sqrt((len(g) - 2) / max(1 - r * r, 1e-12)), "days": len(g)}
    return pd.DataFrame(rows).T.astype({"days": int})


# --------------------------------------------------------------------------- stock advising
def advising(predictions: pd.DataFrame, table: pd.DataFrame, experiment: str, cost: float
             ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Long from today's close to tomorrow's when a model's forecast is above today's close, else cash.

    Every model and seed on each ticker's test days, against buy-and-hold on the same days,
    ``cost`` per change of position. Returns the metrics (mean over seeds per model and
    ticker, with the seeds' spread of the total return) and each model's first-seed wealth
    curve per ticker.
    """
    sel = predictions[(predictions["experiment"] == experiment) & (predictions["model"] != pf.PERSISTENCE)]
    rows, curves = [], {}  # persistence forecasts today's close: it never goes long (cash)
    for ticker, g in sel.groupby("ticker"):
        close = table.loc[ticker, "close"]
        days = pd.DatetimeIndex(sorted(set(g["date"])))
        nxt = (table.loc[ticker, TARGET] / close - 1.0).reindex(days)
        wealth = {}
        daily, m = long_flat(pd.Series(True, index=days), nxt, cost)
        rows.append({"ticker": ticker, "model": "buy and hold", "seed": -1, **m})
        wealth["buy and hold"] = daily["wealth"]
        for (model, seed), f in g.groupby(["model", "seed"], sort=False):
            f = f.set_index("date").reindex(days)
            daily, m = long_flat(f["y_pred"] > close.reindex(days), nxt, cost)
            rows.append({"ticker": ticker, "model": model, "seed": seed, **m})
            wealth.setdefault(model, daily["wealth"])
        curves[ticker] = pd.DataFrame(wealth)
    frame = pd.DataFrame(rows)
    summary = frame.groupby(["ticker", "model"], sort=False).agg(
        **{"total return": ("total return", "mean"), "± over seeds": ("total return", "std"),
           "Sharpe": ("Sharpe", "mean"), "max drawdown": ("max drawdown", "mean"), "trades": ("trades", "mean"),
           "days long": ("days long", "mean")})
    return summary, curves


def advising_sentences(summary: pd.DataFrame) -> list[str]:
    """Per ticker: which models ended above buy-and-hold, computed from the table."""
    lines = []
    for ticker, g in summary.groupby(level="ticker", sort=False):
        g = g.droplevel("ticker")
        bh = g.loc["buy and hold", "total return"]
        above = [m for m, v in g["total return"].items() if m != "buy and hold" and v > bh]
        lines.append(f"- **{ticker}**: buy-and-hold returned {bh:+.1%} over the test days; "
                     + (f"above it: {', '.join(above)}." if above else "no model's advice did better."))
    return lines


# --------------------------------------------------------------------------- verdict
def verdict(predictions: pd.DataFrame, experiment: str = RETURN) -> tuple[pd.DataFrame, list[str]]:
    """Every model against persistence, per ticker (Diebold-Mariano, seeds), with sentences."""
    return pf.persistence_verdict(predictions, experiment)


def headlines(res) -> list:
    """The overview's rows (:mod:`repro.overview`): Tables I/II's hybrid MAE per ticker beside ours and
    persistence's, with Diebold-Mariano against persistence and the hybrid / Conv-LSTM ratio beside the paper's."""
    from .. import overview

    out = []
    for ticker in PAPER_TICKERS:
        if not res.ran("tickers", ticker):
            continue
        paper = paper_tables()[ticker]
        rows = {m: res.rows("metrics.csv", f"{m}'s MAE on {ticker}", experiment=RETURN, model=m, ticker=ticker)
                for m in (HYBRID, CONV_LSTM, pf.PERSISTENCE)}
        preds = res.table("predictions.parquet")
        test = overview.point_test(preds[preds["experiment"] == RETURN], HYBRID, pf.PERSISTENCE, ticker)
        mean, std, n = overview.seed_stats(rows[HYBRID].groupby("seed")["MAE"].mean())
        ratio = mean / rows[CONV_LSTM]["MAE"].mean()
        printed = paper.loc["MAE", "hybrid"] / paper.loc["MAE", "Conv-LSTM"]
        words = overview.point_words(test, "persistence")
        out.append(overview.Headline(
            claim=f"Table {'I' if ticker == 'AAPL' else 'II'} ({ticker}): hybrid MAE {paper.loc['MAE', 'hybrid']:.4f}, "
                  f"Conv-LSTM {paper.loc['MAE', 'Conv-LSTM']:.4f}",
            metric=f"MAE (dollars), {ticker} close", paper_value=float(paper.loc["MAE", "hybrid"]), ours=mean,
            ours_std=std, seeds=n, baseline="persistence", baseline_value=float(rows[pf.PERSISTENCE]["MAE"].mean()),
            vs_baseline=test["verdict"],
            verdict=f"{words[0].upper() + words[1:]}; hybrid / Conv-LSTM MAE {ratio:.2f} (paper {printed:.2f}).",
            section="Results beside the paper (Tables I and II)", higher_is_better=False))
    return out


def config_for_window(cfg: Config, window: int) -> Config:
    return dataclasses.replace(cfg, window=window)


__all__ = [
    "CONV_LSTM", "HYBRID", "LEVEL", "MOMENTUM", "PAPER", "REGRESSION", "REGRESSION_VALID", "RETURN", "SHUFFLED",
    "Config", "SeedRun", "advising", "advising_sentences", "beside_paper", "claim_sentences", "config_for_window",
    "daily_sentiment", "dataset", "direction_table", "headlines", "in_period", "naive_forecasts", "pair_sentences",
    "paper_tables", "price_table", "resolve_period", "run_seeds", "score_texts", "search_window",
    "sentiment_return_table", "t5_inputs", "t5_targets", "text_items", "text_spans", "text_table", "verdict",
]
