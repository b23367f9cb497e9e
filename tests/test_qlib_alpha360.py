"""qlib's Alpha360 recipe on our data (repro.protocols.qlib_alpha360): label, rows, processors, models, metrics.

Synthetic panels with hand-computed expectations, plus one small run on the data mirror.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np
import pandas as pd
import pytest

from repro.data import cn_qlib
from repro.protocols import qlib_alpha360 as q
from repro.protocols.cross_section import Prices

needs_mirror = pytest.mark.skipif(not os.environ.get("REPRO_DATA_MIRROR"),
                                  reason="reads the China A-share data from REPRO_DATA_MIRROR")

#: A short synthetic calendar (business days) and segments inside it.
DATES = pd.bdate_range("2014-01-01", "2015-06-30")
SMALL = q.Settings(train=("2014-01-01", "2014-09-30"), valid=("2014-10-01", "2014-12-31"),
                   test=("2015-01-01", "2015-06-24"))


def synthetic_prices(dates: pd.DatetimeIndex = DATES, stocks: int = 6, seed: int = 0) -> Prices:
    """Random-walk OHLCV with an adjustment factor that changes once per stock, and one suspension."""
    rng = np.random.default_rng(seed)
    T = len(dates)
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, (T, stocks)), axis=0))
    high = close * (1 + rng.uniform(0, 0.02, (T, stocks)))
    low = close * (1 - rng.uniform(0, 0.02, (T, stocks)))
    open_ = low + (high - low) * rng.uniform(size=(T, stocks))
    volume = rng.uniform(1e5, 1e6, (T, stocks))
    factor = np.ones((T, stocks))
    factor[T // 2:] = 1.5  # a split: adjusted prices continue, raw volume jumps
    arrays = [a.astype(np.float32) for a in (open_, high, low, close, volume, factor)]
    for a in arrays[:5]:
        a[100:103, 0] = np.nan  # stock 0 suspended for three days (NaN in every price field)
    return Prices("toy", dates, [f"S{i}" for i in range(stocks)], *arrays)


def toy_data(prices: Prices | None = None, settings: q.Settings = SMALL, member: np.ndarray | None = None) -> q.Data:
    prices = prices or synthetic_prices()
    member = np.ones(prices.close.shape, bool) if member is None else member
    return q.make_data(prices, member, settings)


# --------------------------------------------------------------------------- label and rows
def test_label_is_close_t2_over_close_t1_stamped_at_t():
    close = np.array([[10.0], [11.0], [12.1], [12.0], [15.0], [np.nan], [16.0], [17.0]], np.float32)
    got = q.qlib_label(close)[:, 0]
    expected = [12.1 / 11 - 1, 12 / 12.1 - 1, 15 / 12 - 1, np.nan, np.nan, 17 / 16 - 1, np.nan, np.nan]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7, equal_nan=True)  # float32 prices
    # the same through make_data, on the loader's adjusted close
    prices = synthetic_prices()
    data = toy_data(prices)
    c = prices.close.astype(np.float64)
    np.testing.assert_allclose(data.label[:-2], c[2:] / c[1:-1] - 1, rtol=0, atol=1e-7, equal_nan=True)
    assert np.isnan(data.label[-2:]).all()
    # stock 0 is suspended on days 100-102: the labels of days 98-101 need one of those closes
    assert np.isnan(data.label[98:102, 0]).all() and np.isfinite(data.label[[97, 102], 0]).all()


def test_segment_boundaries_history_and_purge():
    data = toy_data()
    seg = q.build_segments(data, SMALL)
    days = {name: s.days for name, s in seg.items()}
    # train: its first day has 60 days of data behind it (full_history); its last two days are purged
    assert days["train"][0] == DATES[59]
    assert days["train"][-1] == DATES[DATES <= "2014-09-30"][-3]
    assert days["valid"][0] == pd.Timestamp("2014-10-01") and days["valid"][-1] == DATES[DATES <= "2014-12-31"][-3]
    # test: first day after valid, last day its end (the data goes on, so its labels exist); nothing purged
    assert days["test"][0] == pd.Timestamp("2015-01-01") and days["test"][-1] == pd.Timestamp("2015-06-24")
    assert seg["test"].labelled.all()
    # every label of a train or valid row ends inside its segment
    for name in ("train", "valid"):
        s = seg[name]
        assert data.dates[s.day.max() + 2] <= pd.Timestamp(getattr(SMALL, name)[1])
    # without purge and history the segments run to the configured dates
    loose = dataclasses.replace(SMALL, purge=False, full_history=False)
    seg2 = q.build_segments(data, loose)
    assert seg2["train"].days[0] == DATES[0] and seg2["train"].days[-1] == DATES[DATES <= "2014-09-30"][-1]
    # every (day, stock) of a segment once, day-major
    s = seg["train"]
    assert len(s) == len(days["train"]) * 6 and (np.diff(s.day) >= 0).all()


def test_default_segments_are_qlibs_test_and_valid_with_our_first_year():
    seg = q.Settings().segments()
    assert seg == {"train": (pd.Timestamp("2010-01-01"), pd.Timestamp("2014-12-31")),
                   "valid": (pd.Timestamp("2015-01-01"), pd.Timestamp("2016-12-31")),
                   "test": (pd.Timestamp("2017-01-01"), pd.Timestamp("2020-08-01"))}
    with pytest.raises(ValueError, match="ordered and disjoint"):
        q.Settings(valid=("2014-06-01", "2016-12-31")).segments()


def test_rows_follow_membership_and_rows_without_label_are_dropped_for_training():
    prices = synthetic_prices()
    member = np.ones(prices.close.shape, bool)
    member[:150, 5] = False  # stock 5 joins the index on day 150
    seg = q.build_segment(toy_data(prices, member=member), SMALL, "train")
    assert not ((seg.stock == 5) & (seg.day < 150)).any() and ((seg.stock == 5) & (seg.day >= 150)).any()
    # stock 0's suspension: its rows stay (qlib keeps member rows), features all NaN on suspended days ...
    sus = (seg.stock == 0) & (seg.day >= 100) & (seg.day <= 102)
    assert sus.sum() == 3 and np.isnan(seg.x[sus]).all()
    # ... and the days whose label needs a suspended close have no label: no rank label, not trained on
    nolab = (seg.stock == 0) & (seg.day >= 98) & (seg.day <= 101)
    assert (~seg.labelled[nolab]).all() and np.isnan(seg.rank_label[nolab]).all()
    assert seg.labelled.sum() == len(seg) - 4 and np.isfinite(seg.rank_label[seg.labelled]).all()
    traded = q.build_segment(toy_data(prices, member=member), dataclasses.replace(SMALL, traded_only=True), "train")
    assert len(traded) == len(seg) - 3


# --------------------------------------------------------------------------- features
def test_alpha360_rows_are_qlibs_expressions_in_qlibs_column_order():
    prices = synthetic_prices()
    data = toy_data(prices)
    seg = q.build_segment(data, SMALL, "valid")
    names = q.feature_names("typical")
    assert seg.features == names and len(names) == 360 and seg.x.shape == (len(seg), 360)
    assert names[:2] == ["CLOSE59", "CLOSE58"] and names[59] == "CLOSE0" and names[240] == "VWAP59"
    assert names[-1] == "VOLUME0"
    o, h, lo, c = (getattr(prices, f).astype(np.float64) for f in ("open", "high", "low", "close"))
    vol = prices.volume.astype(np.float64) / prices.factor  # qlib's adjusted volume
    for r in (0, 7, len(seg) - 1):
        t, n = seg.day[r], seg.stock[r]
        row = dict(zip(names, seg.x[r].astype(np.float64)))
        for lag in (0, 5, 59):
            np.testing.assert_allclose(row[f"CLOSE{lag}"], c[t - lag, n] / c[t, n], rtol=1e-6)
            np.testing.assert_allclose(row[f"OPEN{lag}"], o[t - lag, n] / c[t, n], rtol=1e-6)
            vwap = (h[t - lag, n] + lo[t - lag, n] + c[t - lag, n]) / 3  # the typical price stands in for vwap
            np.testing.assert_allclose(row[f"VWAP{lag}"], vwap / c[t, n], rtol=1e-6)
            np.testing.assert_allclose(row[f"VOLUME{lag}"], vol[t - lag, n] / (vol[t, n] + 1e-12), rtol=1e-6)
    # across the split (factor 1 -> 1.5 at day T//2) the adjusted volume ratio differs from the raw one
    t = len(DATES) // 2 + 3
    (r,) = np.nonzero((seg.day == t) & (seg.stock == 1))[0]
    raw = prices.volume[t - 5, 1] / prices.volume[t, 1]
    np.testing.assert_allclose(seg.x[r, names.index("VOLUME5")], raw * 1.5, rtol=1e-5)


def test_features_and_labels_of_training_rows_ignore_later_prices():
    prices = synthetic_prices()
    before = q.build_segment(toy_data(prices), SMALL, "train")
    later = np.asarray(DATES >= pd.Timestamp("2014-10-01"))
    for f in ("open", "high", "low", "close", "volume"):
        getattr(prices, f)[later] *= np.float32(3.0)
    after = q.build_segment(toy_data(prices), SMALL, "train")
    np.testing.assert_array_equal(before.x, after.x)
    np.testing.assert_array_equal(before.label, after.label)


# --------------------------------------------------------------------------- processors
def test_cs_rank_norm_is_qlibs_per_day_pct_rank_minus_half_times_3_46():
    values = np.array([0.3, 5.0, -0.1, 0.2, np.nan, 0.2, -5.0, 1.0])
    day = np.array([0, 1, 0, 0, 0, 0, 1, 1])
    got = q.cs_rank_norm(values, day)
    # day 0: -0.1 < 0.2 = 0.2 < 0.3, four values -> pct 1/4, 2.5/4, 2.5/4, 4/4; day 1: -5 < 1 < 5 -> 1/3, 2/3, 1
    pct = np.array([1.0, 1.0, 0.25, 0.625, np.nan, 0.625, 1 / 3, 2 / 3])
    np.testing.assert_allclose(got, (pct - 0.5) * 3.46, rtol=1e-6, equal_nan=True)
    assert got.dtype == np.float32


def test_normaliser_is_fitted_on_training_rows_only():
    prices = synthetic_prices()
    data = toy_data(prices)
    seg = q.build_segments(data, SMALL)
    scaler = q.fit_normaliser(seg["train"])
    x = seg["train"].x.astype(np.float64)
    median = np.nanmedian(x, axis=0)
    np.testing.assert_allclose(scaler.center_, median, rtol=1e-12)
    mad = np.nanmedian(np.abs(x - median), axis=0)
    varying = mad > 0
    np.testing.assert_allclose(scaler.scale_[varying], 1.4826 * mad[varying], rtol=1e-12)
    z = q.normalise(scaler, seg["train"].x)
    expected = np.nan_to_num(np.clip((x - median) / np.where(varying, 1.4826 * mad, 1.0), -3, 3), nan=0.0)
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-6)
    assert np.isfinite(z).all() and np.abs(z).max() == 3.0
    assert (z[:, q.feature_names().index("CLOSE0")] == 0).all()  # constant 1: at the median
    assert scaler.fitted_dates == (seg["train"].days[0], seg["train"].days[-1])
    # wild prices after the training period change nothing in the transform of training rows ...
    later = np.asarray(DATES >= pd.Timestamp("2014-10-01"))
    for f, k in (("close", 4.0), ("high", 4.4), ("low", 3.0), ("volume", 50.0)):
        getattr(prices, f)[later] *= np.float32(k)
    seg2 = q.build_segments(toy_data(prices), SMALL)
    z2 = q.normalise(q.fit_normaliser(seg2["train"]), seg2["train"].x)
    np.testing.assert_array_equal(z, z2)
    # ... while a fit that also saw the test rows (the leak) would move them
    leaky = q.Scaler("robust", clip=3.0).fit(np.concatenate([seg2["train"].x, seg2["test"].x]))
    assert not np.allclose(q.normalise(leaky, seg2["train"].x), z)


# --------------------------------------------------------------------------- models
def planted_segments(days: int = 320, stocks: int = 60, features: int = 12, seed: int = 0) -> dict[str, q.Segment]:
    """Long rows whose label is the first feature plus noise (cross-sectional signal), split 200 / 60 / 60 days."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=days)
    codes = [f"S{i:02d}" for i in range(stocks)]
    day, stock = np.divmod(np.arange(days * stocks), stocks)
    x = rng.normal(size=(days * stocks, features)).astype(np.float32)
    x[rng.uniform(size=x.shape) < 0.02] = np.nan  # missing values, as in Alpha360
    label = (0.02 * np.nan_to_num(x[:, 0]) + 0.02 * rng.normal(size=len(day))).astype(np.float32)
    label[rng.uniform(size=len(day)) < 0.03] = np.nan
    names = [f"F{i}" for i in range(features)]
    out = {}
    for name, (lo, hi) in {"train": (0, 200), "valid": (200, 260), "test": (260, days)}.items():
        m = (day >= lo) & (day < hi)
        out[name] = q.Segment(name, dates, codes, day[m], stock[m], x[m], label[m],
                              q.cs_rank_norm(label[m], day[m]), names)
    return out


FAST = q.Settings(num_boost_round=60, early_stopping_rounds=10, num_threads=2)


def test_lightgbm_recovers_a_planted_signal_and_is_deterministic():
    seg = planted_segments()
    fit = q.fit_lightgbm(seg["train"], seg["valid"], FAST, seed=0)
    assert 1 <= fit.best_iteration <= 60 and len(fit.valid_l2) >= fit.best_iteration
    assert fit.valid_l2[fit.best_iteration - 1] == min(fit.valid_l2)
    scores = fit.predict(seg["test"].x)
    assert scores.shape == (len(seg["test"]),)
    ic = q.mean_daily_ic(scores, seg["test"])
    assert ic > 0.5, ic  # label = signal + equal noise: IC about 0.7
    again = q.fit_lightgbm(seg["train"], seg["valid"], FAST, seed=0)
    np.testing.assert_array_equal(again.predict(seg["test"].x), scores)  # bit for bit
    assert again.booster.model_to_string() == fit.booster.model_to_string()


def test_lightgbm_gets_qlibs_published_hyper_parameters():
    params = q.lightgbm_params(q.Settings(num_threads=2), seed=7)
    assert {k: params[k] for k in q.LGB_PARAMS} == {
        "objective": "mse", "colsample_bytree": 0.8879, "learning_rate": 0.0421, "subsample": 0.8789,
        "lambda_l1": 205.6999, "lambda_l2": 580.9768, "max_depth": 8, "num_leaves": 210}
    assert params["seed"] == 7 and params["deterministic"] is True and params["num_threads"] == 2
    assert (q.NUM_BOOST_ROUND, q.EARLY_STOPPING_ROUNDS) == (1000, 50)


def test_ridge_is_closed_form_without_intercept_and_picks_its_penalty_on_validation():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 4))
    y = x @ np.array([1.0, -2.0, 0.0, 0.5]) + rng.normal(0, 0.1, 500)
    got = q.ridge_coefficients(x.astype(np.float32), y, [0.0, 0.1], batch=64)
    for p, coef in got.items():
        expected = np.linalg.solve(x.T @ x + p * 500 * np.eye(4), x.T @ y)  # alpha = penalty x rows
        np.testing.assert_allclose(coef, expected, rtol=1e-5)
    seg = planted_segments()
    scaler = q.fit_normaliser(seg["train"])
    xs = {k: q.normalise(scaler, s.x) for k, s in seg.items()}
    fit = q.fit_ridge(seg["train"], seg["valid"], xs["train"], xs["valid"], (1e-3, 1e3))
    assert set(fit.valid_ic) == {1e-3, 1e3} and fit.penalty == max(fit.valid_ic, key=fit.valid_ic.get)
    assert q.mean_daily_ic(fit.predict(xs["test"]), seg["test"]) > 0.5
    assert np.argmax(np.abs(fit.coef)) == 0


# --------------------------------------------------------------------------- evaluation
def test_summary_t_statistics_and_the_table_beside_qlib():
    daily = pd.DataFrame({"model": ["LightGBM"] * 3 + ["Ridge"] * 3, "seed": [0] * 3 + [-1] * 3,
                          "datetime": list(pd.bdate_range("2017-01-03", periods=3)) * 2,
                          "IC": [0.1, 0.2, 0.3, 0.0, 0.02, 0.04], "RankIC": [0.2, 0.2, 0.5, 0.1, 0.1, 0.1]})
    table = q.summary(daily)
    assert table.loc["LightGBM", "IC"] == pytest.approx(0.2)
    assert table.loc["LightGBM", "ICIR"] == pytest.approx(2.0)  # 0.2 / 0.1
    assert table.loc["LightGBM", "t(IC)"] == pytest.approx(2.0 * np.sqrt(3))
    assert table.loc["Ridge", "Rank IC"] == pytest.approx(0.1) and table.loc["LightGBM", "days"] == 3
    side = q.beside_qlib(table)
    assert side.loc["LightGBM", "IC (qlib)"] == 0.0400 and side.loc["LightGBM", "Rank IC (qlib)"] == 0.0499
    assert side.loc["LightGBM", "ICIR (qlib)"] == 0.3037 and np.isnan(side.loc["Ridge", "IC (qlib)"])
    assert "d5379c52" in side.attrs["source"]
    pub = q.published()
    assert pub.loc["HIST", ["IC", "Rank IC"]].tolist() == [0.0522, 0.0667]
    assert pub.loc["GRU", ["IC", "Rank IC"]].tolist() == [0.0493, 0.0584] and len(pub) == 21


def test_prediction_frame_is_long_and_aligned():
    seg = planted_segments()["test"]
    frame = seg.frame(np.arange(len(seg), dtype=float), model="m", seed=3)
    assert list(frame.columns) == ["model", "seed", "datetime", "instrument", "score", "label"]
    r = 17
    assert frame.loc[r, "datetime"] == seg.dates[seg.day[r]] and frame.loc[r, "instrument"] == seg.codes[seg.stock[r]]
    assert frame.loc[r, "score"] == r and frame["label"].isna().sum() == (~seg.labelled).sum()


# --------------------------------------------------------------------------- the data mirror
@needs_mirror
def test_a_small_point_in_time_run_on_the_mirror():
    # qlib's L1 / L2 penalties (206 / 581) forbid every split on a sample this small (LightGBM then scores
    # every stock alike and the daily IC is undefined), so this run uses light ones
    settings = q.Settings(max_stocks=40, train=("2011-07-01", "2012-06-30"), valid=("2012-07-01", "2012-09-30"),
                          test=("2012-10-01", "2012-12-31"), num_boost_round=20, early_stopping_rounds=5,
                          lgb_params={**q.LGB_PARAMS, "lambda_l1": 0.0, "lambda_l2": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # members without data here are dropped with a warning
        data = q.load(settings)
    assert data.base.shape == (len(data.dates), 40, 6) and data.dates[0] < pd.Timestamp("2011-07-01")
    # point in time: every row is a member on its day
    seg = q.build_segments(data, settings)
    mask = cn_qlib.membership_mask("csi300", data.dates, data.codes).to_numpy()
    for s in seg.values():
        assert s.x.shape == (len(s), 360) and s.x.dtype == np.float32
        assert mask[s.day, s.stock].all()
        assert np.isfinite(s.rank_label[s.labelled]).all() and np.isnan(s.rank_label[~s.labelled]).all()
        traded = data.traded[s.day, s.stock]
        np.testing.assert_array_equal(s.x[traded, q.feature_names().index("CLOSE0")], 1.0)
        assert not np.isinf(s.x).any()
    assert seg["train"].days[0] == pd.Timestamp("2011-07-01") and seg["test"].days[-1] == pd.Timestamp("2012-12-31")
    # the label of one row from the loader's closes: close[t+2] / close[t+1] - 1
    cube, dates, _, _ = cn_qlib.load_array([data.codes[0]], ("close",), data.dates[0], data.dates[-1])
    s = seg["test"]
    r = np.nonzero((s.stock == 0) & s.labelled)[0][0]
    t = s.day[r]
    np.testing.assert_allclose(s.label[r], cube[t + 2, 0, 0] / cube[t + 1, 0, 0] - 1, rtol=1e-6)
    # no NaN reaches the normalised features; the run gives one score per test row and finite ICs
    scaler = q.fit_normaliser(seg["train"])
    assert all(np.isfinite(q.normalise(scaler, s.x)).all() for s in seg.values())
    res = q.run(settings, data=data, log=lambda *_: None)
    assert len(res.predictions) == 2 * len(seg["test"]) and res.predictions["score"].notna().all()
    assert set(res.summary.index) == {"LightGBM", "Ridge"} and np.isfinite(res.summary[["IC", "t(IC)"]]).all().all()
    assert res.summary["days"].eq(len(seg["test"].days)).all()
    assert list(res.timings.index[:2]) == ["load", "features"] and res.peak_memory_mb > 0
