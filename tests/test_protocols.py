"""A new chapter in a few lines: toy chapters built on the two protocols.

Each toy declares its config (a protocol's ``Config`` plus its own parameters), a recipe
(features of day t from data up to t) and a model registry, then calls the protocol --
what the README's "Adding a chapter" describes.
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from repro import io, report
from repro.config import param
from repro.models import linear
from repro.models.panel_baselines import RNN
from repro.protocols import cross_section as cs
from repro.protocols import price_forecast as pf
from repro.runs import Run

needs_mirror = pytest.mark.skipif(not os.environ.get("REPRO_DATA_MIRROR"),
                                  reason="reads the China A-share data from REPRO_DATA_MIRROR")
QUIET = dict(log=lambda *_: None)


# --------------------------------------------------------------------------- a ranking chapter
@dataclasses.dataclass(frozen=True)
class ToyRanking(cs.Config):
    notebook: ClassVar[str] = "98_toy_ranking"
    hidden: int = param(8, "GRU width", paper=64)


def toy_features(prices: cs.Prices) -> dict[str, np.ndarray]:
    """Yesterday-to-today return and the day's range, both known at the close of day t."""
    return {"ret": prices.close / prices.previous(prices.close) - 1, "range": prices.high / prices.low - 1}


RANKERS = {"GRU": lambda panel, cfg: RNN(len(panel.features), cfg.hidden)}


def planted_panel(days: int = 240, stocks: int = 30, seed: int = 0) -> cs.Panel:
    """Tomorrow's return is half of today's first feature plus noise; the other features are noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(days, stocks, 3)).astype(np.float32)
    label = (0.5 * x[:, :, 0] + rng.normal(0, 0.5, (days, stocks))).astype(np.float32) * 0.01
    returns = np.vstack([np.full((1, stocks), np.nan), label[:-1]]).astype(np.float32)  # realised the next day
    label[-1] = np.nan
    return cs.Panel(pd.bdate_range("2021-01-04", periods=days), [f"S{i:02d}" for i in range(stocks)], x,
                    ["signal", "noise1", "noise2"], np.cumprod(1 + rng.normal(0, 0.01, days)).astype(np.float32),
                    returns, label, np.ones((days, stocks), bool), "toy", horizon=1)


def test_a_gru_learns_a_planted_cross_sectional_signal_and_beats_momentum():
    cfg = ToyRanking(split_counts=[160, 30, 40], window=5, epochs=4, seeds=[0, 1], lr=3e-3)
    panel = planted_panel()
    split = cs.make_split(panel, cfg.window, cfg.split_counts)
    experiment = cs.Experiment(panel, split, cs.split_days(panel, split, cfg.window))
    cs.fit_scaler(panel, experiment.parts["train"])
    experiments = {"toy": experiment}
    results = cs.run_models(RANKERS, ["GRU"], experiments, cfg, **QUIET) + cs.run_naive(experiments, cfg)
    table = results.metrics().set_index(["model", "seed"])
    assert (table.loc["GRU", "IC"] > 0.5).all()  # the population IC of the planted signal is 0.71
    assert abs(table.loc[(cs.MOMENTUM, -1), "IC"]) < 0.1
    verdict = report.ranking_verdict(results.daily_ic(), "GRU")
    assert verdict.loc[cs.MOMENTUM, "verdict"] == "worse" and verdict.loc["GRU", "p"] < 1e-10
    test_days = len(experiment.parts["test"])  # 40 less the last, whose label lies after the data
    assert test_days == 39 and len(results.predictions()) == 3 * test_days * 30  # 2 seeds and momentum


@needs_mirror
def test_a_ranking_chapter_on_20_csi_stocks_saves_every_table_it_needs(results_dir):
    cfg = ToyRanking(universes=["csi300"], start="2022-01-01", max_stocks=20, split_counts=[300, 60, 60], epochs=1,
                     days_per_epoch=20, seeds=[0])
    experiments = {u: cs.prepare(cfg, u, toy_features) for u in cfg.universes}
    results = cs.run_models(RANKERS, ["GRU"], experiments, cfg, **QUIET) + cs.run_naive(experiments, cfg)
    run = Run(cfg)
    results.save(run, experiments)
    record = run.finish()
    assert record["params"]["hidden"] == 8 and record["params"]["max_stocks"] == 20
    folder = results_dir / "98_toy_ranking"
    saved = pd.read_parquet(folder / "predictions.parquet")
    assert set(saved["model"]) == {"GRU", cs.MOMENTUM} and saved["instrument"].nunique() == 20
    # every metric of the chapter's table is recomputed from the saved files alone
    returns = pd.read_parquet(folder / "returns.parquet").loc["csi300"]["return"].unstack()
    bench = io.read_frame(folder / "benchmark.csv")["csi300"]
    bench.index = pd.DatetimeIndex(bench.index)
    for (model, seed), g in saved.groupby(["model", "seed"]):
        out, _ = cs.evaluate_frames(g.pivot(index="datetime", columns="instrument", values="score"),
                                    g.pivot(index="datetime", columns="instrument", values="label"), returns, bench,
                                    **cfg.backtest)
        row = io.read_frame(folder / "metrics.csv").query("model == @model and seed == @seed").iloc[0]
        for k, v in out.items():
            assert v == pytest.approx(row[k], rel=1e-9, abs=1e-12), (model, k)
    daily = io.read_frame(folder / "daily_ic.csv")
    assert len(daily) == 2 * len(experiments["csi300"].parts["test"])
    assert set(daily.columns) >= {"universe", "model", "seed", "datetime", "IC", "RankIC"}


# --------------------------------------------------------------------------- a price-forecast chapter
@dataclasses.dataclass(frozen=True)
class ToyForecast(pf.Config):
    notebook: ClassVar[str] = "97_toy_forecast"
    penalty: float = param(1e-3, "ridge penalty")


def ridge(cfg: ToyForecast) -> pf.Fit:
    """A linear floor: ridge regression on the flattened window."""
    from sklearn.linear_model import Ridge

    def fit(ds: pf.Dataset, seed: int) -> pf.Fitted:
        X, y = ds.arrays("train")
        test = ds.X[ds.mask("test")]
        model = Ridge(alpha=cfg.penalty).fit(X.reshape(len(X), -1), y)
        return pf.Fitted({"ridge": model.predict(test.reshape(len(test), -1))})
    return fit


def ar_table(days: int = 1500, phi: float = 0.4, seed: int = 0) -> pd.DataFrame:
    """One ticker whose daily returns follow an AR(1): tomorrow's close is partly predictable."""
    rng = np.random.default_rng(seed)
    r = np.zeros(days)
    for t in range(1, days):
        r[t] = phi * r[t - 1] + rng.normal(0, 0.01)
    close = 100 * np.cumprod(1 + r)
    frame = pd.DataFrame({"open": close * (1 + rng.normal(0, 0.001, days)), "close": close, "ret": r},
                         index=pd.bdate_range("2015-01-02", periods=days, name="date"))
    frame["next_close"] = frame["close"].shift(-1)
    return frame.assign(ticker="AR").set_index("ticker", append=True).swaplevel().sort_index()


def test_a_linear_model_beats_persistence_on_a_predictable_ticker():
    cfg = ToyForecast(tickers=["AR"], window=3, target="return", seeds=[0, 1])
    ds = pf.make_dataset("toy", ar_table(), ["ret"], "next_close", cfg.window, target=cfg.target)
    collector = pf.Collector()
    collector.add(*pf.baseline_scores(ds, pf.persistence_predictions(ds)))
    collector.add(*pf.fit_seeds(ds, ridge(cfg), cfg.seeds))
    skill = pf.skill(collector.scores()).loc[("toy", "ridge"), "MSE skill vs persistence"]
    assert 0.1 < skill < 0.3  # an AR(1) with phi = 0.4 explains about phi^2 = 16% of the variance
    verdict = report.point_verdict(collector.predictions(), pf.PERSISTENCE)
    assert verdict.loc[("toy", "ridge", "AR"), "verdict"] == "better"
    # today's open carries a little noise around today's close: no better, no worse in 300 days
    assert verdict.loc[("toy", "persistence (open)", "AR"), "verdict"] == "indistinguishable"


# --------------------------------------------------------------------------- returns, floors and labels
def toy_prices(close: list[list[float]]) -> cs.Prices:
    c = np.array(close, np.float32)
    ones = np.ones_like(c)
    return cs.Prices("toy", pd.bdate_range("2023-01-02", periods=len(c)), [f"S{i}" for i in range(c.shape[1])],
                     c, c, c, c, ones, ones)


def test_a_return_across_a_suspension_is_earned_on_the_day_trading_resumes():
    # S0 trades at 10, 11, is suspended two days and reopens at 13.2: +20% since its last close
    prices = toy_prices([[10, 5], [11, 5], [np.nan, 5.5], [np.nan, 5.5], [13.2, 5.5], [13.2, 6.05]])
    assert np.allclose(prices.last_valid(prices.close)[:, 0], [np.nan, 10, 11, 11, 11, 13.2], equal_nan=True)
    returns = prices.close / prices.last_valid(prices.close) - 1
    assert np.allclose(returns[:, 0], [np.nan, 0.1, np.nan, np.nan, 0.2, 0.0], equal_nan=True, atol=1e-6)
    # held through the suspension, the position earns the 20% (before: the move was counted as 0)
    scores = pd.DataFrame(np.nan, index=prices.dates[1:], columns=prices.codes)  # the backtest's span
    scores.iloc[0] = [1.0, 0.0]  # buy S0 at the close of day 1
    res = cs.bt.run_backtest(scores, pd.DataFrame(returns, index=prices.dates, columns=prices.codes), top=1,
                             hold=4, buy_cost=0.0, sell_cost=0.0)
    assert res.positions["net_return"].tolist() == pytest.approx([0.2], abs=1e-6)
    # S0's resumption counts; S1 trading from its second day on does not (that is a listing, no suspension)
    later_listing = np.array([[np.nan], [np.nan], [0.1], [0.2], [0.0], [0.0]], np.float32)
    panel = dataclasses.replace(planted_panel(days=6, stocks=1), returns=np.hstack([returns[:, :1], later_listing]))
    assert panel.resumptions() == 1


def test_the_ridge_floor_is_fitted_on_training_days_only_and_finds_the_planted_signal():
    cfg = ToyRanking(split_counts=[160, 30, 40], window=5)
    panel = planted_panel()
    split = cs.make_split(panel, cfg.window, cfg.split_counts)
    experiment = cs.Experiment(panel, split, cs.split_days(panel, split, cfg.window))
    cs.fit_scaler(panel, experiment.parts["train"])
    raw, rank = (cs.floor_run(experiment, cfg, label) for label in ("raw", "rank"))
    assert raw.seed == rank.seed == -1 and raw.name == "ridge floor (raw label)"
    coef = raw.extras["coef"]
    assert coef["signal"] > 50 * coef[["noise1", "noise2"]].abs().max()
    assert raw.metrics["IC"] > 0.6 and rank.metrics["IC"] > 0.6
    # labels after the training days change nothing: no look-ahead into validation or test
    panel.label[experiment.parts["valid"].min():] = np.random.default_rng(1).normal(size=(1,))
    again = cs.floor_run(experiment, cfg, "raw")
    assert np.array_equal(again.extras["coef"].to_numpy(), coef.to_numpy())


def test_the_rank_label_is_qlibs_csranknorm_with_ties_averaged():
    label = np.array([[0.03, -0.01, 0.03, np.nan, 0.0]], np.float32)
    exists = np.array([[True, True, True, True, False]])
    ranks = linear.rank_label(label, exists)
    # percentiles 3.5/4... of the 3 valid values: -0.01 -> 1/3, the tied 0.03 -> 2.5/3; missing or absent -> NaN
    assert np.allclose(ranks, [[(2.5 / 3 - 0.5) * 3.46, (1 / 3 - 0.5) * 3.46, (2.5 / 3 - 0.5) * 3.46, np.nan,
                                np.nan]], equal_nan=True)


def test_a_model_trained_on_the_rank_label_sees_ranks_and_is_scored_on_returns():
    cfg = ToyRanking(split_counts=[160, 30, 40], window=5, epochs=1, seeds=[0], train_label="rank")
    panel = planted_panel()
    t = 100
    _, _, _, y, ok = cs.day_batch(panel, t, cfg.window, label="rank")
    expected = (pd.Series(panel.label[t]).rank(pct=True) - 0.5) * 3.46
    assert np.allclose(y.numpy()[ok.numpy()], expected.to_numpy(np.float32))
    split = cs.make_split(panel, cfg.window, cfg.split_counts)
    experiment = cs.Experiment(panel, split, cs.split_days(panel, split, cfg.window))
    cs.fit_scaler(panel, experiment.parts["train"])
    results = cs.run_models(RANKERS, ["GRU"], {"toy": experiment}, cfg, suffix=" (rank label)", **QUIET)
    run = results.runs[0]
    assert run.name == "GRU (rank label)"
    labels = run.predictions["label"].to_numpy()  # the raw next-day returns, not ranks
    test = experiment.parts["test"]
    assert np.allclose(np.sort(labels), np.sort(panel.label[test].ravel()[np.isfinite(panel.label[test].ravel())]))


def test_the_equal_weight_universe_row_earns_the_mean_return_of_the_day_after_fees():
    cfg = ToyRanking(split_counts=[160, 30, 40], window=5, holding_days=1, buy_cost=0.001, sell_cost=0.0)
    panel = planted_panel()
    split = cs.make_split(panel, cfg.window, cfg.split_counts)
    experiment = cs.Experiment(panel, split, cs.split_days(panel, split, cfg.window))
    run = cs.universe_run(experiment, cfg)
    daily = run.backtest.daily["return"]
    # every stock bought at each test day's close and held one day: day d earns the mean return of all stocks on
    # d, less the fee of buying the next tranche (the first day earns nothing yet; the last day buys nothing)
    middle = panel.dates[experiment.parts["test"]][1:-1]
    expected = pd.DataFrame(panel.returns, index=panel.dates).mean(axis=1).loc[middle] - 0.001
    assert np.allclose(daily.loc[middle].to_numpy(), expected.to_numpy(), atol=1e-6)
    assert np.isnan(run.metrics["IC"]) and run.predictions.empty and run.name == cs.UNIVERSE
