"""Paper 000 on the price-forecast protocol: S-Mamba over stock indicators plus LLM texts about the S&P 500.

"MambaLLM: Integrating Macro-Index and Micro-Stock Data for Enhanced Stock Price
Prediction" (Yan & Huang, 2025; only the abstract is available) forecasts the next close of
six large US stocks from a 10-day window of twelve indicators (a micro branch: S-Mamba,
variates as tokens) and from texts that an LLM (DeepSeek-R1-Distill 7B) wrote about each
day of the S&P 500 (a macro branch: the texts embedded by FinBERT and averaged over the
window), concatenated and read by an MLP ([000 abstract]; the authors' repository fixes
the sizes). It reports up to 28.50% lower RMSE than the second-best model.

This module builds the data without look-ahead (indicators of day t use closes up to t;
the text of day t, written that evening from that day's numbers, enters the window that
ends at t, whose target is the close of t+1), splits 70/10/20 by date (the authors publish
no split), predicts the next return and rebuilds the price (the level formulation is the
variant ``level (paper)``), and compares MambaLLM with persistence, recurrent networks, a
Transformer, plain Mamba over time and its own ablations: no text, the raw S&P 500
indicator vector instead of the text, and texts shuffled across days.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from ..config import ParameterError, override, param
from ..data import mamballm, us_prices
from ..features.technical import indicator_frame
from ..models import smamba
from ..protocols import price_forecast as pf
from ..text import embed, llm

NOTEBOOK = "03_mamballm"
PAPER = "Paper 000 (MambaLLM)"
#: The abstract's headline: "up to 28.50% lower RMSE than the second-best model".
PAPER_REDUCTION = 0.2850
PAPER_TICKERS = ("AAPL", "AMZN", "MSFT", "TSLA", "GOOGL", "META")
#: The authors' twelve stock features (their column order).
FEATURES = ["open", "high", "low", "close", "volume", "sma10", "sma50", "ema10", "bb_upper", "bb_lower", "macd",
            "rsi"]
TARGET = "next_close"
TEXT_SPAN = ("2020-03-13", "2025-02-28")
WARM_UP_DAYS = 120  # calendar days of history before the start, so SMA50 and MACD are defined on day one
RETURN, LEVEL = "return", "level (paper)"
MAMBALLM = "mamballm"
#: MambaLLM's macro input replaced: the raw S&P 500 indicators the text was written from, or texts of other days.
INDICATORS, SHUFFLED = "MambaLLM, S&P indicators instead of text", "MambaLLM, texts shuffled"
TEXT_VARIANTS = {"indicators": INDICATORS, "shuffled": SHUFFLED}
NAMES = {"lstm": "LSTM", "gru": "GRU", "bilstm": "BiLSTM", "bigru": "BiGRU", "transformer": "Transformer",
         "mamba": "Mamba (over time)", "smamba": "S-Mamba (no text)", "mamballm": "MambaLLM"}


@dataclass(frozen=True)
class Config(pf.Config):
    """The chapter's parameters: ours (the ``book`` profile) beside what the authors' code fixes."""

    notebook: ClassVar[str] = NOTEBOOK

    tickers: list[str] = override(pf.Config, "tickers", list(PAPER_TICKERS), paper=list(PAPER_TICKERS),
                                  help="stocks of repro.data.us_prices, pooled and scored one by one",
                                  choices=[t for t in us_prices.TICKERS if t != "GSPC"])
    window: int = override(pf.Config, "window", 10, paper=10)
    start: str | None = override(pf.Config, "start", TEXT_SPAN[0], help="first decision day (the authors' texts "
                                 "cover 2020-03-13..2025-02-28; earlier needs text_source other than deepseek)")
    end: str | None = override(pf.Config, "end", TEXT_SPAN[1], help="last decision day")
    target: str = override(pf.Config, "target", "return", paper="level")
    max_epochs: int = override(pf.Config, "max_epochs", 20)
    patience: int = override(pf.Config, "patience", 4)
    batch_size: int = override(pf.Config, "batch_size", 64)
    models: list[str] = param(list(NAMES), "models, all on the same windows", choices=NAMES)
    text_variants: list[str] = param(list(TEXT_VARIANTS), "MambaLLM with its macro input replaced: indicators "
                                     "(the S&P numbers the text was written from) | shuffled (texts of other "
                                     "days)", choices=TEXT_VARIANTS)
    text_source: str = param("deepseek", "deepseek: the authors' texts | template | smollm2 | transformers | "
                             "openai (text_model / text_url)",
                             choices=("deepseek", "template", "smollm2", "transformers", "openai"),
                             paper="deepseek")
    text_model: str | None = param(None, "model id or folder of the transformers / openai text source")
    text_url: str | None = param(None, "base URL of an OpenAI-compatible server (e.g. http://localhost:11434/v1)")
    encoder: str | None = param(None, "sentence encoder of the texts: a Hugging Face id or folder (None: the "
                                "offline MiniLM, 384 numbers)", paper="FinBERT (768)")
    d_model: int = param(32, "width of S-Mamba, MambaLLM and Mamba over time", paper=128, minimum=4)
    d_state: int = param(8, "state size of their Mamba blocks", paper=32, minimum=1)
    d_ff: int = param(32, "S-Mamba feed-forward width", paper=128, minimum=4)
    layers: int = param(1, "S-Mamba layers", paper=2, minimum=1)
    compare_sources: list[str] = param(["template", "smollm2"], "text sources shown beside the authors' for a few "
                                       "days",
                                       choices=("template", "smollm2", "transformers", "openai"))
    compare_days: int = param(2, "days shown side by side", minimum=1)
    level_variant: bool = param(True, "MambaLLM and S-Mamba again on price levels, the paper's formulation")
    level_seeds: list[int] = param([0], "seeds of the level variant")
    plot_ticker: str | None = param(None, "ticker of the plots (None: the first of tickers)")

    def check(self) -> None:
        if self.plot_ticker is not None and self.plot_ticker not in self.tickers:
            raise ParameterError(f"plot_ticker {self.plot_ticker!r} is not one of tickers {self.tickers}")
        if self.text_source == "deepseek" and self.start and pd.Timestamp(self.start) < pd.Timestamp(TEXT_SPAN[0]):
            raise ParameterError(f"start={self.start} is before the authors' texts ({TEXT_SPAN[0]}..{TEXT_SPAN[1]}):"
                                 " choose a later start or another text_source (template, smollm2, ...)")
        if self.text_source in ("transformers", "openai") and not (self.text_model or self.text_url):
            raise ParameterError(f"text_source={self.text_source!r} needs text_model (and text_url for openai)")

    @property
    def shown_ticker(self) -> str:
        return self.plot_ticker or self.tickers[0]

    def train_settings(self) -> smamba.TrainSettings:
        return smamba.TrainSettings(batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience)

    def model_sizes(self, name: str) -> dict:
        if name in ("smamba", "mamballm"):
            return dict(d_model=self.d_model, d_state=self.d_state, d_ff=self.d_ff, layers=self.layers)
        if name == "mamba":
            return dict(d_model=self.d_model, d_state=self.d_state)
        return {}


# --------------------------------------------------------------------------- data
def stock_table(cfg: Config) -> pd.DataFrame:
    """(ticker, date) x the twelve features and ``next_close``; indicators warmed up before ``start``."""
    first = pd.Timestamp(cfg.start) - pd.Timedelta(days=WARM_UP_DAYS) if cfg.start else None
    frames = []
    for t in cfg.tickers:
        ind = indicator_frame(us_prices.daily(t, first, cfg.end))
        ind[TARGET] = ind["close"].shift(-1)
        frames.append(ind.assign(ticker=t))
    table = pd.concat(frames).rename_axis("date").reset_index().set_index(["ticker", "date"]).sort_index()
    return table.dropna(subset=FEATURES)


def index_days(cfg: Config) -> pd.DataFrame:
    """The S&P 500 days with the authors' indicators and texts (their ``text`` column), within start..end."""
    days = mamballm.gspc_texts()
    return days.loc[cfg.start or days.index[0]: cfg.end or days.index[-1]]


def make_backend(source: str, cfg: Config) -> llm.Backend:
    """A text source other than the authors' texts."""
    if source == "template":
        return llm.TemplateBackend()
    if source == "smollm2":
        return llm.SmolLM2Backend()
    if source == "transformers":
        return llm.TransformersBackend(cfg.text_model)
    return llm.OpenAIBackend(cfg.text_url, cfg.text_model)


def day_texts(cfg: Config, days: pd.DataFrame) -> pd.Series:
    """The text of each index day: the authors' (``deepseek``) or one written by ``text_source``."""
    if cfg.text_source == "deepseek":
        return days["text"]
    return llm.generate_texts(days.drop(columns="text"), make_backend(cfg.text_source, cfg))


def side_by_side(cfg: Config, days: pd.DataFrame) -> pd.DataFrame:
    """For ``compare_days`` evenly spaced days: the authors' text beside each of ``compare_sources``."""
    pick = days.iloc[np.linspace(0, len(days) - 1, cfg.compare_days).round().astype(int)]
    out = {"DeepSeek-R1-Distill 7B (authors)": pick["text"]}
    for source in cfg.compare_sources:
        out[source] = llm.generate_texts(pick.drop(columns="text"), make_backend(source, cfg))
    return pd.DataFrame(out)


def text_vectors(cfg: Config, texts: pd.Series) -> pd.DataFrame:
    """One embedding per index day (rows: days)."""
    return pd.DataFrame(embed.embed(texts.tolist(), cfg.encoder), index=texts.index)


def indicator_vectors(days: pd.DataFrame) -> pd.DataFrame:
    """The S&P 500 numbers each text was written from, as the macro input of the ``indicators`` variant
    (relative to the close, so the scale is stable; volume in logs)."""
    out = days[FEATURES].div(days["close"], axis=0).drop(columns=["close", "volume", "rsi", "macd"])
    out["volume"] = np.log(days["volume"].clip(lower=1))
    out["rsi"] = days["rsi"] / 100
    out["macd"] = days["macd"] / days["close"]
    out["return"] = days["close"].pct_change().fillna(0.0)
    return out


def window_mean(vectors: pd.DataFrame, ds: pf.Dataset) -> np.ndarray:
    """Each sample's macro vector: the mean over the ``window`` index days up to its decision day [000 abstract].

    Days without an index row (none in 2020-2025) would carry the previous day's vector.
    """
    rolled = vectors.rolling(ds.window, min_periods=1).mean()
    got = rolled.reindex(pd.DatetimeIndex(sorted(set(ds.date)))).ffill()
    return got.reindex(ds.date).to_numpy(np.float32)


def scaled_on_train(x: np.ndarray, ds: pf.Dataset) -> np.ndarray:
    """Standardise macro vectors with the training part's mean and deviation."""
    train = ds.mask("train")
    mu, sd = x[train].mean(0), x[train].std(0)
    return ((x - mu) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def shuffled_days(vectors: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same vectors assigned to other days (a permutation of the rows)."""
    order = np.random.default_rng(seed).permutation(len(vectors))
    return pd.DataFrame(vectors.to_numpy()[order], index=vectors.index, columns=vectors.columns)


def dataset(cfg: Config, table: pd.DataFrame, target: str | None = None) -> pf.Dataset:
    """Windows of the twelve features, split 70/10/20 by date (validation = the last eighth of training)."""
    target = target or cfg.target
    return pf.make_dataset(RETURN if target == "return" else LEVEL, table, FEATURES, TARGET, cfg.window,
                           cfg.start, cfg.end, train=0.8, valid=0.125, target=target)


# --------------------------------------------------------------------------- models
def macro_inputs(cfg: Config, ds: pf.Dataset, texts: pd.DataFrame, indicators: pd.DataFrame, seed: int
                 ) -> dict[str, np.ndarray]:
    """The macro vector of every sample per MambaLLM variant (text, indicators, shuffled texts)."""
    out = {MAMBALLM: scaled_on_train(window_mean(texts, ds), ds)}
    if "indicators" in cfg.text_variants:
        out[INDICATORS] = scaled_on_train(window_mean(indicators, ds), ds)
    if "shuffled" in cfg.text_variants:
        out[SHUFFLED] = scaled_on_train(window_mean(shuffled_days(texts, seed), ds), ds)
    return out


def fit_all(cfg: Config, ds: pf.Dataset, texts: pd.DataFrame, indicators: pd.DataFrame, seeds: list[int],
            models: list[str], variants: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every model (and MambaLLM variant) once per seed: (predictions, per-ticker scores, training histories)."""
    preds, scores, hist = [], [], []
    parts = {p: ds.mask(p) for p in pf.PARTS}
    for seed in seeds:
        macro = macro_inputs(cfg, ds, texts, indicators, seed)
        runs = [(m, m, None) for m in models if m != MAMBALLM]
        if MAMBALLM in models:
            runs += [(MAMBALLM, name, x) for name, x in macro.items() if variants or name == MAMBALLM]
        for model, label, x in runs:
            text = None if x is None else {p: x[m] for p, m in parts.items()}
            fit = smamba.fit_predict(model, ds.X[parts["train"]], ds.y[parts["train"]], ds.X[parts["valid"]],
                                     ds.y[parts["valid"]], {"test": ds.X[parts["test"]]},
                                     text_train=None if text is None else text["train"],
                                     text_valid=None if text is None else text["valid"],
                                     text_pred=None if text is None else {"test": text["test"]},
                                     settings=cfg.train_settings(), seed=seed, **cfg.model_sizes(model))
            name = NAMES.get(label, label)
            p, s = pf.predictions_and_scores(ds, ds.to_price(fit.predictions["test"], parts["test"]), name, seed)
            preds.append(p)
            scores.append(s.assign(epochs=fit.epochs))
            hist.append(fit.history.assign(model=name, seed=seed))
    base_p, base_s = pf.baseline_scores(ds, {pf.PERSISTENCE: pf.persistence_predictions(ds)[pf.PERSISTENCE]})
    cat = lambda f: pd.concat(f, ignore_index=True)  # noqa: E731
    return cat([base_p, *preds]), cat([base_s, *scores]), cat(hist)


# --------------------------------------------------------------------------- tables
def rmse_reduction(scores: pd.DataFrame, experiment: str = RETURN, model: str = NAMES[MAMBALLM],
                   exclude: tuple[str, ...] = (pf.PERSISTENCE, INDICATORS, SHUFFLED)) -> pd.DataFrame:
    """The paper's headline per stock: 1 - RMSE(MambaLLM) / RMSE(second-best model), per seed, then mean and
    std over seeds. "Second best" is the best of the other models (not its own variants nor persistence),
    chosen on the mean RMSE; persistence's reduction is shown beside it."""
    rows = scores[(scores["experiment"] == experiment) & ~scores["ticker"].isin(["mean", "pooled"])]
    mean = rows.groupby(["ticker", "model"])["RMSE"].mean().unstack("model")
    others = mean.drop(columns=[c for c in (model, *exclude) if c in mean.columns])
    out = []
    for ticker in mean.index:
        rival = others.loc[ticker].idxmin()
        per_seed = rows[(rows["ticker"] == ticker) & (rows["model"] == model)].set_index("seed")["RMSE"]
        rival_seed = rows[(rows["ticker"] == ticker) & (rows["model"] == rival)].set_index("seed")["RMSE"]
        red = (1 - per_seed / rival_seed.reindex(per_seed.index)).dropna()
        out.append({"ticker": ticker, "second best": rival, "reduction": red.mean(),
                    "std over seeds": red.std(ddof=1) if len(red) > 1 else np.nan, "seeds": len(red),
                    "vs persistence": 1 - mean.loc[ticker, model] / mean.loc[ticker, pf.PERSISTENCE]})
    return pd.DataFrame(out).set_index("ticker")


def reduction_sentences(table: pd.DataFrame) -> list[str]:
    best = table["reduction"].idxmax()
    lines = [f"The paper: up to 28.50% lower RMSE than the second-best model. This run: between "
             f"{table['reduction'].min():+.1%} and {table['reduction'].max():+.1%} (best on {best}); "
             f"positive on {int((table['reduction'] > 0).sum())} of {len(table)} stocks."]
    spread = table["std over seeds"]
    if spread.notna().any():
        inside = int((table["reduction"].abs() <= 2 * spread).sum())
        lines.append(f"On {inside} of {len(table)} stocks the reduction lies within two standard deviations over "
                     "seeds of zero: the ranking there is inside the training noise.")
    return lines


def direction_table(texts: pd.Series, days: pd.DataFrame) -> pd.DataFrame:
    """How often a text's stated outlook matches the index's next-day move, by stated direction."""
    stated = pd.Series(llm.stated_direction(texts.tolist()), index=texts.index)
    move = np.sign(days["close"].shift(-1) - days["close"]).reindex(texts.index)
    frame = pd.DataFrame({"stated": stated, "move": move}).dropna()
    names = {1: "bullish", -1: "bearish", 0: "neutral / none"}
    out = frame.groupby("stated").agg(days=("move", "size"), next_day_up=("move", lambda m: float((m > 0).mean())))
    out.index = [names[int(i)] for i in out.index]
    called = frame[frame["stated"] != 0]
    out.loc["all with a direction", ["days", "next_day_up"]] = [len(called), np.nan]
    out["hit rate"] = np.nan
    for k, i in (("bullish", 1), ("bearish", -1)):
        if k in out.index:
            out.loc[k, "hit rate"] = float((frame.loc[frame["stated"] == i, "move"] == i).mean())
    out.loc["all with a direction", "hit rate"] = float((called["stated"] == called["move"]).mean()) \
        if len(called) else np.nan
    return out


def verdict(predictions: pd.DataFrame, experiment: str = RETURN) -> tuple[pd.DataFrame, list[str]]:
    """Every model against persistence, per ticker (Diebold-Mariano, seeds), with sentences."""
    return pf.persistence_verdict(predictions, experiment)


def headlines(res) -> list:
    """The overview's row (:mod:`repro.overview`): the abstract's "up to 28.50% lower RMSE than the second-best
    model" beside ours on the stock where it is largest, persistence's reduction against the same rival, and
    MambaLLM against persistence there (Diebold-Mariano)."""
    from .. import overview

    if not res.ran("models", MAMBALLM):
        return []
    scores = res.rows("metrics.csv", "the RMSE of every model", experiment=RETURN)
    scores = scores[~scores["ticker"].isin(["mean", "pooled"])]
    if scores["model"].nunique() < 3:
        raise res.missing("a model other than MambaLLM and persistence (the 'second best')", "metrics.csv")
    table = rmse_reduction(scores)
    best = table["reduction"].idxmax()
    row = table.loc[best]
    per = scores[scores["ticker"] == best].groupby("model")["RMSE"].mean()
    preds = res.table("predictions.parquet")
    test = overview.point_test(preds[preds["experiment"] == RETURN], NAMES[MAMBALLM], pf.PERSISTENCE, best)
    words = overview.point_words(test, "persistence")
    return [overview.Headline(
        claim=f"Up to {PAPER_REDUCTION:.2%} lower RMSE than the second-best model (abstract)",
        metric=f"1 - RMSE / RMSE of the second-best model, best of {len(table)} stock(s) ({best}; second best "
               f"{row['second best']})",
        paper_value=PAPER_REDUCTION, ours=float(row["reduction"]), ours_std=float(row["std over seeds"]),
        seeds=int(row["seeds"]), baseline="persistence",
        baseline_value=float(1 - per[pf.PERSISTENCE] / per[row["second best"]]), vs_baseline=test["verdict"],
        verdict=f"On {best}, MambaLLM is {words}; the reduction is positive on {int((table['reduction'] > 0).sum())} "
                f"of {len(table)} stocks.",
        section="The headline: lower RMSE than the second-best model", percent=True)]


def ablation_pairs(predictions: pd.DataFrame, experiment: str = RETURN) -> pd.DataFrame:
    """MambaLLM against its ablations (no text, indicators, shuffled), per ticker, same days and seeds."""
    pairs = [(NAMES[MAMBALLM], other) for other in (NAMES["smamba"], INDICATORS, SHUFFLED)]
    table = pf.paired_forecasts(predictions, experiment, pairs)
    return table.droplevel("model") if len(table) else table


__all__ = [
    "FEATURES", "INDICATORS", "LEVEL", "MAMBALLM", "NAMES", "PAPER", "PAPER_REDUCTION", "RETURN", "SHUFFLED",
    "Config", "ablation_pairs", "dataset", "day_texts", "direction_table", "fit_all", "headlines", "index_days",
    "indicator_vectors", "make_backend", "reduction_sentences", "rmse_reduction", "side_by_side", "stock_table",
    "text_vectors", "verdict", "window_mean",
]
