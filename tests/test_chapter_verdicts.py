"""The chapters' verdicts and paper comparisons, computed by the package from hand-made results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repro.papers import p002_keras, p003_higstm
from repro.protocols import cross_section as cs
from repro.protocols import price_forecast as pf

DAYS = pd.bdate_range("2023-01-03", periods=200, name="datetime")


def daily_ic(universe: str, model: str, seeds: list[int], mean: float, base: np.ndarray) -> pd.DataFrame:
    rng = np.random.default_rng(len(model))
    return pd.concat([pd.DataFrame({"universe": universe, "model": model, "seed": s, "datetime": DAYS,
                                    "IC": base + mean + rng.normal(0, 0.002, len(DAYS)),
                                    "RankIC": base + mean}) for s in seeds], ignore_index=True)


def test_p003_verdict_tells_a_clear_gap_from_a_tie_and_quotes_the_paper():
    base = np.random.default_rng(0).normal(0, 0.12, len(DAYS))
    frame = pd.concat([daily_ic("csi500", "HIGSTM", [0, 1], 0.03, base),
                       daily_ic("csi500", "GRU", [0, 1], 0.03, base),  # the same days, the same mean: a tie
                       daily_ic("csi500", "LSTM", [0, 1], -0.02, base),  # 0.05 below on every day
                       daily_ic("csi500", cs.MOMENTUM, [-1], 0.0, -base)])
    table, lines = p003_higstm.verdict(frame, p003_higstm.Config())
    assert table.loc[("csi500", "GRU"), "verdict"] == "indistinguishable"
    assert table.loc[("csi500", "LSTM"), "verdict"] == "worse"
    assert table.loc[("csi500", cs.MOMENTUM), "verdict"] == "worse"
    assert lines[0] == "**CSI500**. The paper reports IC 0.0791 for HIGSTM."
    ic = frame.groupby("model")["IC"].mean()
    worse = next(line for line in lines if line.startswith("- Worse than HIGSTM on IC: LSTM"))
    assert f"LSTM (IC {ic['LSTM']:+.4f}, difference {ic['LSTM'] - ic['HIGSTM']:+.4f}, p = 0.00)" in worse
    assert round(ic["LSTM"] - ic["HIGSTM"], 2) == -0.05
    _, rank_lines = p003_higstm.verdict(frame.assign(universe="csi300"), p003_higstm.Config(universes=["csi300"]),
                                        "RankIC")
    assert rank_lines[0] == "**CSI300**."  # the paper has no CSI300 column and no Rank IC


def test_p003_label_comparison_pairs_each_model_with_its_rank_label_twin():
    base = np.random.default_rng(0).normal(0, 0.12, len(DAYS))
    raw, rank = p003_higstm.FLOORS
    frame = pd.concat([daily_ic("csi500", "GRU", [0, 1], 0.0, base),
                       daily_ic("csi500", "GRU" + p003_higstm.RANK, [0, 1], 0.04, base),  # +0.04 on every day
                       daily_ic("csi500", raw, [-1], 0.01, base), daily_ic("csi500", rank, [-1], 0.01, base)])
    cfg = p003_higstm.Config(rank_label_models=["GRU"])
    table = p003_higstm.label_table(frame, cfg)
    gru = table.loc[("csi500", "GRU", "IC")]
    assert gru["rank - raw"] == pytest.approx(0.04, abs=0.002) and gru["verdict"] == "better"
    floor = table.loc[("csi500", "ridge floor", "RankIC")]
    assert floor["rank - raw"] == 0.0 and floor["verdict"] == "indistinguishable"
    lines = p003_higstm.label_sentences(table)
    assert lines[0].startswith("- CSI500, GRU, raw -> rank label: IC ") and "rank label better" in lines[0]


def test_p003_converged_run_is_judged_against_the_floor_with_its_noise():
    base = np.random.default_rng(0).normal(0, 0.12, len(DAYS))
    floor = p003_higstm.FLOORS[0]
    cfg = p003_higstm.Config(converged_models=["GRU"], converged_epochs=8)
    history = pd.DataFrame({"universe": "csi500", "model": "GRU" + p003_higstm.CONVERGED, "seed": 0,
                            "epoch": [1, 2, 3, 4], "valid_IC": [0.01, 0.03, 0.02, 0.025]})
    for shift, ending in ((0.005, "the training budget does not explain the gap to the paper's IC of 0.0791"),
                          (0.05, "the book budget explains part of the gap")):
        frame = pd.concat([daily_ic("csi500", "GRU", [0, 1], 0.0, base), daily_ic("csi500", floor, [-1], 0.02, base),
                           daily_ic("csi500", "GRU" + p003_higstm.CONVERGED, [0], 0.02 + shift, base)])
        table = p003_higstm.converged_table(frame, history, cfg)
        row = table.loc[("GRU", "IC")]
        assert (row["epochs run"], row["best epoch"], row["stopped early"]) == (4, 2, True)
        assert row["converged - floor"] == pytest.approx(shift, abs=0.002)
        lines = p003_higstm.converged_sentences(table, cfg)
        assert lines[0].startswith("- GRU on every training day stopped after 4 epochs (best: epoch 2)")
        assert ending in lines[1]
    noisy = pd.concat([daily_ic("csi500", floor, [-1], 0.02, base),
                       daily_ic("csi500", "GRU", [0, 1], 0.0, base),
                       daily_ic("csi500", "GRU" + p003_higstm.CONVERGED, [0], 0.04,
                                np.random.default_rng(3).normal(0, 0.3, len(DAYS)))])
    table = p003_higstm.converged_table(noisy, history, cfg)
    assert table.loc[("GRU", "IC"), "converged - floor"] == pytest.approx(0.0327, abs=5e-4)  # t = 1.3 over days
    assert "cannot tell whether the budget matters" in p003_higstm.converged_sentences(table, cfg)[1]


def test_p003_point_in_time_table_sets_the_year_end_list_beside_point_in_time_membership():
    cfg = p003_higstm.Config(pit_models=["GRU"])
    rows = []
    for universe, shift in (("csi500", 0.0), ("csi500" + p003_higstm.PIT, -0.01)):
        for model in ("GRU", *p003_higstm.UNTRAINED):
            for seed in ([0, 1] if model == "GRU" else [-1]):
                rows.append({"universe": universe, "model": model, "seed": seed,
                             "IC": np.nan if model == cs.UNIVERSE else 0.02 + shift + 0.01 * seed,
                             "RankIC": 0.03, "excess_AR": 0.05 + 2 * shift, "SHARPE": -1.0})
    table = p003_higstm.pit_table(pd.DataFrame(rows), cfg)
    assert table.loc[("csi500", "GRU"), ("members on 2023-12-29", "IC")] == pytest.approx(0.025)
    assert table.loc[("csi500", "GRU"), ("point-in-time", "IC")] == pytest.approx(0.015)
    lines = p003_higstm.pit_sentences(table, cfg)
    assert lines[0] == ("- CSI500: the equal-weight universe earns +5.00% a year over the index with the year-end "
                        "list and +3.00% with point-in-time members.")
    assert lines[1].startswith("  IC, year-end list -> point-in-time: GRU +0.0250 -> +0.0150;")


def predictions(experiment: str, model: str, seeds: list[int], y: np.ndarray, pred: np.ndarray) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"experiment": experiment, "model": model, "seed": s, "ticker": "AAPL",
                                    "date": DAYS[:-1], "target_date": DAYS[1:], "y_true": y[1:],
                                    "y_pred": pred[1:]}) for s in seeds], ignore_index=True)


def test_p002_verdict_reports_every_network_against_persistence_and_the_sentiment_effect():
    rng = np.random.default_rng(1)
    y = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(DAYS))))
    persistence = np.r_[y[0], y[:-1]]
    cfg = p002_keras.Config(models=["bilstm", "cnn"])
    frames = []
    for exp in ("numeric", "sentiment"):
        frames.append(predictions(exp, pf.PERSISTENCE, [-1], y, persistence))
        frames.append(predictions(exp, "bilstm", [0, 1, 2], y, persistence + 5.0))  # far off: worse
        frames.append(predictions(exp, "cnn", [0, 1, 2], y, persistence))  # persistence itself: a tie
    table, lines = p002_keras.verdict(pd.concat(frames), cfg)
    assert table.loc[("numeric", "bilstm", "AAPL"), "verdict"] == "worse"
    assert table.loc[("numeric", "cnn", "AAPL"), "verdict"] == "indistinguishable"
    assert "- Networks that beat persistence on at least one ticker: none." in lines
    assert lines[-1] == ("- With the sentiment column against without (same network, seeds and days, but "
                         "hyper-parameters tuned separately), the squared error differs on 0 of 2 (network, ticker) "
                         "pairs.")
    # the paired fit on numeric's hyper-parameters is preferred when it ran: bilstm gets closer with sentiment
    frames += [predictions(p002_keras.SAME_HP, "bilstm", [0, 1, 2], y, persistence + 1.0),
               predictions(p002_keras.SAME_HP, "cnn", [0, 1, 2], y, persistence)]
    _, lines = p002_keras.verdict(pd.concat(frames), cfg)
    assert lines[-1] == ("- With the sentiment column against without (same network, hyper-parameters, seeds and "
                         "days), the squared error differs on 1 of 2 (network, ticker) pairs: bilstm on AAPL (better).")


def scores_frame() -> pd.DataFrame:
    """Per-ticker score rows as pf.fit_seeds writes them, for two tickers and the pooled and mean rows."""
    rows = []
    for exp in ("numeric", "sentiment"):
        for model, mae, seeds in ((pf.PERSISTENCE, 3.0, [-1]), ("bilstm", 30.0, [0, 1]), ("cnn", 12.0, [0, 1]),
                                  ("ARIMA multi_step/test", 50.0, [-1])):
            for seed in seeds:
                for ticker, scale in (("AAPL", 1.0), ("MSFT", 0.5), ("mean", 0.75), ("pooled", 0.9)):
                    rows.append({"experiment": exp, "model": model, "seed": seed, "ticker": ticker,
                                 "MAE": mae * scale + max(seed, 0), "R2": 0.9 - mae / 100,
                                 "MAPE": (mae * scale + max(seed, 0)) / 1000})
    return pd.DataFrame(rows)


def test_p002_paper_comparison_and_model_lines_come_from_the_scores():
    scores = scores_frame()
    table = p002_keras.paper_comparison(scores, ["numeric", "sentiment"])
    assert table.loc["BiLSTM", "our experiment"] == "sentiment"
    assert table.loc["BiLSTM", "our pooled MAE"] == pytest.approx(np.mean([27.0, 28.0]))  # 30 x 0.9 + seed
    assert table.loc["ARIMA", "paper MAE"] == 4.9881 and table.loc["ARIMA", "our experiment"] == "numeric"
    assert table.loc["persistence (not in the paper)", "our pooled MAE"] == pytest.approx(2.7)
    assert np.isnan(table.loc["Transformer", "our pooled MAE"])  # not run
    lines = p002_keras.model_lines(scores, ["numeric", "sentiment"])
    assert lines[1] == ("- **BiLSTM** -- paper: MAE 1.413, R2 0.9973 (with sentiment). Ours (sentiment, 2 seed(s)): "
                        "MAPE 0.0230 ± 0.0007, MAE 23.00, R² 0.600; persistence: MAPE 0.0022, MAE 2.25, R² 0.870.")
    # MAE 30 x 0.75 + seeds 0, 1 = 22.5, 23.5; MAPE a thousandth of it, std over the two seeds 0.0007
    assert lines[3] == "- **Transformer**: not run in this profile."


def test_p003_our_means_beside_the_papers_tables():
    table = pd.DataFrame({"universe": "csi500", "model": ["HIGSTM", "MASTER", "GRU"], "IC_mean": [0.01, 0.02, 0.03],
                          "SHARPE_mean": [0.5, 0.6, 0.7], "n_seeds": 2})
    beside = p003_higstm.beside_paper(table, "csi500", ("IC", "SHARPE"))
    assert list(beside.columns) == ["IC (ours)", "IC (paper)", "SHARPE (ours)", "SHARPE (paper)"]
    assert beside.loc["MASTER"].tolist() == [0.02, 0.0567, 0.6, 1.2904]
    assert beside.loc["GRU", "IC (ours)"] == 0.03 and np.isnan(beside.loc["GRU", "IC (paper)"])  # not in Table 2
    assert p003_higstm.beside_paper(table.assign(universe="csi300"), "csi300") is None
    assert p003_higstm.rerun_baselines(["LSTM", "iTransformer", "MASTER"]) == ["iTransformer", "MASTER"]
    ablations = p003_higstm.beside_paper(table.replace({"MASTER": "w/o Index"}), "csi500", ("IC",), paper="table3")
    assert ablations.loc["w/o Index", "IC (paper)"] == 0.0451
