"""Verdicts that never rank inside the noise, on hand-made cases; the papers' printed tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from repro import report
from repro.papers import p002_keras, p003_higstm

DAYS = pd.bdate_range("2023-01-02", periods=240, name="datetime")


def daily(model: str, per_seed: dict[int, np.ndarray]) -> pd.DataFrame:
    """A daily-IC frame (model, seed, datetime, IC, RankIC) from one IC series per seed."""
    return pd.concat([pd.DataFrame({"model": model, "seed": s, "datetime": DAYS, "IC": ic, "RankIC": ic})
                      for s, ic in per_seed.items()], ignore_index=True)


def alternating(scale: float) -> np.ndarray:
    return scale * np.where(np.arange(len(DAYS)) % 2 == 0, 1.0, -1.0)


# --------------------------------------------------------------------------- tests by hand
def test_t_test_by_hand():
    t, p, n = report.t_test([1.0, 2.0, 3.0, 4.0, np.nan])
    assert n == 4
    assert t == pytest.approx(2.5 / math.sqrt(5 / 3) * 2)  # mean / sd * sqrt(n)
    assert p == pytest.approx(2 * stats.t.sf(t, 3))
    assert math.isnan(report.t_test([0.3])[0])


def test_diebold_mariano_by_hand():
    # d = a - b = [-1, 0, 1, 2, 3]: mean 1, variance (population) 2; DM = 1 / sqrt(2 / 5),
    # times the Harvey-Leybourne-Newbold factor sqrt((n + 1 - 2) / n) for horizon 1
    dm, p = report.diebold_mariano([1.0, 2.0, 3.0, 4.0, 5.0], [2.0] * 5)
    assert dm == pytest.approx(1 / math.sqrt(2 / 5) * math.sqrt(4 / 5))
    assert p == pytest.approx(2 * stats.t.sf(dm, 4))
    # the sign says which forecast has the smaller loss
    assert report.diebold_mariano([2.0] * 5, [1.0, 2.0, 3.0, 4.0, 5.0])[0] == pytest.approx(-dm)
    # horizon 2 adds the first autocovariance: dc = [-2, -1, 0, 1, 2] -> gamma_1 = (2 + 0 + 0 + 2) / 5
    dm2, _ = report.diebold_mariano([1.0, 2.0, 3.0, 4.0, 5.0], [2.0] * 5, horizon=2)
    assert dm2 == pytest.approx(1 / math.sqrt((2 + 2 * 0.8) / 5) * math.sqrt((5 + 1 - 4 + 2 / 5) / 5))
    assert all(math.isnan(v) for v in report.diebold_mariano([1.0, 1.0], [0.0, 0.0]))


# --------------------------------------------------------------------------- rankings
@pytest.fixture
def base_ic():
    return np.random.default_rng(0).normal(0.0, 0.15, len(DAYS))  # day-to-day noise of a daily IC


def test_a_clear_winner_is_better(base_ic):
    rng = np.random.default_rng(1)
    frame = pd.concat([
        daily("ref", {s: base_ic + rng.normal(0, 0.01, len(DAYS)) for s in range(3)}),
        daily("good", {s: base_ic + 0.06 + rng.normal(0, 0.01, len(DAYS)) for s in range(3)}),
    ])
    verdict = report.ranking_verdict(frame, "ref")
    good = verdict.loc["good"]
    assert good["verdict"] == "better" and good["why"] == ""
    assert good["vs reference"] == pytest.approx(0.06, abs=0.003) and good["paired p"] < 1e-6
    assert verdict.loc["ref", "verdict"] == "reference" and verdict.loc["good", "days"] == 240
    lines = report.ranking_sentences(verdict)
    assert lines[1].startswith("- Better than ref on IC: good (IC +0.0") and "difference +0.06" in lines[1]


def test_a_tie_inside_the_noise_is_indistinguishable(base_ic):
    # the same daily ICs up to a perturbation that averages to exactly zero over the days
    frame = pd.concat([daily("ref", {0: base_ic, 1: base_ic}),
                       daily("twin", {0: base_ic + alternating(0.05), 1: base_ic + alternating(0.05)})])
    verdict = report.ranking_verdict(frame, "ref")
    assert verdict.loc["twin", "vs reference"] == pytest.approx(0.0, abs=1e-12)
    assert verdict.loc["twin", "paired p"] == pytest.approx(1.0)
    assert verdict.loc["twin", ["verdict", "why"]].tolist() == ["indistinguishable", "days"]
    assert "Indistinguishable from ref (paired p >= 0.05 over the days)" in "\n".join(report.ranking_sentences(verdict))


def test_a_difference_within_the_seed_noise_is_indistinguishable(base_ic):
    # every day model "lucky" is 0.02 above the reference, but its seeds spread by +-0.1
    frame = pd.concat([
        daily("ref", {s: base_ic for s in range(3)}),
        daily("lucky", {s: base_ic + 0.02 + off + alternating(0.001) for s, off in enumerate((-0.1, 0.0, 0.1))}),
    ])
    row = report.ranking_verdict(frame, "ref").loc["lucky"]
    assert row["paired p"] < 1e-10  # the days alone would call it
    assert row["seed se"] == pytest.approx(0.1 / math.sqrt(3))  # std of (-0.08, 0.02, 0.12) over sqrt(3)
    assert row[["verdict", "why"]].tolist() == ["indistinguishable", "seeds"]


def test_one_seed_ranks_with_a_warning_and_a_deterministic_baseline_has_no_seed_noise(base_ic):
    frame = pd.concat([daily("ref", {0: base_ic, 1: base_ic + alternating(0.001)}),
                       daily("single", {0: base_ic + 0.05 + alternating(0.01)}),
                       daily("momentum", {-1: base_ic - 0.04 + alternating(0.01)})])
    verdict = report.ranking_verdict(frame, "ref")
    assert verdict.loc["single", "verdict"] == "better (one seed: training noise unknown)"
    line = report.ranking_sentences(verdict)[1]
    assert line.startswith("- Better than ref on IC over the days, with training noise unknown (one seed): single")
    assert "difference +0.0500, p = 0.00" in line
    assert verdict.loc["momentum", "verdict"] == "worse" and verdict.loc["momentum", "seeds"] == 0
    assert report.ranking_sentences(verdict)[-1] == (
        "- Trained with one seed, so training noise is unknown and a ranking that involves them rests on the days "
        "alone: single.")
    with pytest.raises(KeyError, match="reference model 'HIGSTM' is not in the results"):
        report.ranking_verdict(frame, "HIGSTM")


def test_ic_significance_is_icir_times_sqrt_days(base_ic):
    ic = base_ic + 0.03
    row = report.ic_significance(daily("m", {0: ic})).loc["m"]
    assert row["t"] == pytest.approx(ic.mean() / ic.std(ddof=1) * math.sqrt(len(ic)))
    assert row["mean"] == pytest.approx(ic.mean()) and row["days"] == 240 and row["seeds"] == 1


def test_daily_ic_frame_from_long_predictions():
    rng = np.random.default_rng(3)
    rows = []
    for d in DAYS[:5]:
        label = rng.normal(size=8)
        rows.append(pd.DataFrame({"model": "m", "seed": 0, "datetime": d, "instrument": list("abcdefgh"),
                                  "score": label * (1 if d != DAYS[2] else -1), "label": label}))
    out = report.daily_ic_frame(pd.concat(rows))
    np.testing.assert_allclose(out["IC"], [1, 1, -1, 1, 1])
    np.testing.assert_allclose(out["RankIC"], [1, 1, -1, 1, 1])


# --------------------------------------------------------------------------- point forecasts
def forecasts(model: str, y: np.ndarray, pred: np.ndarray, seed: int, ticker: str = "AAA") -> pd.DataFrame:
    return pd.DataFrame({"experiment": "e", "model": model, "seed": seed, "ticker": ticker,
                         "target_date": DAYS[1:], "y_true": y[1:], "y_pred": pred[1:]})


def test_point_verdict_against_persistence():
    rng = np.random.default_rng(5)
    y = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(DAYS))))
    persistence = np.r_[y[0], y[:-1]]
    frames = [forecasts("persistence", y, persistence, -1)]
    frames += [forecasts("sharp", y, y + rng.normal(0, 0.1, len(y)), s) for s in (0, 1)]
    frames += [forecasts("blunt", y, persistence + 3.0 + rng.normal(0, 0.1, len(y)), s) for s in (0, 1)]
    frames += [forecasts("echo", y, persistence + alternating(0.01), s) for s in (0, 1)]
    table = report.point_verdict(pd.concat(frames), "persistence")
    assert table.loc[("e", "sharp", "AAA"), "verdict"] == "better"
    assert table.loc[("e", "sharp", "AAA"), "skill"] > 0.9
    assert table.loc[("e", "blunt", "AAA"), "verdict"] == "worse"
    assert table.loc[("e", "echo", "AAA"), "verdict"] == "indistinguishable"
    summary = report.point_summary(table)
    assert summary.loc[("e", "sharp"), ["better", "worse", "indistinguishable"]].tolist() == [1, 0, 0]
    line = report.point_sentences(summary, "persistence")[0]
    assert line.startswith("- **e / sharp**: MSE skill over persistence +0.9") and "better on 1, worse on 0" in line


def test_variant_verdict_pairs_the_same_model_across_experiments():
    rng = np.random.default_rng(6)
    y = 100 + np.cumsum(rng.normal(0, 1, len(DAYS)))
    noise = rng.normal(0, 1, len(y))
    frames = [forecasts("m", y, y + noise, 0).assign(experiment="with"),
              forecasts("m", y, y + 2 * noise, 0).assign(experiment="without")]
    table = report.variant_verdict(pd.concat(frames), "with", "without")
    assert table.loc[("m", "AAA"), "verdict"] == "better (one seed: training noise unknown)"
    assert table.loc[("m", "AAA"), "skill"] == pytest.approx(0.75, abs=1e-12)  # errors halved: MSE / 4


# --------------------------------------------------------------------------- the papers' tables
def test_paper_tables_are_data_with_their_source():
    t2 = p003_higstm.paper_tables()["table2"]
    assert t2.shape == (36, 6) and t2.loc[("csi500", "HIGSTM"), "IC"] == 0.0791
    assert t2.attrs["source"].startswith("Table 2")
    t3 = p003_higstm.paper_tables()["table3"]
    assert t3.loc[("csi1000", "w/o Index"), "SHARPE"] == 0.7073
    results = p002_keras.paper_tables()["results"]
    assert results.loc["ARIMA", "MSE"] == 34.2816 and math.isnan(results.loc["CNN", "MSE"])
    assert results["MAE"].dtype == float and results.loc["Hybrid", "setting"] == "both"
