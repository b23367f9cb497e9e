"""Paper 002's pipeline on the price-forecast protocol: the daily table, leakage-free datasets, ARIMA,
and the Keras models."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import pytest

from repro import metrics
from repro.models import arima, keras_nets
from repro.papers import p002_keras as kb
from repro.protocols import price_forecast as pf

needs_mirror = pytest.mark.skipif(not os.environ.get("REPRO_DATA_MIRROR"),
                                  reason="reads StockNet and the World Bank from REPRO_DATA_MIRROR")


# --------------------------------------------------------------------------- a synthetic daily table
def synthetic_table(days: int = 120, tickers=("AAA", "BBB")) -> pd.DataFrame:
    """Random-walk prices with the daily table's columns (no data files needed)."""
    rng = np.random.default_rng(1)
    dates = pd.bdate_range("2015-01-02", periods=days)
    frames = []
    for i, t in enumerate(tickers):
        close = 50 * (i + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
        open_ = close * (1 + rng.normal(0, 0.003, days))
        f = pd.DataFrame({"open": open_, "high": close * 1.01, "low": close * 0.99, "close": close,
                          "adj_close": close, "volume": rng.integers(1e6, 2e6, days).astype(float)}, index=dates)
        for col in kb.MACRO_FEATURES:
            f[col] = 1.0 + i
        f[kb.TARGET] = f["open"].shift(-1)
        frames.append(f.assign(ticker=t))
    table = pd.concat(frames)
    table.index.name = "date"
    return table.reset_index().set_index(["ticker", "date"]).sort_index()


FEATURES = kb.PRICE_FEATURES + kb.MACRO_FEATURES


def make_dataset(table, **kw):
    return pf.make_dataset("t", table, FEATURES, kb.TARGET, **{"window": 5, **kw})


def test_dataset_is_chronological_purged_and_scaled_on_training_rows():
    table = synthetic_table()
    ds = make_dataset(table)
    fit, val, test = (ds.part == p for p in ("train", "valid", "test"))
    # parts follow each other in time, and no target reaches into a later part
    assert ds.date[fit].max() < ds.date[val].min() and ds.date[val].max() < ds.date[test].min()
    assert ds.target_date[fit].max() <= ds.split.train[1]
    assert ds.target_date[val].max() <= ds.split.valid[1]
    # 120 dates: 96 train (77 fit + 19 valid) and 24 test; 4 warm-up days per ticker; purged edges
    assert ds.split.table().loc[:, "start"].tolist()[0] == pd.Timestamp("2015-01-02").date()
    assert int(fit.sum()) == 2 * (77 - 4 - 1) and int(val.sum()) == 2 * (19 - 1) and int(test.sum()) == 2 * (24 - 1)
    for t, sc in ds.feature_scalers.items():
        raw = table.loc[t, FEATURES]
        # only rows whose target is inside the training part: not the validation part, not the test part
        assert sc.fitted_dates[1] == raw.index[raw.index < ds.split.train[1]][-1]
        rows = raw.loc[: sc.fitted_dates[1]]
        np.testing.assert_allclose(sc.center_, rows.mean().to_numpy(), rtol=1e-12)
    # every window holds exactly the 5 scaled rows ending at its decision date
    i = int(np.flatnonzero(test)[3])
    t, d = ds.ticker[i], ds.date[i]
    rows = table.loc[t, FEATURES].loc[:d].tail(5).to_numpy(float)
    np.testing.assert_allclose(ds.X[i], ds.feature_scalers[t].transform(rows), atol=1e-5)
    assert ds.y_raw[i] == pytest.approx(table.loc[(t, ds.target_date[i]), "open"])
    assert ds.last_close[i] == pytest.approx(table.loc[(t, d), "close"])


def test_a_date_range_without_data_names_each_tickers_span():
    from repro.data import DateRangeError

    covers = r"covers AAA: 2015-01-02\.\.2015-06-18; BBB: 2015-01-02\.\.2015-06-18\. Choose start/end inside it"
    with pytest.raises(DateRangeError, match=r"0 rows between start=2030-01-01 .* " + covers):
        make_dataset(synthetic_table(), start="2030-01-01", end="2030-12-31")


def test_to_price_inverts_the_scaling_for_both_targets():
    table = synthetic_table()
    for target in ("level", "return"):
        ds = make_dataset(table, target=target)
        test = ds.part == "test"
        # the scaled target is float32 (what the networks train on): exact up to its precision
        np.testing.assert_allclose(ds.to_price(ds.y[test], test), ds.y_raw[test], rtol=1e-6)


def test_scaler_fit_all_sees_the_test_period():
    table = synthetic_table()
    honest = make_dataset(table)
    leaky = make_dataset(table, scaler_fit="all")
    for t in honest.feature_scalers:
        assert leaky.feature_scalers[t].fitted_dates[1] > honest.split.test[0]
        assert honest.feature_scalers[t].fitted_dates[1] < honest.split.test[0]
    with pytest.raises(ValueError, match="scaler_fit"):
        make_dataset(table, scaler_fit="test")


def test_score_per_ticker_mean_and_pooled():
    table = synthetic_table()
    ds = make_dataset(table)
    test = ds.part == "test"
    pred = ds.last_close[test]
    table_ = pf.score(ds, pred)
    for t in ("AAA", "BBB"):
        m = ds.ticker[test] == t
        assert table_.loc[t, "MSE"] == pytest.approx(metrics.mse(ds.y_raw[test][m], pred[m]))
    assert table_.loc["mean", "R2"] == pytest.approx(table_.loc[["AAA", "BBB"], "R2"].mean())
    assert table_.loc["pooled", "R2"] == pytest.approx(metrics.r2(ds.y_raw[test], pred))
    # two price levels (50 and 100): pooling inflates R2 far above the per-ticker mean
    assert table_.loc["pooled", "R2"] > table_.loc["mean", "R2"]
    with pytest.raises(ValueError, match="predictions for"):
        pf.score(ds, pred[:-1])


def test_skill_is_computed_per_ticker_so_a_high_priced_ticker_does_not_dominate():
    # CHEAP (price ~50): the model halves persistence's error; DEAR (~600): it is 10% worse.
    rows = [("persistence (close)", -1, "CHEAP", 1.0), ("persistence (close)", -1, "DEAR", 100.0),
            ("m", 0, "CHEAP", 0.5), ("m", 0, "DEAR", 110.0), ("m", 1, "CHEAP", 0.5), ("m", 1, "DEAR", 110.0),
            ("m", 0, "mean", 55.25), ("m", 0, "pooled", 55.25)]  # summary rows are ignored
    scores = pd.DataFrame(rows, columns=["model", "seed", "ticker", "MSE"]).assign(experiment="e")
    table = pf.skill(scores)
    # per ticker: +0.5 and -0.1, mean +0.2; the dollar-averaged ratio would say 1 - 55.25 / 50.5 = -0.094
    assert table.loc[("e", "m"), "MSE skill vs persistence"] == pytest.approx(0.2)
    assert table.loc[("e", "m"), "std over seeds"] == pytest.approx(0.0)
    assert table.loc[("e", "persistence (close)"), "MSE skill vs persistence"] == 0.0
    per_ticker = pf.skill_per_ticker(scores)
    assert per_ticker.loc[("e", "m")].to_dict() == pytest.approx({"CHEAP": 0.5, "DEAR": -0.1})


# --------------------------------------------------------------------------- real data
@needs_mirror
def test_daily_table_lags_macro_and_targets_next_open():
    table = kb.daily_table(["AAPL"])
    row = table.loc[("AAPL", pd.Timestamp("2014-06-02"))]
    from repro.data import stocknet, wdi

    assert row["gdp_growth"] == pytest.approx(wdi.indicators().loc[2013, "gdp_growth"])  # last year's figure
    px = stocknet.prices("AAPL")
    assert row[kb.TARGET] == pytest.approx(px.loc["2014-06-03", "open"])
    same_year = kb.daily_table(["AAPL"], macro_lag_years=0).loc[("AAPL", pd.Timestamp("2014-06-02"))]
    assert same_year["gdp_growth"] == pytest.approx(wdi.indicators().loc[2014, "gdp_growth"])


@needs_mirror
def test_tweet_features_count_every_tweet_but_score_a_sample():
    from repro.text.sentiment import VaderScorer

    table = kb.daily_table(["MSFT"])
    items = kb.tweet_items(["MSFT"], VaderScorer(), max_per_day=1)
    assert len(items) == 3_601 and items["scored"].sum() == items.groupby("date").ngroups
    out = kb.add_text_features(table, items)
    feats = out.loc["MSFT"].loc["2014-03-03":"2016-03-31"]
    assert feats["trend"].between(0, 100).all() and feats["trend"].max() == 100
    assert feats["weekly_sentiment_score"].between(-1, 1).all()
    assert kb.tweet_span(items) == (pd.Timestamp("2014-01-01"), pd.Timestamp("2016-03-31"))
    # a window without a scored tweet is unknown, not neutral
    silent = feats["sentiment_known"] == 0
    assert silent.any() and (feats.loc[silent, "weekly_sentiment_score"] == 0).all()
    assert set(feats["sentiment_known"].unique()) == {0.0, 1.0}


@needs_mirror
def test_a_ticker_without_tweets_runs_on_prices_and_says_so():
    cfg, notes = kb.resolve_text(kb.Config(tickers=["GMRE"]))
    assert cfg.experiments == ["numeric_full"] and not kb.needs_text(cfg)
    assert notes == ["No tweets upstream for GMRE: the experiments that need them (numeric, sentiment) are "
                     "replaced by numeric_full (prices and macro data over the whole price span)."]
    data = kb.datasets(cfg, kb.daily_table(cfg.tickers), kb.periods(cfg, None))
    assert list(data) == ["numeric_full"] and set(data["numeric_full"].ticker) == {"GMRE"}
    assert (data["numeric_full"].part == "test").sum() > 50
    # with a ticker that has tweets, the text experiments pool that one only
    mixed, notes = kb.resolve_text(kb.Config(tickers=["AAPL", "GMRE"]))
    assert mixed.experiments == ["numeric", "sentiment"] and mixed.text_tickers == ["AAPL"]
    assert notes == ["No tweets upstream for GMRE: the experiments that need them (numeric, sentiment) pool AAPL "
                     "only."]
    table = kb.daily_table(mixed.tickers).assign(trend=0.0, weekly_sentiment_score=0.0, sentiment_known=0.0)
    period = {"numeric": ("2014-01-02", "2015-12-31"), "sentiment": ("2014-01-02", "2015-12-31")}
    assert {name: set(ds.ticker) for name, ds in kb.datasets(mixed, table, period).items()} == {
        "numeric": {"AAPL"}, "sentiment": {"AAPL"}}


def test_the_sentiment_effect_is_paired_on_the_hyperparameters_tuned_without_it(monkeypatch):
    numeric = make_dataset(synthetic_table())
    data = {"numeric": dataclasses.replace(numeric, name="numeric"),
            "sentiment": dataclasses.replace(numeric, name="sentiment")}
    tuned = pf.Tuned({("numeric", "cnn"): {"filters": 8}, ("sentiment", "cnn"): {"filters": 64}}, pd.DataFrame())
    used = []

    def fake_fit(model, values, cfg, without=(), label=None):
        used.append(values)

        def fit(ds, seed):  # exact with the column, off by a seeded error without it
            test = ds.mask("test")
            noise = 0.0 if ds.name == kb.SAME_HP else np.random.default_rng(seed).normal(0, 0.5, int(test.sum()))
            return pf.Fitted({label or model: ds.y[test] + noise}, 1)
        return fit

    monkeypatch.setattr(kb, "keras_fit", fake_fit)
    cfg = kb.Config(models=["cnn"], seeds=[0, 1])
    collector = pf.Collector()
    collector.add(*pf.fit_seeds(data["numeric"], fake_fit("cnn", {}, cfg), cfg.seeds))
    used.clear()
    verdict = kb.same_hp_sentiment(cfg, data, tuned, collector)
    assert used == [{"filters": 8}]  # numeric's hyper-parameters, not sentiment's
    assert verdict.index.tolist() == [("cnn", "AAA"), ("cnn", "BBB")]
    assert (verdict["verdict"] == "better").all() and (verdict["MSE"] < 1e-12).all()
    assert kb.same_hp_sentiment(kb.Config(models=["cnn"], experiments=["sentiment"]), data, tuned, collector) is None


# --------------------------------------------------------------------------- ARIMA
def ar1(n: int = 160, phi: float = 0.7, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    for t in range(1, n):
        y[t] = phi * y[t - 1] + rng.normal()
    return y + 100


def test_arima_one_step_uses_only_the_past_and_multi_step_none_of_the_test():
    y = ar1()
    train, ev = y[:120], y[120:].copy()
    base = arima.forecasts(train, ev, (1, 0, 1))
    ev[10:] += 50.0  # change the test series from its 11th value on
    moved = arima.forecasts(train, ev, (1, 0, 1))
    np.testing.assert_allclose(base["one_step"][:11], moved["one_step"][:11])  # forecast of y[10] uses y[<10]
    assert not np.allclose(base["one_step"][11:], moved["one_step"][11:])
    np.testing.assert_allclose(base["multi_step"], moved["multi_step"])


def test_arima_grid_and_best_order():
    y = ar1(seed=2)
    errors, paths = arima.grid(y[:120], y[120:], [(1, 0, 0), (1, 1, 1)])
    assert set(errors["mode"]) == {"one_step", "multi_step"} and len(paths) == 4
    one = errors[errors["mode"] == "one_step"].set_index("order")["mse"]
    assert arima.best_order(errors) == one.idxmin()
    assert one[(1, 0, 0)] == pytest.approx(np.mean((y[120:] - paths[((1, 0, 0), "one_step")]) ** 2))


# --------------------------------------------------------------------------- Keras models
@pytest.fixture(scope="module")
def tiny_xy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5, 3)).astype("float32")
    y = (X[:, -1, 0] * 0.5 + rng.normal(0, 0.1, 64)).astype("float32")
    return X, y


@pytest.mark.parametrize("name", keras_nets.MODELS)
def test_every_model_builds_with_the_papers_best_hyperparameters(name, tiny_xy):
    X, _ = tiny_xy
    model = keras_nets.BUILDERS[name](keras_nets.fixed_hp(keras_nets.PAPER_BEST[name]), X.shape[1:])
    assert model.predict(X, verbose=0).shape == (64, 1)
    assert type(model.optimizer).__name__.lower() == keras_nets.PAPER_BEST[name]["optimizer"]


def test_hybrid_ablation_removes_exactly_one_part(tiny_xy):
    X, _ = tiny_xy
    hp = keras_nets.PAPER_BEST["hybrid"]
    kinds = lambda m: sorted(type(layer).__name__ for layer in m.layers)  # noqa: E731
    full = kinds(keras_nets.build_hybrid(keras_nets.fixed_hp(hp), X.shape[1:]))
    assert {"Conv1D", "Bidirectional", "MultiHeadAttention"} <= set(full)
    for part, layer in (("cnn", "Conv1D"), ("bilstm", "Bidirectional"), ("attention", "MultiHeadAttention")):
        got = kinds(keras_nets.build_hybrid(keras_nets.fixed_hp(hp), X.shape[1:], without=(part,)))
        assert layer not in got and len(got) < len(full)


def test_tuning_completes_its_trials_and_fits_are_deterministic(tiny_xy):
    X, y = tiny_xy
    res = keras_nets.tune("cnn", X[:48], y[:48], X[48:], y[48:], trials=2, epochs=2, seed=0)
    assert len(res.trials) == 2 and set(res.trials["status"]) == {"COMPLETED"}
    assert set(keras_nets.PAPER_BEST["cnn"]) == set(res.best)
    assert res.trials["val_loss"].min() == pytest.approx(
        res.trials.loc[res.trials["val_loss"].idxmin(), "val_loss"])
    a = keras_nets.fit_predict("hybrid", keras_nets.PAPER_BEST["hybrid"], X[:48], y[:48], X[48:], y[48:], X,
                               seed=5, epochs=2)
    b = keras_nets.fit_predict("hybrid", keras_nets.PAPER_BEST["hybrid"], X[:48], y[:48], X[48:], y[48:], X,
                               seed=5, epochs=2)
    np.testing.assert_array_equal(a.pred, b.pred)
    np.testing.assert_array_equal(a.pred_gbr, b.pred_gbr)
    c = keras_nets.fit_predict("hybrid", keras_nets.PAPER_BEST["hybrid"], X[:48], y[:48], X[48:], y[48:], X,
                               seed=6, epochs=2)
    assert not np.array_equal(a.pred, c.pred)


def test_a_reused_traced_model_fits_bit_for_bit_like_a_fresh_one(tiny_xy):
    """fit_predict re-initialises an already-traced model for a later seed (weights, dropout seed states, optimizer
    moments and step): every prediction must equal a fresh build's, whatever ran before it."""
    X, y = tiny_xy
    hp = keras_nets.PAPER_BEST["bilstm"]  # dropout 0.5 and 0.1: the seed generators matter
    args = (X[:40], y[:40], X[40:], y[40:], X)
    kw = dict(epochs=4, patience=1)
    fresh = {s: keras_nets.fit_predict("bilstm", hp, *args, seed=s, reuse=False, **kw) for s in (0, 1)}
    keras_nets.clear_traced_models()
    first = keras_nets.fit_predict("bilstm", hp, *args, seed=1, **kw)
    (model, _), = keras_nets._TRACED.values()
    keras_nets.fit_predict("cnn", keras_nets.PAPER_BEST["cnn"], *args, seed=0, **kw)  # another model in between
    again = {s: keras_nets.fit_predict("bilstm", hp, *args, seed=s, **kw) for s in (0, 1)}
    assert len(keras_nets._TRACED) == 2 and model in [m for m, _ in keras_nets._TRACED.values()]
    assert not np.array_equal(fresh[0].pred, fresh[1].pred)
    for res in (first, again[1]):
        np.testing.assert_array_equal(res.pred, fresh[1].pred)
        assert res.epochs == fresh[1].epochs
    np.testing.assert_array_equal(again[0].pred, fresh[0].pred)
    keras_nets.clear_traced_models()


def test_failed_trials_are_an_error_not_a_best_value(tiny_xy, monkeypatch):
    """keras-tuner catches errors inside a trial's fit (a missing tensorboard, say), marks the trial
    FAILED and still reports "best" values; tune() must refuse them."""
    X, y = tiny_xy
    build_cnn = keras_nets.BUILDERS["cnn"]

    def fails_while_fitting(hp, shape):
        model = build_cnn(hp, shape)

        def loss(y_true, y_pred):
            raise ImportError("simulated: No module named 'tensorboard'")

        model.compile(optimizer="adam", loss=loss)
        return model

    monkeypatch.setitem(keras_nets.BUILDERS, "cnn", fails_while_fitting)
    with pytest.raises(keras_nets.TuningError, match=r"2 of 2 Keras Tuner trials for cnn did not complete.*tensorboard"):
        keras_nets.tune("cnn", X[:48], y[:48], X[48:], y[48:], trials=2, epochs=1, seed=0)
