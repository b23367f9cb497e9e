"""Tests for repro.features: splits, windows, scalers, indicators, labels, Alpha360, and
the look-ahead check -- which must pass every causal feature and catch leaky ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repro.features import (
    DateSplit,
    LookAheadError,
    Scaler,
    alpha360,
    alpha360_base,
    alpha_fields,
    assert_no_lookahead,
    bollinger,
    cs_rank,
    cs_zscore,
    cs_zscore_array,
    ema,
    forward_return,
    indicator_frame,
    log_returns,
    macd,
    make_windows,
    panel_windows,
    returns,
    rsi,
    sliding_windows,
    sma,
    split_by_counts,
    split_by_dates,
    split_by_fraction,
    volatility,
)
from repro.models.naive import momentum


# --------------------------------------------------------------------------- data
def make_ohlcv(n: int = 120, seed: int = 0, start: str = "2021-01-04") -> pd.DataFrame:
    """One stock's daily OHLCV (+ qlib-style adjustment factor) with integer volume."""
    rng = np.random.default_rng(seed)
    close = 20 * np.exp(np.cumsum(rng.normal(0.0005, 0.02, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    volume = rng.integers(100_000, 2_000_000, n)  # int64, as the loaders deliver it
    factor = np.full(n, 1.37)
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume,
                         "factor": factor}, index=pd.bdate_range(start, periods=n, name="date"))


@pytest.fixture
def ohlcv():
    return make_ohlcv()


@pytest.fixture
def closes():
    """Closes of three stocks (dates x stocks)."""
    return pd.DataFrame({f"s{i}": make_ohlcv(90, seed=i)["close"] for i in range(3)})


# --------------------------------------------------------------------------- splits
D100 = pd.bdate_range("2020-01-01", periods=100)


def panel_dates(dates, reps=3, seed=0):
    """Dates as a long panel index carries them: repeated per stock, not sorted."""
    rng = np.random.default_rng(seed)
    return pd.DatetimeIndex(np.repeat(dates, reps)[rng.permutation(len(dates) * reps)])


def test_split_by_fraction_80_20():
    sp = split_by_fraction(panel_dates(D100), 0.8)
    assert sp.train == (D100[0], D100[79])
    assert sp.valid is None
    assert sp.test == (D100[80], D100[99])
    assert list(sp.ranges()) == ["train", "test"]


def test_split_by_fraction_valid_carved_from_train_end():
    sp = split_by_fraction(D100, 0.8, valid=0.1)  # 80 fit days, the last 8 of them validate
    assert sp.train == (D100[0], D100[71])
    assert sp.valid == (D100[72], D100[79])
    assert sp.test == split_by_fraction(D100, 0.8).test == (D100[80], D100[99])
    assert list(sp.ranges()) == ["train", "valid", "test"]


@pytest.mark.parametrize("kw", [dict(train=1.0), dict(train=0.0), dict(train=0.8, valid=1.0),
                                dict(train=0.8, valid=-0.1)])
def test_split_by_fraction_rejects_bad_fractions(kw):
    with pytest.raises(ValueError, match="fractions"):
        split_by_fraction(D100, **kw)


def test_split_by_fraction_rejects_too_few_dates():
    with pytest.raises(ValueError, match="too few"):
        split_by_fraction(D100[:3], 0.9)             # 3 fit days leave no test day
    with pytest.raises(ValueError, match="too few"):
        split_by_fraction(D100[:10], 0.8, valid=0.05)  # round(8 x 0.05) = 0 validation days


DYEAR = pd.bdate_range("2020-01-01", "2020-12-31")


def test_split_by_dates_three_way():
    sp = split_by_dates(panel_dates(DYEAR), "2020-06-30", "2020-09-30")
    assert sp.train == (pd.Timestamp("2020-01-01"), pd.Timestamp("2020-06-30"))
    assert sp.valid == (pd.Timestamp("2020-07-01"), pd.Timestamp("2020-09-30"))
    assert sp.test == (pd.Timestamp("2020-10-01"), pd.Timestamp("2020-12-31"))


def test_split_by_dates_boundaries_off_trading_days():
    # 2020-06-28 is a Sunday: training ends Friday 26th, testing starts Monday 29th
    sp = split_by_dates(DYEAR, "2020-06-28", test_end="2020-11-29")
    assert sp.train == (pd.Timestamp("2020-01-01"), pd.Timestamp("2020-06-26"))
    assert sp.valid is None
    assert sp.test == (pd.Timestamp("2020-06-29"), pd.Timestamp("2020-11-27"))


@pytest.mark.parametrize("args, match", [
    (("2020-09-30", "2020-06-30"), "increase"),
    (("2020-06-30", "2020-06-30"), "increase"),
    (("2020-06-30", "2020-12-31", "2021-03-31"), "empty"),   # nothing left after valid_end
    (("2020-12-31",), "nothing left"),                        # no test day
    (("2019-06-30",), "no dates up to"),                      # train_end before the data
    (("2020-06-30", None, "2020-03-31"), "nothing left"),     # test_end before train_end
])
def test_split_by_dates_errors(args, match):
    with pytest.raises(ValueError, match=match):
        split_by_dates(DYEAR, *args)


D12 = pd.bdate_range("2022-01-03", periods=12)


def test_split_by_counts_uses_last_days():
    sp = split_by_counts(panel_dates(D12), (5, 2, 3))  # last 10 of 12 days
    assert sp.train == (D12[2], D12[6])
    assert sp.valid == (D12[7], D12[8])
    assert sp.test == (D12[9], D12[11])
    no_valid = split_by_counts(D12, (5, 0, 3))
    assert no_valid.valid is None
    assert no_valid.train == (D12[4], D12[8]) and no_valid.test == (D12[9], D12[11])


@pytest.mark.parametrize("counts, match", [((10, 2, 3), "15 days requested"), ((0, 2, 3), "counts"),
                                           ((5, -1, 3), "counts"), ((5, 2, 0), "counts")])
def test_split_by_counts_errors(counts, match):
    with pytest.raises(ValueError, match=match):
        split_by_counts(D12, counts)


@pytest.mark.parametrize("sp", [split_by_fraction(D100, 0.8, 0.2), split_by_counts(D100, (50, 20, 30)),
                                split_by_dates(D100, D100[59], D100[79])])
def test_split_ranges_chronological_and_disjoint(sp):
    spans = list(sp.ranges().values())
    assert all(lo <= hi for lo, hi in spans)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
    # every date lands in exactly one split, in order train*, valid*, test*
    lab = sp.which(D100)
    order = {"": -1, "train": 0, "valid": 1, "test": 2}
    codes = np.array([order[x] for x in lab])
    assert (np.diff(codes[codes >= 0]) >= 0).all()
    assert {x for x in lab if x} == {"train", "valid", "test"}


def test_which_and_table():
    sp = split_by_counts(D12, (5, 2, 3))
    assert list(sp.which(D12)) == ["", ""] + ["train"] * 5 + ["valid"] * 2 + ["test"] * 3
    t = sp.table(panel_dates(D12))
    assert list(t.index) == ["train", "valid", "test"]
    assert list(t["days"]) == [5, 2, 3]
    assert t.loc["valid", "start"] == D12[7].date() and t.loc["test", "end"] == D12[11].date()


def test_mask_purges_labels_crossing_the_split_end():
    sp = split_by_counts(D12, (5, 2, 3))
    label_dates = pd.DatetimeIndex(list(D12[1:]) + [D12[-1] + pd.offsets.BDay(1)])  # horizon 1
    # train decisions d2..d6; d6's label (d7) is in valid -> purged
    np.testing.assert_array_equal(np.flatnonzero(sp.mask(D12, "train")), [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(np.flatnonzero(sp.mask(D12, "train", label_dates)), [2, 3, 4, 5])
    np.testing.assert_array_equal(np.flatnonzero(sp.mask(D12, "valid", label_dates)), [7])
    np.testing.assert_array_equal(np.flatnonzero(sp.mask(D12, "test", label_dates)), [9, 10])
    with pytest.raises(ValueError, match="not defined"):
        split_by_counts(D12, (5, 0, 3)).mask(D12, "valid")


def test_datesplit_direct_construction():
    sp = DateSplit((D12[0], D12[3]), None, (D12[4], D12[11]))
    assert list(sp.ranges()) == ["train", "test"]
    assert sp.mask(D12, "test").sum() == 8


# --------------------------------------------------------------------------- windows
def test_sliding_windows_shape_content_and_view():
    v = np.arange(10.0)
    w = sliding_windows(v, 3)
    assert w.shape == (8, 3)
    np.testing.assert_array_equal(w[0], [0, 1, 2])
    np.testing.assert_array_equal(w[7], [7, 8, 9])
    m = np.arange(20.0).reshape(10, 2)  # (T, F)
    wm = sliding_windows(m, 4)
    assert wm.shape == (7, 4, 2)
    for i in range(7):
        np.testing.assert_array_equal(wm[i], m[i:i + 4])
    assert np.shares_memory(wm, m)  # a view, no copy
    assert sliding_windows(v, 10).shape == (1, 10)
    for bad in (0, 11):
        with pytest.raises(ValueError, match="window"):
            sliding_windows(v, bad)


@pytest.fixture
def small_frame():
    idx = pd.bdate_range("2023-05-01", periods=10, name="date")
    return pd.DataFrame({"f1": np.arange(10.0), "f2": 100 + np.arange(10.0), "target": 1000 + np.arange(10.0)},
                        index=idx)


def test_make_windows_content_and_dates(small_frame):
    w = make_windows(small_frame, ["f1", "f2"], "target", window=3, horizon=1)
    # decision days 2..8 (day 9 has no t+1 target)
    assert len(w) == 7 and w.X.shape == (7, 3, 2) and w.X.dtype == np.float32
    for i, t in enumerate(range(2, 9)):
        np.testing.assert_array_equal(w.X[i, :, 0], [t - 2, t - 1, t])          # f1 rows t-2..t
        np.testing.assert_array_equal(w.X[i, :, 1], [98 + t, 99 + t, 100 + t])  # f2 rows t-2..t
    np.testing.assert_array_equal(w.y, 1000 + np.arange(3, 10))  # target at t + 1
    assert w.dates.equals(small_frame.index[2:9])
    assert w.target_dates.equals(small_frame.index[3:10])
    assert w.features == ["f1", "f2"]


def test_make_windows_horizons(small_frame):
    w0 = make_windows(small_frame, ["f1"], "target", window=3, horizon=0)
    np.testing.assert_array_equal(w0.y, 1000 + np.arange(2, 10))
    assert w0.dates.equals(w0.target_dates)
    w2 = make_windows(small_frame, ["f1"], "target", window=4, horizon=2)
    assert w2.dates.equals(small_frame.index[3:8])
    assert w2.target_dates.equals(small_frame.index[5:10])
    np.testing.assert_array_equal(w2.X[0, :, 0], [0, 1, 2, 3])
    with pytest.raises(ValueError, match="horizon"):
        make_windows(small_frame, ["f1"], "target", window=3, horizon=-3)


def test_make_windows_drops_nan_rows(small_frame):
    f = small_frame.copy()
    f.loc[f.index[4], "f1"] = np.nan       # in the windows of decisions 4, 5, 6
    f.loc[f.index[9], "target"] = np.nan   # the target of decision 8
    w = make_windows(f, ["f1", "f2"], "target", window=3, horizon=1)
    assert w.dates.equals(f.index[[2, 3, 7]])
    np.testing.assert_array_equal(w.y, [1003, 1004, 1008])
    assert np.isfinite(w.X).all()
    sub = w.subset(np.array([False, True, True]))
    assert sub.dates.equals(f.index[[3, 7]]) and len(sub) == 2
    np.testing.assert_array_equal(sub.X[1, :, 0], [5, 6, 7])


def test_make_windows_input_errors(small_frame):
    with pytest.raises(ValueError, match="sorted"):
        make_windows(small_frame.iloc[::-1], ["f1"], "target", 3)
    with pytest.raises(KeyError, match="volume"):
        make_windows(small_frame, ["f1", "volume"], "target", 3)


def test_panel_windows():
    cube = np.arange(6 * 2 * 3, dtype=float).reshape(6, 2, 3)  # (T, N, F)
    w = panel_windows(cube, 3)
    assert w.shape == (4, 2, 3, 3)
    for t in range(4):
        for n in range(2):
            np.testing.assert_array_equal(w[t, n], cube[t:t + 3, n, :])


# --------------------------------------------------------------------------- scaler
@pytest.fixture
def feature_split(ohlcv):
    x = np.column_stack([ohlcv["close"], np.log(ohlcv["volume"]), returns(ohlcv["close"]).fillna(0)])
    return x[:80], x[80:], ohlcv.index[:80]


def test_standard_scaler_uses_train_stats_only(feature_split):
    train, test, dates = feature_split
    sc = Scaler("standard").fit(train, dates=dates)
    mu, sd = train.mean(axis=0), train.std(axis=0)  # population std, numpy's default
    np.testing.assert_allclose(sc.center_, mu, rtol=1e-12)
    np.testing.assert_allclose(sc.scale_, sd, rtol=1e-12)
    out = sc.transform(test)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (test - mu) / sd, rtol=1e-5, atol=1e-6)
    # the train part ends up standardised, the test part does not (prices drift)
    np.testing.assert_allclose(sc.transform(train).mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(sc.transform(train).std(axis=0), 1, atol=1e-5)
    assert not np.allclose(sc.transform(np.vstack([train, test])).mean(axis=0), 0, atol=1e-2)
    assert sc.clip is None


def test_minmax_scaler(feature_split):
    train, test, _ = feature_split
    sc = Scaler("minmax").fit(train)
    lo, hi = train.min(axis=0), train.max(axis=0)
    np.testing.assert_allclose(sc.center_, lo)
    np.testing.assert_allclose(sc.scale_, hi - lo)
    tr = sc.transform(train)
    np.testing.assert_allclose(tr.min(axis=0), 0, atol=1e-7)
    np.testing.assert_allclose(tr.max(axis=0), 1, atol=1e-6)
    np.testing.assert_allclose(sc.transform(test), (test - lo) / (hi - lo), rtol=1e-5, atol=1e-6)


def test_robust_scaler_and_clip(feature_split):
    train, test, _ = feature_split
    sc = Scaler("robust").fit(train)
    med = np.median(train, axis=0)
    mad = np.median(np.abs(train - med), axis=0)
    np.testing.assert_allclose(sc.center_, med)
    np.testing.assert_allclose(sc.scale_, 1.4826 * mad)
    assert sc.clip == 3.0
    expected = np.clip((test - med) / (1.4826 * mad), -3, 3)
    np.testing.assert_allclose(sc.transform(test), expected, rtol=1e-5, atol=1e-6)
    extreme = np.vstack([med + 100 * mad, med - 100 * mad])
    np.testing.assert_array_equal(sc.transform(extreme), [[3, 3, 3], [-3, -3, -3]])
    wide = Scaler("robust", clip=10).fit(train)
    np.testing.assert_array_equal(wide.transform(extreme), [[10, 10, 10], [-10, -10, -10]])


def test_scaler_records_fit_and_ignores_nan(feature_split):
    train, _, dates = feature_split
    sc = Scaler().fit(train, dates=dates)
    assert sc.fitted_dates == (dates[0], dates[-1])
    assert sc.fitted_rows == 80
    assert sc.describe() == f"standard scaler fitted on {dates[0]:%Y-%m-%d}..{dates[-1]:%Y-%m-%d} (80 rows)"
    holes = train.copy()
    holes[[3, 40], 0] = np.nan
    sc2 = Scaler().fit(holes)
    kept = np.delete(train[:, 0], [3, 40])
    assert sc2.center_[0] == pytest.approx(kept.mean()) and sc2.scale_[0] == pytest.approx(kept.std())


def test_scaler_3d_constant_and_errors(feature_split):
    train, _, _ = feature_split
    windows = sliding_windows(train, 5)  # (76, 5, 3): statistics per last-axis feature
    flat = windows.reshape(-1, 3)
    sc = Scaler().fit(windows)
    np.testing.assert_allclose(sc.center_, flat.mean(axis=0))
    assert sc.transform(windows).shape == windows.shape
    const = np.column_stack([np.full(10, 5.0), np.arange(10.0)])
    sc_c = Scaler().fit(const)
    assert sc_c.scale_[0] == 1.0  # a constant feature is centred, not divided by 0
    np.testing.assert_array_equal(sc_c.transform(const)[:, 0], 0)
    with pytest.raises(RuntimeError, match="not fitted"):
        Scaler().transform(train)
    with pytest.raises(ValueError, match="unknown scaler"):
        Scaler("zscore")


@pytest.mark.parametrize("kind", ["standard", "minmax", "robust"])
def test_scaler_inverse_round_trip(feature_split, kind):
    train, test, _ = feature_split
    sc = Scaler(kind, clip=None if kind != "robust" else 1e9).fit(train)
    np.testing.assert_allclose(sc.inverse_transform(sc.transform(test)), test, rtol=1e-6, atol=1e-6)
    # one feature (e.g. the close as the target of a price model)
    z = sc.transform(test)[:, 0]
    np.testing.assert_allclose(sc.inverse_transform(z, feature=0), test[:, 0], rtol=1e-6)


# --------------------------------------------------------------------------- technical indicators
def ref_sma(x, n):
    out = np.full(len(x), np.nan)
    for t in range(n - 1, len(x)):
        out[t] = sum(x[t - n + 1:t + 1]) / n
    return out


def ref_ema(x, n):
    a = 2 / (n + 1)
    out = np.empty(len(x))
    out[0] = x[0]
    for t in range(1, len(x)):
        out[t] = a * x[t] + (1 - a) * out[t - 1]
    return out


def ref_rsi(x, n):
    """Wilder's RSI: gains/losses smoothed avg_t = avg_{t-1} + (g_t - avg_{t-1}) / n, seeded by
    the first change (pandas' ewm(adjust=False)); defined once n changes exist."""
    out = np.full(len(x), np.nan)
    ag = al = None
    for t in range(1, len(x)):
        d = x[t] - x[t - 1]
        g, l_ = max(d, 0.0), max(-d, 0.0)
        if ag is None:
            ag, al = g, l_
        else:
            ag, al = ag + (g - ag) / n, al + (l_ - al) / n
        if t >= n:
            out[t] = 100.0 if al == 0 else 100 - 100 / (1 + ag / al)
    return out


def ref_std(x, n, ddof):
    out = np.full(len(x), np.nan)
    for t in range(n - 1, len(x)):
        w = x[t - n + 1:t + 1]
        if np.isfinite(w).all():
            m = sum(w) / n
            out[t] = (sum((v - m) ** 2 for v in w) / (n - ddof)) ** 0.5
    return out


def test_returns_log_returns_momentum(ohlcv):
    c = ohlcv["close"].to_numpy()
    r = returns(ohlcv["close"]).to_numpy()
    assert np.isnan(r[0])
    np.testing.assert_allclose(r[1:], c[1:] / c[:-1] - 1, rtol=1e-12)
    np.testing.assert_allclose(log_returns(ohlcv["close"], 5).to_numpy()[5:], np.log(c[5:] / c[:-5]), rtol=1e-12)
    m5 = momentum(ohlcv["close"], 5).to_numpy()
    assert np.isnan(m5[:5]).all()
    np.testing.assert_allclose(m5[5:], c[5:] / c[:-5] - 1, rtol=1e-12)


def test_sma_and_ema_match_loops(ohlcv):
    c = ohlcv["close"].to_numpy()
    np.testing.assert_allclose(sma(ohlcv["close"], 10).to_numpy(), ref_sma(c, 10), rtol=1e-12, equal_nan=True)
    assert np.isnan(sma(ohlcv["close"], 10).to_numpy()[:9]).all()
    np.testing.assert_allclose(ema(ohlcv["close"], 10).to_numpy(), ref_ema(c, 10), rtol=1e-12)


def test_rsi_matches_wilder_loop(ohlcv):
    c = ohlcv["close"].to_numpy()
    got = rsi(ohlcv["close"], 14).to_numpy()
    np.testing.assert_allclose(got, ref_rsi(c, 14), rtol=1e-10, equal_nan=True)
    assert np.isnan(got[:14]).all() and np.isfinite(got[14:]).all()
    assert ((got[14:] > 0) & (got[14:] < 100)).all()
    up = pd.Series(np.arange(1.0, 31.0))
    assert (rsi(up, 14).dropna() == 100).all()  # never a loss -> RSI 100


def test_bollinger_population_std_and_macd(ohlcv):
    c = ohlcv["close"].to_numpy()
    mid, upper, lower = bollinger(ohlcv["close"], 20, 2.0)
    sd = ref_std(c, 20, ddof=0)
    np.testing.assert_allclose(mid.to_numpy(), ref_sma(c, 20), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(upper.to_numpy(), ref_sma(c, 20) + 2 * sd, rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(lower.to_numpy(), ref_sma(c, 20) - 2 * sd, rtol=1e-10, equal_nan=True)
    line, sig, hist = macd(ohlcv["close"])
    ref_line = ref_ema(c, 12) - ref_ema(c, 26)
    np.testing.assert_allclose(line.to_numpy(), ref_line, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sig.to_numpy(), ref_ema(ref_line, 9), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hist.to_numpy(), ref_line - ref_ema(ref_line, 9), rtol=1e-10, atol=1e-12)


def test_volatility_is_sample_std_of_returns(ohlcv):
    c = ohlcv["close"].to_numpy()
    r = np.concatenate([[np.nan], c[1:] / c[:-1] - 1])
    np.testing.assert_allclose(volatility(ohlcv["close"], 20).to_numpy(), ref_std(r, 20, ddof=1),
                               rtol=1e-9, equal_nan=True)


def test_indicators_on_frames_equal_per_stock(closes):
    for fn in (lambda x: sma(x, 5), lambda x: ema(x, 8), lambda x: rsi(x, 14), lambda x: volatility(x, 10),
               lambda x: bollinger(x, 20)[1], lambda x: macd(x)[2]):
        wide = fn(closes)
        assert wide.shape == closes.shape
        for col in closes:
            np.testing.assert_allclose(wide[col].to_numpy(), fn(closes[col]).to_numpy(), rtol=1e-12,
                                       equal_nan=True)
    c0 = closes["s0"].to_numpy()
    np.testing.assert_allclose(rsi(closes, 14)["s0"].to_numpy(), ref_rsi(c0, 14), rtol=1e-10, equal_nan=True)


def test_indicator_frame(ohlcv):
    f = indicator_frame(ohlcv)
    assert list(f.columns) == ["open", "high", "low", "close", "volume", "sma10", "sma50", "ema10",
                               "bb_upper", "bb_lower", "macd", "rsi"]
    c = ohlcv["close"].to_numpy()
    np.testing.assert_allclose(f["sma50"].to_numpy(), ref_sma(c, 50), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(f["rsi"].to_numpy(), ref_rsi(c, 14), rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(f["bb_upper"] - f["bb_lower"], 4 * ref_std(c, 20, 0), rtol=1e-9, equal_nan=True)
    assert f["sma50"].isna().sum() == 49


# --------------------------------------------------------------------------- labels
def test_forward_return_horizon_and_delay(ohlcv):
    close = ohlcv["close"]
    c = close.to_numpy()
    fr = forward_return(close).to_numpy()
    np.testing.assert_allclose(fr[:-1], c[1:] / c[:-1] - 1, rtol=1e-12)
    assert np.isnan(fr[-1])
    # qlib's Ref($close, -2) / Ref($close, -1) - 1
    q = forward_return(close, horizon=1, delay=1).to_numpy()
    np.testing.assert_allclose(q[:-2], c[2:] / c[1:-1] - 1, rtol=1e-12)
    assert np.isnan(q[-2:]).all()
    h5 = forward_return(close, horizon=5, delay=2).to_numpy()
    np.testing.assert_allclose(h5[:-7], c[7:] / c[2:-5] - 1, rtol=1e-12)
    assert np.isnan(h5[-7:]).all()
    for kw in (dict(horizon=0), dict(delay=-1)):
        with pytest.raises(ValueError):
            forward_return(close, **kw)


def test_forward_return_panel(closes):
    fr = forward_return(closes, 2)
    np.testing.assert_allclose(fr.iloc[10].to_numpy(), closes.iloc[12].to_numpy() / closes.iloc[10].to_numpy() - 1)


def test_cs_zscore_rows_mean0_std1(closes):
    r = returns(closes).iloc[1:].copy()
    r = pd.concat([r, -r.add_prefix("neg_")], axis=1)  # 6 stocks
    r.iloc[5, 2] = np.nan
    z = cs_zscore(r)
    np.testing.assert_allclose(z.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=1, ddof=0), 1, rtol=1e-12)
    assert np.isnan(z.iloc[5, 2]) and z.iloc[5].notna().sum() == 5
    np.testing.assert_allclose(cs_zscore_array(r.to_numpy()), z.to_numpy(), rtol=1e-12, equal_nan=True)
    # hand case: (1, 2, 3) -> mean 2, population std sqrt(2/3)
    np.testing.assert_allclose(cs_zscore(pd.DataFrame([[1.0, 2.0, 3.0]])).to_numpy(),
                               [[-np.sqrt(1.5), 0, np.sqrt(1.5)]])
    assert cs_zscore(pd.DataFrame([[4.0, 4.0, 4.0]])).isna().all(axis=None)  # constant row: undefined


def test_cs_rank_is_qlib_csranknorm():
    v = pd.DataFrame([[3.0, 1.0, 2.0, np.nan], [1.0, 1.0, 2.0, 5.0]])
    got = cs_rank(v).to_numpy()
    # row 0: pct ranks 1, 1/3, 2/3 (NaN skipped); row 1: ties share 1.5/4 = 0.375
    expected = (np.array([[1, 1 / 3, 2 / 3, np.nan], [0.375, 0.375, 0.75, 1.0]]) - 0.5) * 3.46
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)


# --------------------------------------------------------------------------- Alpha360
FIELDS = ["open", "high", "low", "close", "volume", "factor"]


@pytest.fixture
def cube():
    """(T=70, N=3, 6 fields) in the loader's field order (not Alpha360's block order)."""
    return np.stack([make_ohlcv(70, seed=10 + i)[FIELDS].to_numpy(float) for i in range(3)], axis=1)


@pytest.mark.parametrize("vwap", ["drop", "typical"])
def test_alpha360_elements(cube, vwap):
    base = alpha360_base(cube, FIELDS, vwap)
    blocks = alpha_fields(vwap)
    assert base.shape == (70, 3, len(blocks)) and base.dtype == np.float32
    out = alpha360(base, np.arange(70))
    assert out.shape == (70, 3, 60, len(blocks))
    col = {f: i for i, f in enumerate(FIELDS)}

    def raw(block, day, n):
        if block == "vwap":
            return (cube[day, n, col["high"]] + cube[day, n, col["low"]] + cube[day, n, col["close"]]) / 3
        return cube[day, n, col[block]]

    expected = np.full(out.shape, np.nan)
    for t in range(70):
        for n in range(3):
            for j in range(60):
                day = t - (59 - j)
                if day < 0:
                    continue
                for b, block in enumerate(blocks):
                    den = cube[t, n, col["volume"]] + 1e-12 if block == "volume" else cube[t, n, col["close"]]
                    expected[t, n, j, b] = raw(block, day, n) / den
    np.testing.assert_allclose(out, expected, rtol=3e-6, equal_nan=True)
    # NaN exactly where the history is missing
    assert np.isnan(out[10, :, :49]).all() and np.isfinite(out[10, :, 49:]).all()
    assert np.isfinite(out[59:]).all()
    np.testing.assert_allclose(out[:, :, -1, 0], 1.0, rtol=1e-6)  # close_t / close_t


def test_alpha360_blocks_and_day_selection(cube):
    assert alpha_fields("drop") == ["close", "open", "high", "low", "volume"]
    assert alpha_fields("typical") == ["close", "open", "high", "low", "vwap", "volume"]
    drop, typ = alpha360_base(cube, FIELDS, "drop"), alpha360_base(cube, FIELDS, "typical")
    assert drop.shape[-1] == 5 and typ.shape[-1] == 6
    np.testing.assert_allclose(typ[..., 4], (cube[..., 1] + cube[..., 2] + cube[..., 3]) / 3, rtol=1e-6)
    np.testing.assert_array_equal(typ[..., [0, 1, 2, 3, 5]], drop)
    np.testing.assert_array_equal(drop[..., 0], cube[..., 3].astype(np.float32))  # close first
    full = alpha360(drop, np.arange(70))
    np.testing.assert_array_equal(alpha360(drop, np.array([0, 59, 69])), full[[0, 59, 69]])
    np.testing.assert_array_equal(alpha360(drop, slice(60, 70)), full[60:70])
    assert alpha360(drop, np.arange(70), lookback=20).shape == (70, 3, 20, 5)


def test_alpha360_errors(cube):
    with pytest.raises(KeyError, match="volume"):
        alpha360_base(cube[..., :4], FIELDS[:4])
    with pytest.raises(ValueError, match="vwap"):
        alpha_fields("mean")


# --------------------------------------------------------------------------- look-ahead
CUTOFFS = (30, 75, 118)

CLEAN_FEATURES = {
    "returns": lambda f: returns(f["close"]),
    "log_returns": lambda f: log_returns(f["close"], 3),
    "momentum": lambda f: momentum(f["close"], 10),
    "sma": lambda f: sma(f["close"], 10),
    "ema": lambda f: ema(f["close"], 10),
    "rsi": lambda f: rsi(f["close"], 14),
    "macd": lambda f: pd.concat(macd(f["close"]), axis=1),
    "bollinger": lambda f: pd.concat(bollinger(f["close"]), axis=1),
    "volatility": lambda f: volatility(f["close"], 20),
    "indicator_frame": indicator_frame,
    "cs_zscore_of_ohlc": lambda f: cs_zscore(f[["open", "high", "low", "close"]]),  # across columns, per row
}


@pytest.mark.parametrize("name", list(CLEAN_FEATURES))
def test_technical_indicators_do_not_look_ahead(ohlcv, name):
    for cutoff in CUTOFFS:
        assert_no_lookahead(CLEAN_FEATURES[name], ohlcv, cutoff, seed=cutoff)


def alpha360_of_frame(f: pd.DataFrame) -> np.ndarray:
    cube = f[FIELDS].to_numpy(float)[:, None, :]                 # one stock
    feats = alpha360(alpha360_base(cube, FIELDS, "typical"), np.arange(len(f)))
    return feats.reshape(len(f), -1)                            # one row of 360 per day


def make_windows_X(f: pd.DataFrame) -> pd.DataFrame:
    f = f.assign(ret=returns(f["close"]), target=forward_return(f["close"]))
    w = make_windows(f, ["close", "volume", "ret"], "target", window=10, horizon=0)
    X = pd.DataFrame(w.X.reshape(len(w), -1), index=w.dates)
    return X.reindex(f.index)  # row t: the window whose decision date is t


def test_alpha360_and_windows_do_not_look_ahead(ohlcv):
    assert alpha360_of_frame(ohlcv).shape == (120, 360)
    assert make_windows_X(ohlcv).notna().all(axis=1).sum() == 109  # days 10..118 (119: no target)
    for cutoff in CUTOFFS:
        assert_no_lookahead(alpha360_of_frame, ohlcv, cutoff)
        assert_no_lookahead(make_windows_X, ohlcv, cutoff)


def test_scaler_fitted_on_train_only_does_not_look_ahead(ohlcv):
    def scaled(f):
        x = f[["close", "volume"]].to_numpy(float)
        return Scaler("robust").fit(x[:60]).transform(x)  # train = first 60 days
    for cutoff in (59, 75, 118):
        assert_no_lookahead(scaled, ohlcv, cutoff)


LEAKY_FEATURES = {
    # name: (fn, rows <= cutoff that must be reported for cutoff 75)
    "centred rolling mean": (lambda f: f["close"].rolling(5, center=True).mean(), r"\[74, 75\]"),
    "shift(-1)": (lambda f: f["close"].shift(-1), r"\[75\]"),
    "full-sample z-score": (lambda f: (f["close"] - f["close"].mean()) / f["close"].std(), r"\[0, 1, 2, 3, 4\]"),
    "scaler fit on full series": (
        lambda f: Scaler().fit(f[["close", "volume"]].to_numpy(float)).transform(f[["close", "volume"]].to_numpy(float)),
        r"\[0, 1, 2, 3, 4\]"),
    # a suspension on days 30, 75 and 118 back-filled from the next trading day
    "bfill": (lambda f: f["close"].where(~np.isin(np.arange(len(f)), [30, 75, 118])).bfill(), r"\[75\]"),
    "forward_return (a label, leaks by design)": (lambda f: forward_return(f["close"]), r"\[75\]"),
}


@pytest.mark.parametrize("name", list(LEAKY_FEATURES))
def test_leaky_features_are_caught(ohlcv, name):
    fn, rows = LEAKY_FEATURES[name]
    with pytest.raises(LookAheadError, match=rows):
        assert_no_lookahead(fn, ohlcv, 75)
    for cutoff in (30, 118):
        with pytest.raises(LookAheadError):
            assert_no_lookahead(fn, ohlcv, cutoff)


def test_lookahead_error_is_assertion_and_cutoff_checked(ohlcv):
    assert issubclass(LookAheadError, AssertionError)
    for bad in (-1, 119, 500):
        with pytest.raises(ValueError, match="cutoff"):
            assert_no_lookahead(CLEAN_FEATURES["sma"], ohlcv, bad)
    # the data handed in is not modified
    before = ohlcv.copy()
    assert_no_lookahead(CLEAN_FEATURES["sma"], ohlcv, 50)
    pd.testing.assert_frame_equal(ohlcv, before)


def test_scaler_accepts_a_single_feature_vector():
    train = np.array([1.0, 2.0, 3.0, 4.0])
    sc = Scaler("minmax").fit(train)
    assert sc.center_.tolist() == [1.0] and sc.scale_.tolist() == [3.0]
    np.testing.assert_allclose(sc.transform(np.array([1.0, 2.5, 7.0])), [0.0, 0.5, 2.0])
