"""Tests for repro.backtest: hand-worked small panels, an independent loop-based
reference on a random panel, and the metric helpers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from repro.backtest import max_drawdown, run_backtest, select_top, sharpe

DATES = pd.bdate_range("2023-03-06", periods=6)
NAMES = ["A", "B", "C", "D"]

# Returns over each day (close d-1 -> close d). Day 0's row is never earned.
R = pd.DataFrame(
    [[0.00, 0.00, 0.00, 0.00],
     [0.10, -0.05, 0.02, 0.00],
     [-0.02, 0.04, 0.01, 0.03],
     [0.05, 0.00, -0.03, 0.02],
     [0.00, 0.10, 0.02, -0.01],
     [0.03, -0.02, 0.00, 0.04]],
    index=DATES, columns=NAMES)

# Scores known at each close; the top stock per day is A, B, D, C, B, A.
S = pd.DataFrame(
    [[0.9, 0.1, 0.5, 0.3],
     [0.2, 0.8, 0.1, 0.4],
     [0.1, 0.3, 0.2, 0.7],
     [0.4, 0.1, 0.6, 0.5],
     [0.3, 0.9, 0.2, 0.1],
     [0.8, 0.2, 0.3, 0.1]],
    index=DATES, columns=NAMES)


def nocost(**kw):
    return run_backtest(S, R, buy_cost=0.0, sell_cost=0.0, **kw)


# --------------------------------------------------------------------------- hand-worked cases
def test_hold1_top1_earns_next_day_return_of_top_stock():
    res = nocost(top=1, hold=1)
    # day d+1 earns the day-(d+1) return of the stock scored top on d:
    # d1: A 0.10, d2: B 0.04, d3: D 0.02, d4: C 0.02, d5: B -0.02; d5's pick (A) is never bought
    np.testing.assert_allclose(res.daily["return"], [0.0, 0.10, 0.04, 0.02, 0.02, -0.02], atol=1e-15)
    np.testing.assert_allclose(res.daily["pnl"], [0.0, 0.10, 0.14, 0.16, 0.18, 0.16], atol=1e-15)
    assert res.metrics["PNL"] == pytest.approx(0.16)
    assert list(res.trades["entry"]) == list(DATES[:5])
    assert list(res.trades["exit"]) == list(DATES[1:6])
    assert list(res.positions["instrument"]) == ["A", "B", "D", "C", "B"]
    np.testing.assert_allclose(res.positions["net_return"], [0.10, 0.04, 0.02, 0.02, -0.02], atol=1e-15)
    # WINR: 4 of 5 purchases win; PL = mean(0.10, 0.04, 0.02, 0.02) / 0.02 = 2.25
    assert res.metrics["WINR"] == pytest.approx(0.8)
    assert res.metrics["PL"] == pytest.approx(2.25)
    assert res.metrics["n_purchases"] == 5 and res.metrics["n_tranches"] == 5
    # invested: one sleeve = all capital from d0 to d4; everything sold at the last close
    np.testing.assert_allclose(res.daily["invested"], [1, 1, 1, 1, 1, 0])


def test_hold2_overlapping_sleeves():
    res = nocost(top=1, hold=2)
    # each tranche gets half the capital and is held two days (the d4 one is cut at d5):
    #   d0 -> A: 1.10 on d1, 1.10 * 0.98 = 1.078 on d2   (+0.10, -0.022)
    #   d1 -> B: 1.04 on d2, 1.04 * 1.00 = 1.04 on d3    (+0.04,  0.000)
    #   d2 -> D: 1.02 on d3, 1.02 * 0.99 = 1.0098 on d4  (+0.02, -0.0102)
    #   d3 -> C: 1.02 on d4, 1.02 * 1.00 = 1.02 on d5    (+0.02,  0.000)
    #   d4 -> B: 0.98 on d5, closed at the last date      (-0.02)
    # daily = sum of the sleeves' moves / 2
    expected = [0.0, 0.10 / 2, (-0.022 + 0.04) / 2, (0.0 + 0.02) / 2, (-0.0102 + 0.02) / 2, (0.0 - 0.02) / 2]
    np.testing.assert_allclose(res.daily["return"], expected, atol=1e-14)
    np.testing.assert_allclose(res.trades["gross_return"], [0.078, 0.04, 0.0098, 0.02, -0.02], atol=1e-14)
    assert list(res.trades["exit"]) == [DATES[2], DATES[3], DATES[4], DATES[5], DATES[5]]
    # half the capital after the first close, all of it from d1 on, none after the last close
    np.testing.assert_allclose(res.daily["invested"], [0.5, 1, 1, 1, 1, 0])
    assert res.metrics["PNL"] == pytest.approx(sum(expected))


def test_tranche_is_buy_and_hold_with_equal_initial_money():
    # only day 0 is scored: one tranche, A and C (top 2), held 2 days
    scores = S.copy()
    scores.iloc[1:] = np.nan
    res = run_backtest(scores, R, top=2, hold=2, buy_cost=0.0, sell_cost=0.0)
    # A: 1.10 then 1.078; C: 1.02 then 1.0302 -> tranche value 1.06, then (1.078 + 1.0302)/2 = 1.0541
    # (a daily-rebalanced book would reach 1.06 * (1 - 0.005) = 1.0547 instead)
    np.testing.assert_allclose(res.daily["return"], [0, 0.06 / 2, (1.0541 - 1.06) / 2, 0, 0, 0], atol=1e-14)
    assert len(res.trades) == 1
    assert res.trades["n_stocks"].iloc[0] == 2
    assert res.trades["gross_return"].iloc[0] == pytest.approx(0.0541)
    assert sorted(res.positions["instrument"]) == ["A", "C"]
    np.testing.assert_allclose(res.positions.set_index("instrument").loc[["A", "C"], "net_return"],
                               [0.078, 0.0302], atol=1e-14)


def test_costs_on_entry_and_exit_days():
    res = run_backtest(S, R, top=1, hold=2, buy_cost=0.001, sell_cost=0.002)
    # same tranches as test_hold2_overlapping_sleeves; buy cost 0.001 on each entry day d0..d4,
    # sell cost 0.002 x exit value: d2: 0.002156 (1.078), d3: 0.00208 (1.04), d4: 0.0020196 (1.0098),
    # d5: 0.00204 (1.02) + 0.00196 (0.98)
    expected = [
        (0.0 - 0.001) / 2,
        (0.10 - 0.001) / 2,
        (0.018 - 0.001 - 0.002156) / 2,
        (0.02 - 0.001 - 0.00208) / 2,
        (0.0098 - 0.001 - 0.0020196) / 2,
        (-0.02 - 0.00204 - 0.00196) / 2,
    ]
    np.testing.assert_allclose(res.daily["return"], expected, atol=1e-14)
    net = [0.078 - 0.001 - 0.002156, 0.04 - 0.001 - 0.00208, 0.0098 - 0.001 - 0.0020196,
           0.02 - 0.001 - 0.00204, -0.02 - 0.001 - 0.00196]
    np.testing.assert_allclose(res.trades["net_return"], net, atol=1e-14)
    np.testing.assert_allclose(res.positions["net_return"], net, atol=1e-14)  # one stock per tranche
    assert res.metrics["PNL"] == pytest.approx(0.0562722, abs=1e-12)
    assert res.metrics["PNL"] == pytest.approx(sum(net) / 2, abs=1e-12)
    # WINR 4/5; PL = mean of the four winners / the loser's loss
    assert res.metrics["WINR"] == pytest.approx(0.8)
    assert res.metrics["PL"] == pytest.approx((sum(net[:4]) / 4) / 0.02296)


def test_delay_shifts_entry_by_one_day():
    res = nocost(top=1, hold=1, delay=1)
    # picks of d0..d3 (A, B, D, C) are bought at the close of d1..d4 and earn d2..d5:
    # A on d2 -0.02, B on d3 0.00, D on d4 -0.01, C on d5 0.00; d4's pick would be bought on d5: never
    np.testing.assert_allclose(res.daily["return"], [0, 0, -0.02, 0.0, -0.01, 0.0], atol=1e-15)
    assert list(res.trades["entry"]) == list(DATES[1:5])
    assert list(res.positions["instrument"]) == ["A", "B", "D", "C"]
    assert res.params["delay"] == 1


def test_delay_past_the_end_opens_nothing():
    res = nocost(top=1, hold=1, delay=10)
    assert len(res.trades) == 0 and len(res.positions) == 0
    np.testing.assert_array_equal(res.daily["return"], np.zeros(6))
    assert math.isnan(res.metrics["WINR"])


def test_nan_scores_never_selected_and_unscored_day_opens_no_tranche():
    scores = S.copy()
    scores.loc[DATES[0], "A"] = np.nan     # d0's best stock loses its score: C (0.5) is bought
    scores.loc[DATES[2], :] = np.nan       # nothing scored on d2: no tranche
    res = run_backtest(scores, R, top=1, hold=1, buy_cost=0, sell_cost=0)
    assert list(res.positions["instrument"]) == ["C", "B", "C", "B"]
    assert list(res.trades["entry"]) == [DATES[0], DATES[1], DATES[3], DATES[4]]
    # d1: C 0.02; d2: B 0.04; d3: nothing held; d4: C 0.02; d5: B -0.02
    np.testing.assert_allclose(res.daily["return"], [0, 0.02, 0.04, 0.0, 0.02, -0.02], atol=1e-15)
    np.testing.assert_allclose(res.daily["invested"], [1, 1, 0, 1, 1, 0])


def test_missing_returns_of_held_stocks_count_as_zero():
    rets = R.copy()
    rets.loc[DATES[2], "A"] = np.nan   # A suspended on d2
    rets = rets.drop(columns="D")      # D has no return data at all
    res = run_backtest(S, rets, top=1, hold=2, buy_cost=0, sell_cost=0)
    # d0 -> A: +0.10 on d1, 0 on d2 (suspended) -> gross 0.10
    # d2 -> D: no returns at all -> flat, gross 0
    np.testing.assert_allclose(res.trades["gross_return"], [0.10, 0.04, 0.0, 0.02, -0.02], atol=1e-14)
    expected = [0, 0.10 / 2, (0 + 0.04) / 2, (0 + 0) / 2, (0 + 0.02) / 2, (0 - 0.02) / 2]
    np.testing.assert_allclose(res.daily["return"], expected, atol=1e-14)


def test_multiindex_inputs_match_frames():
    idx = pd.MultiIndex.from_product([DATES, NAMES], names=["datetime", "instrument"])
    s_long = pd.Series(S.to_numpy().ravel(), index=idx).iloc[::-1]   # any row order
    r_long = pd.Series(R.to_numpy().ravel(), index=idx)
    a = run_backtest(S, R, top=2, hold=3, buy_cost=0.001, sell_cost=0.002)
    b = run_backtest(s_long, r_long, top=2, hold=3, buy_cost=0.001, sell_cost=0.002)
    np.testing.assert_allclose(b.daily["return"], a.daily["return"], atol=1e-15)
    assert b.daily.index.equals(a.daily.index)
    assert b.metrics == pytest.approx(a.metrics)


def test_benchmark_ir_and_excess():
    bench = pd.Series([0.05, 0.02, 0.01, 0.00, 0.03], index=DATES[:5])  # d5 missing -> 0
    res = nocost(top=1, hold=1, benchmark=bench)
    # day 0 earns nothing (benchmark set to 0 there too); portfolio [0, .10, .04, .02, .02, -.02]
    excess = np.array([0.0, 0.08, 0.03, 0.02, -0.01, -0.02])
    np.testing.assert_allclose(res.daily["benchmark"], [0, 0.02, 0.01, 0.0, 0.03, 0.0])
    np.testing.assert_allclose(res.daily["excess"], excess, atol=1e-15)
    assert res.metrics["IR"] == pytest.approx(excess.mean() / excess.std(ddof=1) * math.sqrt(240))
    assert res.metrics["excess_AR"] == pytest.approx(0.10 / 6 * 240)
    assert "IR" not in nocost(top=1, hold=1).metrics


def test_annualisation_metrics():
    res = nocost(top=1, hold=1, periods_per_year=252)
    r = np.array([0.0, 0.10, 0.04, 0.02, 0.02, -0.02])
    assert res.metrics["AR"] == pytest.approx(0.16 / 6 * 252)
    assert res.metrics["SHARPE"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    # cumulative path 0, .10, .14, .16, .18, .16: the only fall is .18 -> .16
    assert res.metrics["MAXD"] == pytest.approx(0.02)


def test_input_errors():
    with pytest.raises(ValueError, match="hold"):
        run_backtest(S, R, hold=0)
    with pytest.raises(ValueError, match="delay"):
        run_backtest(S, R, delay=-1)
    with pytest.raises(ValueError, match="two dates"):
        run_backtest(S.iloc[:1], R)
    with pytest.raises(TypeError, match="DataFrame"):
        run_backtest(S.to_numpy(), R)


# --------------------------------------------------------------------------- select_top
def test_select_top_count_fraction_and_nan():
    s = np.array([
        [0.5, np.nan, 0.9, 0.1, 0.7],        # 4 valid
        [np.nan, np.nan, 0.2, np.nan, np.nan],  # 1 valid
        [np.nan] * 5,                          # none
        [0.1, 0.2, 0.3, 0.4, 0.5],            # 5 valid
    ])
    # top=0.5: floor(4*.5)=2, floor(1*.5)=0 -> at least 1, 0 valid -> 0, floor(2.5)=2
    np.testing.assert_array_equal(select_top(s, 0.5), [
        [False, False, True, False, True],
        [False, False, True, False, False],
        [False] * 5,
        [False, False, False, True, True]])
    # top=3 as a count, capped by the number of valid stocks
    np.testing.assert_array_equal(select_top(s, 3), [
        [True, False, True, False, True],
        [False, False, True, False, False],
        [False] * 5,
        [False, False, True, True, True]])
    # top=0.1: floor(0.4)=0 -> at least one
    np.testing.assert_array_equal(select_top(s, 0.1).sum(axis=1), [1, 1, 0, 1])


def test_select_top_ties_broken_by_column_order():
    s = np.array([[0.5, 0.5, 0.5, 0.1], [0.2, 0.3, 0.3, 0.3]])
    np.testing.assert_array_equal(select_top(s, 2), [[True, True, False, False], [False, True, True, False]])
    # and in a backtest, the first of the tied columns is the one bought
    scores = pd.DataFrame(0.5, index=DATES, columns=NAMES)
    res = run_backtest(scores, R, top=1, hold=1, buy_cost=0, sell_cost=0)
    assert set(res.positions["instrument"]) == {"A"}


def test_select_top_fraction_is_exact_floor():
    # 0.7 x 90 is 62.99999999999999 in floating point; floor of the true 63 is 63
    rng = np.random.default_rng(5)
    for n, top, k in [(90, 0.7, 63), (180, 0.35, 63), (100, 0.29, 29), (300, 0.1, 30), (99, 0.1, 9)]:
        assert select_top(rng.normal(size=(2, n)), top).sum(axis=1).tolist() == [k, k]


def test_select_top_picks_highest_scores():
    rng = np.random.default_rng(1)
    s = rng.normal(size=(20, 30))
    m = select_top(s, 5)
    # every selected score beats every unselected score on its row
    for row, sel in zip(s, m):
        assert sel.sum() == 5
        assert row[sel].min() > row[~sel].max()


# --------------------------------------------------------------------------- metrics helpers
def test_max_drawdown_hand_paths():
    # cum 0 .02 .05 .04 .00 .02 .07 .04 -> worst fall .05 -> .00
    assert max_drawdown(np.array([0.02, 0.03, -0.01, -0.04, 0.02, 0.05, -0.03])) == pytest.approx(0.05)
    # starts by falling: the peak is the starting 0 -> 0 to -0.03
    assert max_drawdown(np.array([-0.01, -0.02, 0.01])) == pytest.approx(0.03)
    assert max_drawdown(np.array([0.01, 0.02, 0.0])) == 0.0


def test_sharpe_hand_value():
    # mean .005, sample var 5e-4/3 -> .005 * sqrt(3 / 5e-4) * sqrt(240) = .005 * 1200 = 6
    assert sharpe(np.array([0.01, -0.01, 0.02, 0.0])) == pytest.approx(6.0)
    assert sharpe(np.array([0.01, -0.01, 0.02, 0.0]), periods=1) == pytest.approx(6.0 / math.sqrt(240))
    assert math.isnan(sharpe(np.array([0.01, 0.01, 0.01])))


# --------------------------------------------------------------------------- random-panel properties
def reference_backtest(S: pd.DataFrame, R: pd.DataFrame, top, hold, buy, sell, delay):
    """A slow, explicit backtest: loops over tranches and days, tracks each stock's value."""
    T, N = S.shape
    r = R.reindex(index=S.index, columns=S.columns).to_numpy().copy()
    r[np.isnan(r)] = 0.0
    s = S.to_numpy()
    daily = np.zeros(T)
    nets = []
    for d in range(T):
        e = d + delay
        if e >= T - 1:
            continue
        ok = np.flatnonzero(np.isfinite(s[d]))
        if len(ok) == 0:
            continue
        k = max(int(len(ok) * top + 1e-9), 1) if top < 1 else min(int(top), len(ok))
        ranked = sorted(ok, key=lambda j: (-s[d, j], j))[:k]  # ties: earlier column first
        x = e + hold if e + hold < T else T - 1
        value = np.full(k, 1.0 / k)  # money in each stock, tranche money = 1
        daily[e] -= buy / hold
        for day in range(e + 1, x + 1):
            new = value * (1 + r[day, ranked])
            daily[day] += (new.sum() - value.sum()) / hold
            value = new
        daily[x] -= sell * value.sum() / hold
        nets.append(value.sum() - 1 - buy - sell * value.sum())
    return daily, np.array(nets)


@pytest.fixture
def random_panel():
    rng = np.random.default_rng(2024)
    dates = pd.bdate_range("2020-01-01", periods=60)
    names = [f"S{i:02d}" for i in range(30)]
    R = pd.DataFrame(rng.normal(0.0003, 0.02, (60, 30)), index=dates, columns=names)
    S = pd.DataFrame(rng.normal(size=(60, 30)), index=dates, columns=names)
    S[rng.random((60, 30)) < 0.1] = np.nan
    R[rng.random((60, 30)) < 0.05] = np.nan
    return S, R


@pytest.mark.parametrize("top, hold, buy, sell, delay", [
    (0.1, 5, 0.0, 0.0, 0),
    (0.1, 5, 0.0005, 0.0015, 0),
    (3, 10, 0.001, 0.002, 1),
    (0.2, 1, 0.0005, 0.0015, 2),
])
def test_matches_loop_reference_on_random_panel(random_panel, top, hold, buy, sell, delay):
    S, R = random_panel
    res = run_backtest(S, R, top=top, hold=hold, buy_cost=buy, sell_cost=sell, delay=delay)
    daily, nets = reference_backtest(S, R, top, hold, buy, sell, delay)
    np.testing.assert_allclose(res.daily["return"], daily, atol=1e-13)
    np.testing.assert_allclose(res.trades["net_return"], nets, atol=1e-13)
    # PNL = sum over tranches of (net tranche return) / hold, costs included
    assert res.metrics["PNL"] == pytest.approx(nets.sum() / hold, abs=1e-12)
    assert res.metrics["PNL"] == pytest.approx(res.trades["net_return"].sum() / hold, abs=1e-12)


def test_tranche_gross_is_mean_of_its_purchases(random_panel):
    S, R = random_panel
    buy, sell = 0.0005, 0.0015
    res = run_backtest(S, R, top=0.1, hold=5, buy_cost=buy, sell_cost=sell)
    pos = res.positions.copy()
    pos["growth"] = (pos["net_return"] + 1 + buy) / (1 - sell)   # undo the per-stock costs
    per_tranche = pos.groupby("entry")["growth"].mean() - 1
    np.testing.assert_allclose(per_tranche.to_numpy(), res.trades["gross_return"].to_numpy(), atol=1e-12)
    # n_stocks = floor(0.1 x the day's scored stocks): 2 for 20..29, 3 for 30
    n_valid = S.notna().sum(axis=1).loc[res.trades["entry"]].to_numpy()
    np.testing.assert_array_equal(res.trades["n_stocks"], n_valid // 10)
    assert set(res.trades["n_stocks"]) <= {2, 3}


def test_perfect_foresight_beats_random_scores(random_panel):
    _, R = random_panel
    R = R.fillna(0.0)
    foresight = R.shift(-1)  # known at close t: tomorrow's return (NaN on the last day)
    best = run_backtest(foresight, R, top=1, hold=1, buy_cost=0, sell_cost=0)
    # every day after the first earns that day's best return
    np.testing.assert_allclose(best.daily["return"].iloc[1:], R.max(axis=1).iloc[1:], atol=1e-15)
    assert best.metrics["WINR"] == 1.0
    rng = np.random.default_rng(99)
    for _ in range(20):
        noise = pd.DataFrame(rng.normal(size=R.shape), index=R.index, columns=R.columns)
        rand = run_backtest(noise, R, top=1, hold=1, buy_cost=0, sell_cost=0)
        assert rand.metrics["PNL"] < best.metrics["PNL"]
        assert rand.metrics["SHARPE"] < best.metrics["SHARPE"]


def test_dates_missing_from_scores_still_earn_on_held_stocks():
    # hold=2, top=1. Scores for d2 are absent altogether (not NaN): no tranche opens on d2,
    # but the tranche bought on d1 (B) must still earn d2's and d3's returns.
    scores = S.drop(index=DATES[2])
    res = run_backtest(scores, R, top=1, hold=2, buy_cost=0, sell_cost=0)
    assert list(res.daily.index) == list(DATES)  # the backtest keeps every return date
    assert list(res.trades["entry"]) == [DATES[0], DATES[1], DATES[3], DATES[4]]
    # tranches: d0 A, d1 B, (none on d2), d3 C, d4 B
    # d1: A +0.10 ; d2: A -0.02 on a position grown to 1.10, and B +0.04 ; d3: B 0.00 (A sold
    # at d2) ; d4: C +0.02 ; d5: C 0.00 and B -0.02 -- each tranche holds half the capital
    expected = [0.0, 0.10 / 2, (1.10 * -0.02 + 0.04) / 2, 0.0, 0.02 / 2, (0.0 - 0.02) / 2]
    np.testing.assert_allclose(res.daily["return"], expected, atol=1e-15)


def test_select_top_rejects_ambiguous_top():
    scores = S.to_numpy()
    for bad in (1.0, 1.5, 0.0, -0.1):
        with pytest.raises(ValueError, match="share in \\(0, 1\\)"):
            select_top(scores, bad)
    for bad in (0, -2):
        with pytest.raises(ValueError, match="at least 1"):
            select_top(scores, bad)
