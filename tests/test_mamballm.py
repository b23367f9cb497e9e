"""Chapter 03 (paper 000, MambaLLM): the macro inputs, the headline computation and the data, on hand-made
numbers and on the real prices and texts."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from repro.config import ParameterError
from repro.papers import p000_mamballm as paper
from repro.protocols import price_forecast as pf

needs_mirror = pytest.mark.skipif(not os.environ.get("REPRO_DATA_MIRROR"),
                                  reason="reads us_prices and the MambaLLM texts from REPRO_DATA_MIRROR")
DAYS = pd.bdate_range("2024-01-01", periods=5)


def test_window_mean_averages_the_window_up_to_the_decision_day():
    vectors = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [0.0, 0.0, 0.0, 0.0, 10.0]}, index=DAYS)
    ds = SimpleNamespace(window=2, date=pd.DatetimeIndex([DAYS[0], DAYS[2], DAYS[4], DAYS[2]]))
    got = paper.window_mean(vectors, ds)
    np.testing.assert_allclose(got, [[1.0, 0.0], [2.5, 0.0], [4.5, 5.0], [2.5, 0.0]])


def test_shuffled_days_keep_the_vectors_and_move_them():
    vectors = pd.DataFrame(np.arange(10.0).reshape(5, 2), index=DAYS)
    a, b = paper.shuffled_days(vectors, 0), paper.shuffled_days(vectors, 0)
    pd.testing.assert_frame_equal(a, b)
    assert sorted(map(tuple, a.to_numpy())) == sorted(map(tuple, vectors.to_numpy()))
    assert not a.equals(vectors) and a.index.equals(vectors.index)


def test_macro_vectors_are_scaled_on_the_training_part_only():
    ds = SimpleNamespace(mask=lambda part: np.array([True, True, False, False]) if part == "train" else None)
    x = np.array([[1.0], [3.0], [100.0], [-100.0]])
    np.testing.assert_allclose(paper.scaled_on_train(x, ds)[:, 0], [-1.0, 1.0, 98.0, -102.0])


def _scores():
    rows = []
    rmse = {"MambaLLM": [8.0, 9.0], "GRU": [10.0, 10.0], "LSTM": [12.0, 12.0], paper.SHUFFLED: [1.0, 1.0]}
    for model, values in rmse.items():
        for seed, v in enumerate(values):
            rows.append(dict(experiment=paper.RETURN, model=model, seed=seed, ticker="AAPL", RMSE=v))
    rows.append(dict(experiment=paper.RETURN, model=pf.PERSISTENCE, seed=-1, ticker="AAPL", RMSE=8.5))
    return pd.DataFrame(rows)


def test_rmse_reduction_is_against_the_best_other_model_per_seed():
    table = paper.rmse_reduction(_scores())
    row = table.loc["AAPL"]
    assert row["second best"] == "GRU"  # the shuffled variant (RMSE 1) is MambaLLM itself, not a rival
    assert row["reduction"] == pytest.approx(np.mean([0.2, 0.1]))
    assert row["std over seeds"] == pytest.approx(np.std([0.2, 0.1], ddof=1))
    assert row["vs persistence"] == pytest.approx(1 - 8.5 / 8.5)
    lines = paper.reduction_sentences(table)
    assert lines[0] == ("The paper: up to 28.50% lower RMSE than the second-best model. This run: between +15.0% and "
                        "+15.0% (best on AAPL); positive on 1 of 1 stocks.")
    assert lines[1].startswith("On 0 of 1 stocks")


def test_direction_table_counts_hits_against_the_next_move():
    days = pd.DataFrame({"close": [10.0, 11.0, 10.5, 10.5, 12.0]}, index=DAYS)
    texts = pd.Series(["Overall bullish.", "Conclusion: bearish.", "Conclusion: bullish.", "no view", "bullish"],
                      index=DAYS)
    table = paper.direction_table(texts, days)
    assert table.loc["bullish", "days"] == 2 and table.loc["bullish", "hit rate"] == pytest.approx(0.5)
    assert table.loc["bearish", "hit rate"] == 1.0  # 11.0 -> 10.5; a flat next day (10.5 -> 10.5) misses
    assert table.loc["all with a direction", "days"] == 3


def test_config_rejects_a_start_before_the_authors_texts():
    with pytest.raises(ParameterError, match="before the authors' texts"):
        paper.Config(start="2019-01-01")
    assert paper.Config(start="2019-01-01", text_source="template").start == "2019-01-01"
    with pytest.raises(ParameterError, match="unknown value 'IBM'"):
        paper.Config(tickers=["IBM"])


@needs_mirror
def test_stock_table_has_warm_indicators_and_the_next_close():
    cfg = paper.Config(tickers=["MSFT"], start="2021-01-04", end="2021-06-30")
    table = paper.stock_table(cfg).loc["MSFT"]
    assert not table[paper.FEATURES].isna().any().any()
    inside = table.loc["2021-01-04":]
    assert inside.index[0] == pd.Timestamp("2021-01-04")  # SMA50 is defined on the first day
    np.testing.assert_array_equal(table["next_close"].iloc[:-1].to_numpy(), table["close"].iloc[1:].to_numpy())


@needs_mirror
def test_index_days_texts_and_indicator_vectors():
    cfg = paper.Config(start="2021-01-04", end="2021-01-29", compare_days=2, text_source="template",
                       compare_sources=["template"])
    days = paper.index_days(cfg)
    assert len(days) == 19 and days["text"].str.len().min() > 100
    vec = paper.indicator_vectors(days)
    assert vec.notna().all().all() and len(vec) == 19
    texts = paper.day_texts(cfg, days)
    assert texts.str.endswith(("bullish.", "bearish.", "neutral.")).all()
    shown = paper.side_by_side(cfg, days)
    assert list(shown.columns) == ["DeepSeek-R1-Distill 7B (authors)", "template"] and len(shown) == 2
