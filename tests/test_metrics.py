"""Tests for repro.metrics: point errors against scikit-learn, daily IC against scipy,
HIST's Precision@N on a hand-worked panel, and the seed tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from sklearn import metrics as skm

from repro.metrics import (
    daily_ic,
    format_mean_std,
    mae,
    mape,
    mean_std,
    mse,
    precision_at_n,
    r2,
    ranking_report,
    regression_report,
    rmse,
)


# --------------------------------------------------------------------------- point forecasts
@pytest.fixture
def prices():
    """A realistic price target (random walk around 50) and a noisy forecast of it."""
    rng = np.random.default_rng(7)
    y = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, 300)))
    pred = y * (1 + rng.normal(0, 0.01, 300)) + rng.normal(0, 0.3, 300)
    return y, pred


def test_point_errors_equal_sklearn(prices):
    y, p = prices
    assert mae(y, p) == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
    assert mse(y, p) == pytest.approx(skm.mean_squared_error(y, p), rel=1e-12)
    assert rmse(y, p) == pytest.approx(skm.root_mean_squared_error(y, p), rel=1e-12)
    assert mape(y, p) == pytest.approx(skm.mean_absolute_percentage_error(y, p), rel=1e-12)
    assert r2(y, p) == pytest.approx(skm.r2_score(y, p), rel=1e-12)
    # sanity on scale: ~1% price noise -> MAPE of order 1e-2 (a fraction, not percent)
    assert 0.003 < mape(y, p) < 0.05


def test_point_errors_on_returns_equal_sklearn():
    """Signed daily returns (negative and positive targets), as lists, not arrays."""
    rng = np.random.default_rng(11)
    y = rng.normal(0, 0.02, 200)
    p = 0.3 * y + rng.normal(0, 0.015, 200)
    yl, pl = y.tolist(), p.tolist()
    assert mae(yl, pl) == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
    assert mse(yl, pl) == pytest.approx(skm.mean_squared_error(y, p), rel=1e-12)
    assert rmse(yl, pl) == pytest.approx(math.sqrt(skm.mean_squared_error(y, p)), rel=1e-12)
    assert mape(yl, pl) == pytest.approx(skm.mean_absolute_percentage_error(y, p), rel=1e-12)
    assert r2(yl, pl) == pytest.approx(skm.r2_score(y, p), rel=1e-12)


def test_point_errors_hand_example():
    y = [1.0, 2.0, 4.0]
    p = [2.0, 2.0, 1.0]
    # errors 1, 0, -3 -> MAE 4/3, MSE 10/3, MAPE (1/1 + 0 + 3/4)/3 = 7/12
    # SS_tot around mean 7/3: (16 + 1 + 25)/9 = 42/9 -> R2 = 1 - 10/(42/9) = -8/7
    assert mae(y, p) == pytest.approx(4 / 3)
    assert mse(y, p) == pytest.approx(10 / 3)
    assert rmse(y, p) == pytest.approx(math.sqrt(10 / 3))
    assert mape(y, p) == pytest.approx(7 / 12)
    assert r2(y, p) == pytest.approx(-8 / 7)


def test_mape_with_zero_target_equals_sklearn():
    rng = np.random.default_rng(3)
    y = rng.normal(0, 0.02, 50)
    y[[4, 17]] = 0.0  # a flat day: zero return
    p = y + rng.normal(0, 0.005, 50)
    expected = skm.mean_absolute_percentage_error(y, p)
    assert mape(y, p) == pytest.approx(expected, rel=1e-12)
    assert expected > 1e10  # the epsilon guard makes a zero target dominate, as in sklearn


@pytest.mark.parametrize("pred, expected", [([3.0, 3.0, 3.0, 3.0], 1.0), ([3.0, 2.0, 3.0, 4.0], 0.0)])
def test_r2_constant_target_follows_sklearn(pred, expected):
    y = [3.0, 3.0, 3.0, 3.0]
    assert r2(y, pred) == expected
    assert skm.r2_score(y, pred) == expected


def test_regression_report_keys_and_values(prices):
    y, p = prices
    rep = regression_report(y, p)
    assert list(rep) == ["MAE", "MSE", "RMSE", "MAPE", "R2"]
    assert rep["RMSE"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, p)), rel=1e-12)
    assert rep["R2"] == pytest.approx(skm.r2_score(y, p), rel=1e-12)


@pytest.mark.parametrize("fn", [mae, mse, rmse, mape, r2])
def test_point_errors_reject_bad_input(fn):
    with pytest.raises(ValueError, match="differ in length"):
        fn([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="no samples"):
        fn([], [])
    with pytest.raises(ValueError, match="finite"):
        fn([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="finite"):
        fn([1.0, 2.0, 3.0], [1.0, 2.0, np.inf])


# --------------------------------------------------------------------------- daily IC
DAYS = pd.bdate_range("2021-01-04", periods=40, name="datetime")
STOCKS = [f"SH60{i:04d}" for i in range(25)]


@pytest.fixture
def panel():
    """40 days x 25 stocks of returns and a weakly informative score, with holes and ties.

    * about 10% of scores and 10% of labels missing at random;
    * scores rounded to 1 decimal, so many stocks tie on the same score (Spearman ties);
    * day 5: only one stock has both score and label (IC undefined -> NaN);
    * day 9: no stock has a label (NaN);
    * day 13: every stock gets the same score 0.1 (constant -> NaN, like scipy).
    """
    rng = np.random.default_rng(42)
    lab = rng.normal(0, 0.02, (40, 25))
    score = np.round((0.4 * lab / 0.02 + rng.normal(0, 1, (40, 25))), 1)
    score[rng.random((40, 25)) < 0.1] = np.nan
    lab[rng.random((40, 25)) < 0.1] = np.nan
    score[5, :] = np.nan
    score[5, 3] = 0.7
    lab[5, 3] = 0.01
    lab[9, :] = np.nan
    score[13, :] = 0.1
    return (pd.DataFrame(score, index=DAYS, columns=STOCKS),
            pd.DataFrame(lab, index=DAYS, columns=STOCKS))


def scipy_daily(scores: pd.DataFrame, labels: pd.DataFrame, method: str) -> np.ndarray:
    """Reference: scipy's correlation day by day over the stocks valid that day."""
    out = []
    for d in scores.index:
        s, l_ = scores.loc[d].to_numpy(), labels.loc[d].to_numpy()
        ok = np.isfinite(s) & np.isfinite(l_)
        if ok.sum() < 2 or np.ptp(s[ok]) == 0 or np.ptp(l_[ok]) == 0:
            out.append(np.nan)
            continue
        fn = st.pearsonr if method == "pearson" else st.spearmanr
        out.append(fn(s[ok], l_[ok])[0])
    return np.array(out)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_daily_ic_equals_scipy_day_by_day(panel, method):
    s, lab = panel
    got = daily_ic(s, lab, method)
    ref = scipy_daily(s, lab, method)
    assert got.index.equals(DAYS)
    assert got.name == ("ic" if method == "pearson" else "rank_ic")
    np.testing.assert_allclose(got.to_numpy(), ref, rtol=1e-10, atol=1e-12, equal_nan=True)
    # the degenerate days are NaN, the rest are real correlations
    assert np.isnan(got.iloc[[5, 9, 13]]).all()
    assert np.isfinite(got.drop(DAYS[[5, 9, 13]])).all()
    assert 0.1 < got.mean() < 0.6  # the score is informative


def test_daily_ic_spearman_handles_ties_like_scipy():
    # heavy ties: scores take only three values; labels one tie too
    s = np.array([[1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 1.0], [0.0, 0.0, 0.0, 1.0, 1.0, 2.0, np.nan]])
    lab = np.array([[0.01, -0.02, 0.03, 0.03, 0.05, 0.02, -0.01], [0.02, 0.01, -0.01, 0.03, 0.0, 0.04, 0.9]])
    got = daily_ic(s, lab, "spearman").to_numpy()
    assert got[0] == pytest.approx(st.spearmanr(s[0], lab[0])[0], rel=1e-12)
    assert got[1] == pytest.approx(st.spearmanr(s[1, :6], lab[1, :6])[0], rel=1e-12)
    # a plain Pearson on ordinal ranks without tie-averaging would differ; check that ties matter
    assert got[0] != pytest.approx(st.pearsonr(st.rankdata(s[0], method="ordinal"), st.rankdata(lab[0]))[0])


def test_daily_ic_excludes_missing_stocks_per_day():
    # day 0: stock 2's label missing -> IC over stocks 0, 1, 3 only
    s = np.array([[1.0, 2.0, 100.0, 3.0]])
    lab = np.array([[0.01, 0.03, np.nan, 0.02]])
    # ranks of (1,2,3) vs (1,3,2): Pearson of the values = 0.5, Spearman = 0.5
    assert daily_ic(s, lab)[0] == pytest.approx(st.pearsonr([1.0, 2.0, 3.0], [0.01, 0.03, 0.02])[0])
    assert daily_ic(s, lab, "spearman")[0] == pytest.approx(0.5)


def test_daily_ic_fewer_than_two_stocks_is_nan():
    s = np.array([[0.5, np.nan, np.nan], [0.1, 0.2, 0.3]])
    lab = np.array([[0.01, 0.02, 0.03], [0.3, 0.2, 0.1]])
    got = daily_ic(s, lab)
    assert np.isnan(got[0])
    assert got[1] == pytest.approx(-1.0)


def test_daily_ic_multiindex_series_matches_frame(panel):
    s, lab = panel
    # long (datetime, instrument) format as a data pipeline delivers it: missing rows
    # simply absent (NaN dropped separately), rows shuffled
    idx = pd.MultiIndex.from_product([DAYS, STOCKS], names=["datetime", "instrument"])
    rng = np.random.default_rng(0)
    long_s = pd.Series(s.to_numpy().ravel(), index=idx).dropna()
    long_l = pd.Series(lab.to_numpy().ravel(), index=idx).dropna()
    long_s = long_s.iloc[rng.permutation(len(long_s))]
    long_l = long_l.iloc[rng.permutation(len(long_l))]
    for method in ("pearson", "spearman"):
        wide = daily_ic(s, lab, method)
        long = daily_ic(long_s, long_l, method)
        # day 9 has no labels at all, so it has no (score, label) row in long format
        assert list(long.index) == [d for d in DAYS if d != DAYS[9]]
        np.testing.assert_allclose(long.to_numpy(), wide.drop(DAYS[9]).to_numpy(), rtol=1e-12, equal_nan=True)


def test_daily_ic_input_errors():
    with pytest.raises(ValueError, match="pearson"):
        daily_ic(np.ones((2, 3)), np.ones((2, 3)), method="kendall")
    with pytest.raises(ValueError, match="same shape"):
        daily_ic(np.ones((2, 3)), np.ones((2, 4)))
    idx = pd.MultiIndex.from_product([DAYS[:2], STOCKS[:3]])
    with pytest.raises(TypeError, match="labels must be a Series"):
        daily_ic(pd.Series(np.arange(6.0), index=idx), np.arange(6.0))


# --------------------------------------------------------------------------- ranking report
def test_ranking_report_ic_and_icir(panel):
    s, lab = panel
    ic = scipy_daily(s, lab, "pearson")
    ric = scipy_daily(s, lab, "spearman")
    ic, ric = ic[np.isfinite(ic)], ric[np.isfinite(ric)]
    rep = ranking_report(s, lab)
    assert rep["days"] == 37  # 40 days minus the three degenerate ones
    assert rep["IC"] == pytest.approx(ic.mean(), rel=1e-10)
    assert rep["ICIR"] == pytest.approx(ic.mean() / ic.std(ddof=1), rel=1e-10)
    assert rep["RankIC"] == pytest.approx(ric.mean(), rel=1e-10)
    assert rep["RankICIR"] == pytest.approx(ric.mean() / ric.std(ddof=1), rel=1e-10)
    assert set(rep) == {"IC", "ICIR", "RankIC", "RankICIR", "days"}


def test_ranking_report_single_day_has_nan_icir():
    rep = ranking_report(np.array([[1.0, 2.0, 3.0]]), np.array([[0.1, 0.3, 0.2]]))
    assert rep["IC"] == pytest.approx(st.pearsonr([1, 2, 3], [0.1, 0.3, 0.2])[0])
    assert rep["RankIC"] == pytest.approx(0.5)
    assert math.isnan(rep["ICIR"]) and math.isnan(rep["RankICIR"])
    assert rep["days"] == 1


# --------------------------------------------------------------------------- precision@N
@pytest.fixture
def small_panel():
    """3 days x 5 stocks, worked out by hand.

    day 0: all valid. Score order 0 (0.9), 4 (0.7), 2 (0.5), 3 (0.3), 1 (0.1);
           labels in that order 0.02, 0.01, 0.01, 0.00, 0.03.
    day 1: stock 2 has no score, stock 1 (top score!) no label -> valid 0, 3, 4.
           Score order 3 (0.6), 4 (0.4), 0 (0.2); labels 0.00, -0.03, 0.05.
    day 2: only stock 0 valid (label 0.01).
    """
    s = np.array([[0.9, 0.1, 0.5, 0.3, 0.7],
                  [0.2, 0.8, np.nan, 0.6, 0.4],
                  [0.5, np.nan, np.nan, 0.1, np.nan]])
    lab = np.array([[0.02, 0.03, 0.01, 0.00, 0.01],
                    [0.05, np.nan, 0.04, 0.00, -0.03],
                    [0.01, 0.02, 0.03, np.nan, 0.04]])
    return s, lab


@pytest.mark.parametrize("n, expected", [
    (1, 2 / 3),          # day0: 0.02>0 -> 1; day1: 0.00 is not > 0 -> 0; day2: 0.01 -> 1
    (2, 0.5),            # day0: 2/2; day1: (0.00, -0.03) -> 0/2; day2 skipped (1 valid)
    (3, (1 + 1 / 3) / 2),  # day0: 3/3; day1: (0.00, -0.03, 0.05) -> 1/3; day2 skipped
    (4, 0.75),           # day0 only: (0.02, 0.01, 0.01, 0.00) -> 3/4
])
def test_precision_at_n_hand_computed(small_panel, n, expected):
    s, lab = small_panel
    assert precision_at_n(s, lab, n) == pytest.approx(expected)


def test_precision_at_n_threshold_and_no_eligible_day(small_panel):
    s, lab = small_panel
    # threshold 0.015: day0 top-2 labels (0.02, 0.01) -> 1/2; day1 -> 0 -> mean 0.25
    assert precision_at_n(s, lab, 2, threshold=0.015) == pytest.approx(0.25)
    assert math.isnan(precision_at_n(s, lab, 6))  # no day has six valid stocks


def test_precision_at_n_tie_break_by_column_order():
    # all scores tie: the first two columns are "the top 2"
    s = np.array([[0.3, 0.3, 0.3, 0.3]])
    assert precision_at_n(s, np.array([[0.01, 0.02, -0.01, -0.02]]), 2) == 1.0
    assert precision_at_n(s, np.array([[-0.01, -0.02, 0.01, 0.02]]), 2) == 0.0


def test_ranking_report_includes_precision(small_panel):
    s, lab = small_panel
    rep = ranking_report(s, lab, precision_n=(1, 2))
    assert rep["P@1"] == pytest.approx(2 / 3)
    assert rep["P@2"] == pytest.approx(0.5)


def test_precision_frame_and_multiindex_agree(small_panel):
    s, lab = small_panel
    days = pd.bdate_range("2022-03-01", periods=3)
    cols = list("ABCDE")
    fs, fl = pd.DataFrame(s, index=days, columns=cols), pd.DataFrame(lab, index=days, columns=cols)
    idx = pd.MultiIndex.from_product([days, cols], names=["datetime", "instrument"])
    ls_, ll = pd.Series(s.ravel(), index=idx), pd.Series(lab.ravel(), index=idx)
    for n, expected in [(1, 2 / 3), (2, 0.5), (3, 2 / 3)]:
        assert precision_at_n(fs, fl, n) == pytest.approx(expected)
        assert precision_at_n(ls_, ll, n) == pytest.approx(expected)


# --------------------------------------------------------------------------- seeds
@pytest.fixture
def seeds_table():
    # model A: IC 0.04, 0.05, 0.06 -> mean 0.05, std 0.01
    #          MSE 1, 2, 4 -> mean 7/3, std sqrt(((4/3)^2 + (1/3)^2 + (5/3)^2) / 2) = sqrt(7/3)
    # model B: IC 0.10, 0.20 -> mean 0.15, std 0.1/sqrt(2); MSE 3, 3 -> mean 3, std 0
    return pd.DataFrame({
        "model": ["A", "A", "A", "B", "B"],
        "seed": [0, 1, 2, 0, 1],
        "IC": [0.04, 0.05, 0.06, 0.10, 0.20],
        "MSE": [1.0, 2.0, 4.0, 3.0, 3.0],
    })


def test_mean_std_by_string(seeds_table):
    out = mean_std(seeds_table, by="model")
    assert list(out.columns) == ["model", "IC_mean", "IC_std", "MSE_mean", "MSE_std", "n_seeds"]
    assert list(out["model"]) == ["A", "B"]
    np.testing.assert_allclose(out["IC_mean"], [0.05, 0.15])
    np.testing.assert_allclose(out["IC_std"], [0.01, 0.1 / math.sqrt(2)])
    np.testing.assert_allclose(out["MSE_mean"], [7 / 3, 3.0])
    np.testing.assert_allclose(out["MSE_std"], [math.sqrt(7 / 3), 0.0])
    assert list(out["n_seeds"]) == [3, 2]


def test_mean_std_by_list_and_list_of_frames(seeds_table):
    frames = [g for _, g in seeds_table.groupby("seed")]  # one frame per seed, as runs produce them
    out = mean_std(frames, by=["model"])
    ref = mean_std(seeds_table, by="model").set_index("model")
    got = out.set_index("model").loc[["A", "B"]]
    pd.testing.assert_frame_equal(got, ref)


def test_mean_std_without_groups(seeds_table):
    out = mean_std(seeds_table[seeds_table.model == "A"].drop(columns="model"))
    assert list(out.columns) == ["IC_mean", "IC_std", "MSE_mean", "MSE_std", "n_seeds"]
    assert len(out) == 1
    assert out.loc[0, "IC_mean"] == pytest.approx(0.05)
    assert out.loc[0, "IC_std"] == pytest.approx(0.01)
    assert out.loc[0, "n_seeds"] == 3


def test_format_mean_std(seeds_table):
    table = mean_std(seeds_table, by="model")
    out = format_mean_std(table, ["IC", "MSE"])
    assert list(out.columns) == ["model", "n_seeds", "IC", "MSE"]  # the groups stay with their numbers
    assert list(out["model"]) == ["A", "B"]
    assert list(out["IC"]) == ["0.0500 ± 0.0100", "0.1500 ± 0.0707"]
    assert list(out["MSE"]) == ["2.3333 ± 1.5275", "3.0000 ± 0.0000"]
    assert list(format_mean_std(table, ["IC"], digits=2)["IC"]) == ["0.05 ± 0.01", "0.15 ± 0.07"]


def test_format_mean_std_single_seed_shows_value_alone(seeds_table):
    one = mean_std(seeds_table[seeds_table.seed == 0], by="model")
    assert one["IC_std"].isna().all()  # one seed: sample std undefined
    assert list(format_mean_std(one, ["IC"])["IC"]) == ["0.0400", "0.1000"]


def test_daily_ic_frame_scores_with_long_labels():
    rng = np.random.default_rng(7)
    days = pd.bdate_range("2022-01-03", periods=5)
    scores = pd.DataFrame(rng.normal(size=(5, 6)), index=days, columns=list("abcdef"))
    labels = pd.DataFrame(rng.normal(size=(5, 6)), index=days, columns=list("abcdef"))
    long_labels = labels.stack()
    long_labels.index.names = ["datetime", "instrument"]
    pd.testing.assert_series_equal(daily_ic(scores, long_labels), daily_ic(scores, labels))
    assert daily_ic(scores, long_labels).notna().all()
