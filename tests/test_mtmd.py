"""Chapter 05 (paper 004, MTMD): qlib's Alpha360 inputs inside the day-by-day protocol, Precision@N as HIST counts
it, the calibration's runs on the protocol's days, and the chapter's tables."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from repro.papers import p004_mtmd as P
from repro.protocols import cross_section as cs
from repro.protocols import qlib_alpha360 as qa

SMOKE = dict(start="2016-01-04", end="2017-06-30", split_dates=["2016-09-30", "2016-12-31", "2017-06-01"],
             max_stocks=40, seeds=[0], lightgbm_rounds=20, lightgbm_penalty_scale=0.01)


@pytest.fixture(scope="module")
def prepared():
    cfg = P.Config(**SMOKE)
    experiment, data = P.prepare(cfg, "csi300")
    return cfg, experiment, data


def test_a_window_is_qlibs_normalised_alpha360_row_of_that_day(prepared):
    """What a neural model sees on day t is exactly the 360 columns LightGBM and the ridge see (after
    RobustZScoreNorm and Fillna), reshaped to (60 days, 6 fields), oldest first."""
    _, e, _ = prepared
    panel, t = e.panel, int(e.parts["test"][3])
    stocks = np.nonzero(panel.exists[t])[0]
    rows = qa.alpha360_rows(panel.x, np.full(len(stocks), t), stocks, 60)  # qlib's order: CLOSE59..CLOSE0, OPEN59..
    expected = qa.normalise(panel.scaler, rows)
    window = panel.window(t, 60)[stocks]  # (stocks, 60, 6)
    assert window.shape == (len(stocks), 60, 6)
    np.testing.assert_array_equal(window.transpose(0, 2, 1).reshape(len(stocks), -1), expected)
    np.testing.assert_array_equal(panel.scaled(np.array([t]))[0][stocks], expected)
    # the last day's close over itself is 1 on every row: the training median, so 0 after normalising
    assert np.all(window[:, -1, 0] == 0) and np.abs(window).max() <= qa.CLIP
    # the raw ratio of a known cell, by hand: OPEN of 3 days before t over the close of t
    i = stocks[0]
    raw = panel.x[t - 3, i, 1] / panel.x[t, i, 0]
    col = 60 + 56  # OPEN3 in qlib's columns
    z = np.clip((raw - panel.scaler.center_[col]) / panel.scaler.scale_[col], -3, 3)
    assert window[0, 56, 1] == pytest.approx(z, rel=1e-5)


def test_the_window_normaliser_sees_training_days_only(prepared):
    cfg, e, _ = prepared
    panel = dataclasses.replace(e.panel, x=e.panel.x.copy(), side=dict(e.panel.side))
    after = e.parts["train"].max() + 1
    panel.x[after:] *= 1000.0  # anything after training would move the medians of the price ratios
    panel.x[after:, :, 5] *= 7.0
    refit = qa.fit_window_scaler(panel, e.parts["train"], cfg.window)
    np.testing.assert_array_equal(refit.scaler.center_, e.panel.scaler.center_)
    np.testing.assert_array_equal(refit.scaler.scale_, e.panel.scaler.scale_)
    assert refit.scaler.fitted_dates[1] == e.panel.dates[e.parts["train"].max()]


def test_labels_are_qlibs_and_the_weights_use_nothing_after_the_day(prepared):
    _, e, data = prepared
    p = e.panel
    t = int(e.parts["valid"][0])
    close = p.x[..., 0]
    # qlib: Ref($close,-2)/Ref($close,-1)-1
    np.testing.assert_allclose(p.label[t], close[t + 2] / close[t + 1] - 1, rtol=1e-6)
    np.testing.assert_array_equal(np.nan_to_num(p.label, nan=9), np.nan_to_num(data.label, nan=9))
    w = p.side["weight"]
    # a weight of day t is a trailing mean: changing prices after t leaves it unchanged
    prices = cs.load_prices("csi300", start=P.Config(**SMOKE).start, end=P.Config(**SMOKE).end,
                            max_stocks=40, point_in_time=True)
    prices.close[t + 1:] *= 3
    np.testing.assert_array_equal(qa.traded_value(prices)[: t + 1], w[: t + 1])


def test_precision_at_n_counts_above_the_median_as_hist_and_the_positive_share():
    days = pd.to_datetime(["2020-01-02", "2020-01-03"])
    scores = [0.9, 0.8, 0.1, -0.2, 0.5, 0.0, 0.3, 0.2, 0.1, 0.4]
    labels = [0.01, -0.02, 0.03, -0.01, -0.005, 0.02, 0.01, 0.03, -0.04, 0.05]
    preds = pd.DataFrame({"universe": "u", "model": "m", "seed": 0, "datetime": np.repeat(days, 5),
                          "instrument": list("abcde") * 2, "score": scores, "label": labels})
    table = P.precision_table(preds, ns=(2,)).iloc[0]
    # day 1: top 2 by score a (+0.01), b (-0.02); median 0.0 (-0.005 is e) -> above: a only -> 1/2; positive: 1/2
    # day 2: top 2 e (+0.05), b (+0.01)... by score: e 0.4, b 0.3 -> labels 0.05, 0.01; median 0.02 -> 1/2; positive 2/2
    assert table["P@2"] == pytest.approx(100 * (0.5 + 0.5) / 2)
    assert table["P@2 (return > 0)"] == pytest.approx(100 * (0.5 + 1.0) / 2)


def test_the_calibration_is_scored_on_the_protocols_test_days_and_stocks(prepared):
    cfg, e, data = prepared
    calibration = P.calibrate(cfg, "csi300", e, data, log=lambda s: None)
    assert set(calibration.predictions["model"]) == {qa.LIGHTGBM, qa.RIDGE}
    lgb = calibration.lightgbm[0]
    assert lgb.best_iteration > 1  # the scaled penalties let it learn on a few thousand rows
    runs = P.calibration_runs(calibration, e, cfg)
    assert [r.name for r in runs.runs] == [P.LIGHTGBM, P.FLOOR]
    ridge = runs.first(P.FLOOR)
    test = e.parts["test"]
    preds = ridge.predictions
    assert set(preds["datetime"]) == set(e.panel.dates[test])
    # the ridge's score of a (day, stock) is the calibration's score of that row
    mine = preds.set_index(["datetime", "instrument"])["score"].dropna()
    theirs = calibration.predictions[calibration.predictions["model"] == qa.RIDGE].set_index(
        ["datetime", "instrument"])["score"]
    common = mine.index.intersection(theirs.index)
    assert len(common) == len(mine)
    np.testing.assert_allclose(mine.loc[common].to_numpy(), theirs.loc[common].to_numpy(), rtol=1e-6)
    # and it is the linear model of the normalised windows the neural models see
    t = int(test[0])
    ok = e.panel.exists[t]
    np.testing.assert_allclose(preds[preds["datetime"] == e.panel.dates[t]]["score"].dropna(),
                               (e.panel.scaled(np.array([t]))[0][ok].astype(np.float64) @ calibration.ridge.coef),
                               rtol=1e-4, atol=1e-6)


def test_side_inputs_reach_the_models_that_ask_for_them(prepared):
    _, e, _ = prepared

    class Needs(torch.nn.Module):
        side_inputs = ("weight", "missing")

    with pytest.raises(ValueError, match=r"needs side inputs \['missing'\]; the panel has \['weight'\]"):
        cs.side_batch(Needs(), e.panel, int(e.parts["train"][0]))


def test_ablation_table_pairs_each_memory_variant_with_its_backbone():
    rng = np.random.default_rng(0)
    days = pd.bdate_range("2020-01-01", periods=120)
    base = rng.normal(0.03, 0.05, len(days))
    rows = []
    for model, shift in (("HIST", 0.0), ("MTMD", 0.04), ("MTMD (hidden)", 0.0), ("MLP backbone", 0.0),
                         ("MTMD-MLP", 0.0)):
        for seed in (0, 1):
            noise = rng.normal(0, 0.002, len(days)) if model in ("MTMD (hidden)", "MTMD-MLP") else 0.0
            rows.append(pd.DataFrame({"universe": "csi300", "model": model, "seed": seed, "datetime": days,
                                      "IC": base + shift + noise, "RankIC": base + shift + noise}))
    daily = pd.concat(rows, ignore_index=True)
    table = P.ablation_table(daily, P.Config())
    assert list(table.index.get_level_values("memory").unique()) == ["MTMD (hidden)", "MTMD", "MTMD-MLP"]
    mtmd = table.loc[("csi300", "MTMD", "IC")]
    assert mtmd["difference"] == pytest.approx(0.04) and mtmd["verdict"] == "better"
    assert table.loc[("csi300", "MTMD (hidden)", "IC"), "verdict"].startswith("indistinguishable")
    lines = P.ablation_sentences(table)
    assert lines[1].startswith("- CSI300, MTMD against HIST: IC +0.") and lines[1].endswith("better than without it.")


def tiny(**changes) -> P.Config:
    return P.Config(**{**SMOKE, "hidden": 8, "epochs": 1, "days_per_epoch": 4, "valid_days": 3, "memory_items": 6,
                       "memory_topk": 2, **changes})


def test_mtmd_is_repeatable_its_table_is_recomputed_from_saved_predictions_and_it_records_its_memory(prepared):
    _, e, _ = prepared
    cfg = tiny()
    run = cs.run_model("MTMD", P.MODELS["MTMD"], e, cfg, seed=0, log=lambda *_: None)
    again = cs.run_model("MTMD", P.MODELS["MTMD"], e, cfg, seed=0, log=lambda *_: None)
    pd.testing.assert_frame_equal(run.predictions, again.predictions)  # same seed, same numbers
    saved = run.predictions.pivot(index="datetime", columns="instrument", values="score")
    labels = run.predictions.pivot(index="datetime", columns="instrument", values="label")
    out, _ = cs.evaluate_frames(saved, labels, cs.returns_frame(e.panel), cs.benchmark_returns(e.panel),
                                **cfg.backtest)
    for k, v in run.metrics.items():
        assert out[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    # the memory's use on each test day (not the validation days scored during training), rows summing to 1
    usage = P.memory_usage(run.extras, e.panel.dates[e.parts["test"]])
    assert sorted(usage) == ["hidden", "predefined"]
    for frame in usage.values():
        assert frame.shape == (len(e.parts["test"]), 6)
        np.testing.assert_allclose(frame.sum(axis=1), 1.0, rtol=1e-5)
        assert frame.index[0] == e.panel.dates[e.parts["test"][0]]


def test_every_model_of_the_registry_builds_and_scores_a_real_day(prepared):
    _, e, _ = prepared
    cfg = tiny()
    t = int(e.parts["valid"][0])
    x, idx, mask, _, _ = cs.day_batch(e.panel, t, cfg.window)
    for name, factory in P.MODELS.items():
        model = factory(e.panel, cfg).eval()
        out = model(x, idx, mask, **cs.side_batch(model, e.panel, t))
        assert out.shape == (e.panel.n_stocks,) and torch.isfinite(out[mask]).all(), name
    assert set(P.MODELS) == set(P.TRAINED)


def test_another_universe_and_test_period_run_through_the_same_recipe():
    cfg = tiny(universes=["csi100"], start="2018-01-02", end="2019-12-31",
               split_dates=["2018-12-31", "2019-06-28", "2019-12-20"], max_stocks=25)
    e, data = P.prepare(cfg, "csi100")
    ranges = e.split.ranges()
    assert ranges["test"][0] == pd.Timestamp("2019-07-01") and ranges["test"][1] <= pd.Timestamp("2019-12-20")
    assert e.panel.exists.sum(axis=1).max() <= 25
    calibration = P.calibrate(dataclasses.replace(cfg, lightgbm=False), "csi100", e, data, log=lambda s: None)
    assert list(calibration.summary.index) == [qa.RIDGE]
    runs = P.calibration_runs(calibration, e, cfg)
    assert runs.first(P.FLOOR).universe == "csi100" and np.isfinite(runs.first(P.FLOOR).metrics["IC"])
