"""The overview page: each paper's headline claim beside the run's value, read from saved results, never typed;
a value the page needs and the results lack is an error that names it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from repro import overview, report
from repro.book import overview_runs, write_overview
from repro.papers import p001_convlstm_t5 as p001
from repro.papers import p003_higstm as p003
from repro.protocols import cross_section as cs
from repro.protocols import price_forecast as pf

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DAYS = pd.bdate_range("2015-11-02", periods=80)


def write_run(folder: Path, profile: str = "book", **params) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    run = {"profile": profile, "params": {"profile": profile, **params}, "started_utc": "2026-12-02T10:00:00+00:00",
           "git_commit": "abc1234"}
    (folder / "run.json").write_text(json.dumps(run))


def p001_results(folder: Path) -> pd.DataFrame:
    """Hand-made chapter-02 results for AAPL: a random-walk close, persistence, and a hybrid with two seeds whose
    errors are clearly larger than persistence's."""
    rng = np.random.default_rng(0)
    close = 110 + np.cumsum(rng.normal(0, 1.5, len(DAYS) + 1))
    y_true, last = close[1:], close[:-1]
    frames = [pd.DataFrame({"seed": -1, "model": pf.PERSISTENCE, "y_pred": last})]
    for seed in (0, 1):
        frames.append(pd.DataFrame({"seed": seed, "model": p001.HYBRID, "y_pred": last + rng.normal(0, 3, len(DAYS))}))
        frames.append(pd.DataFrame({"seed": seed, "model": p001.CONV_LSTM,
                                    "y_pred": last + rng.normal(0, 2, len(DAYS))}))
    preds = pd.concat([f.assign(experiment=p001.RETURN, ticker="AAPL", date=DAYS, target_date=DAYS + pd.offsets.BDay(),
                                y_true=y_true) for f in frames], ignore_index=True)
    preds.to_parquet(folder / "predictions.parquet")
    rows = [{"ticker": "AAPL", "MAE": float(np.abs(g["y_true"] - g["y_pred"]).mean()), "experiment": p001.RETURN,
             "model": m, "seed": s} for (m, s), g in preds.groupby(["model", "seed"])]
    pd.DataFrame(rows).to_csv(folder / "metrics.csv")
    return preds


def test_a_point_forecast_headline_is_computed_from_the_saved_predictions(tmp_path):
    folder = tmp_path / p001.NOTEBOOK
    write_run(folder, tickers=["AAPL"], seeds=[0, 1])
    preds = p001_results(folder)
    [row] = p001.headlines(overview.ChapterResults(p001.NOTEBOOK, folder))
    mae = preds.assign(e=(preds["y_true"] - preds["y_pred"]).abs()).groupby(["model", "seed"])["e"].mean()
    assert row.paper_value == 1.60544 and row.claim == "Table I (AAPL): hybrid MAE 1.6054, Conv-LSTM 3.2583"
    assert row.ours == pytest.approx(mae[p001.HYBRID].mean(), rel=1e-12)
    assert row.ours_std == pytest.approx(mae[p001.HYBRID].std(ddof=1), rel=1e-12) and row.seeds == 2
    assert row.baseline == "persistence" and row.baseline_value == pytest.approx(mae[pf.PERSISTENCE].iloc[0])
    test = report.compare_forecasts(preds[preds["model"] == p001.HYBRID], preds[preds["model"] == pf.PERSISTENCE])
    assert row.vs_baseline == test.loc["AAPL", "verdict"] == "worse"  # sd 3 noise on top of persistence
    ratio = mae[p001.HYBRID].mean() / mae[p001.CONV_LSTM].mean()
    assert row.verdict == (f"Worse than persistence (DM p < 0.01 over 80 days); hybrid / Conv-LSTM MAE "
                           f"{ratio:.2f} (paper 0.49).")
    assert not row.reached and row.section == "Results beside the paper (Tables I and II)"


def test_a_ranking_headline_turns_the_verdict_round_to_speak_of_the_papers_model(tmp_path):
    folder = tmp_path / p003.NOTEBOOK
    write_run(folder, universes=["csi500"], seeds=[0, 1])
    base = np.random.default_rng(1).normal(0, 0.1, len(DAYS))
    frames = [pd.DataFrame({"model": "HIGSTM", "seed": s, "IC": base + 0.06 + 0.001 * s}) for s in (0, 1)]
    frames += [pd.DataFrame({"model": cs.MOMENTUM, "seed": -1, "IC": base + 0.01}),  # 0.05 below HIGSTM every day
               # 0.001 below HIGSTM, a clear gap over the days but inside twice its standard error over seeds
               pd.DataFrame({"model": p003.FLOORS[0], "seed": -1,
                             "IC": base + 0.0595 + np.random.default_rng(2).normal(0, 0.0005, len(DAYS))})]
    daily = pd.concat([f.assign(universe="csi500", datetime=DAYS, RankIC=f["IC"]) for f in frames], ignore_index=True)
    daily.to_csv(folder / "daily_ic.csv")
    [row] = p003.headlines(overview.ChapterResults(p003.NOTEBOOK, folder))
    assert row.claim == "HIGSTM IC 0.0791 on CSI500 (Table 2)" and row.paper_value == 0.0791
    assert row.ours == pytest.approx(0.0605 + base.mean()) and row.ours_std == pytest.approx(0.001 / np.sqrt(2))
    assert row.baseline_value == pytest.approx(0.01 + base.mean()) and row.vs_baseline == "better"
    assert "it is better than momentum (IC difference +0.0505, paired p < 0.01 over 80 days)" in row.verdict
    floor = 0.0605 - (0.0595 + np.random.default_rng(2).normal(0, 0.0005, len(DAYS)).mean())
    assert (f"indistinguishable from the ridge floor (IC difference {floor:+.4f}, paired p < 0.01 over 80 days; "
            "within the spread over seeds)") in row.verdict


def test_a_value_the_overview_needs_and_the_results_lack_is_an_error_that_names_it(tmp_path):
    folder = tmp_path / p003.NOTEBOOK
    write_run(folder, universes=["csi500"], seeds=[0])
    pd.DataFrame({"universe": "csi500", "model": cs.MOMENTUM, "seed": -1, "datetime": DAYS, "IC": 0.0,
                  "RankIC": 0.0}).to_csv(folder / "daily_ic.csv")
    res = overview.ChapterResults(p003.NOTEBOOK, folder)
    with pytest.raises(overview.MissingResult, match=r"04_higstm: HIGSTM's daily IC on csi500 \(universe = 'csi500', "
                                                     r"model = 'HIGSTM'\) is missing from .*daily_ic.csv\. Re-run the "
                                                     r"chapter \(`make book PROFILE=book` re-executes it"):
        p003.headlines(res)
    (folder / "daily_ic.csv").unlink()
    with pytest.raises(overview.MissingResult, match="the file daily_ic.csv is missing"):
        p003.headlines(res)
    with pytest.raises(overview.MissingResult, match="the run record is missing from .*run.json"):
        overview.ChapterResults(p003.NOTEBOOK, tmp_path / "nowhere")


def test_a_claim_whose_subject_was_not_run_is_left_out_not_invented(tmp_path):
    folder = tmp_path / p001.NOTEBOOK
    write_run(folder, tickers=["MSFT"], seeds=[0])  # neither of the paper's tickers
    assert p001.headlines(overview.ChapterResults(p001.NOTEBOOK, folder)) == []


@pytest.mark.slow
def test_every_chapter_with_a_run_gives_its_headlines_from_the_smoke_results(smoke_run, results_dir):
    for nb in NOTEBOOKS:
        smoke_run(nb)
    runs = overview.chapter_runs(results_dir)
    assert sorted(runs) == ["01_keras_baselines", "02_convlstm_t5", "03_mamballm", "04_higstm", "05_mtmd"]
    table = overview.collect(runs)
    assert list(table["notebook"]) == ["01_keras_baselines", "02_convlstm_t5", "03_mamballm", "04_higstm",
                                       "05_mtmd"]
    assert table[["paper_value", "ours", "baseline_value"]].notna().all().all()
    assert set(table["vs_baseline"].str.split(" ").str[0]) <= {"better", "worse", "indistinguishable", "mixed"}
    # the numbers are the chapters' own saved numbers
    mae = pd.read_csv(results_dir / "02_convlstm_t5" / "metrics.csv")
    hybrid = mae[(mae["model"] == p001.HYBRID) & (mae["ticker"] == "AAPL") & (mae["experiment"] == p001.RETURN)]
    assert table.loc[table["notebook"] == "02_convlstm_t5", "ours"].item() == pytest.approx(hybrid["MAE"].mean())
    reduction = pd.read_csv(results_dir / "03_mamballm" / "rmse_reduction.csv", index_col=0)["reduction"]
    assert table.loc[table["notebook"] == "03_mamballm", "ours"].item() == pytest.approx(reduction.max())
    ic = pd.read_csv(results_dir / "04_higstm" / "table2_ours.csv", index_col=0).set_index("model")
    assert table.loc[table["notebook"] == "04_higstm", "ours"].item() == pytest.approx(ic.loc["HIGSTM", "IC_mean"])


@pytest.mark.slow
def test_the_overview_refuses_results_of_another_profile_and_lists_chapters_not_executed(smoke_run, results_dir,
                                                                                          tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    shutil.copy(smoke_run(NOTEBOOKS[4]), executed / NOTEBOOKS[4].name)  # 04_higstm only
    table = write_overview(executed, results_dir, tmp_path / "out")
    assert list(table["notebook"]) == ["04_higstm"]
    page = (tmp_path / "out" / "overview.md").read_text()
    assert "Chapters not executed in this build (no saved results): Paper 002" in page
    assert pd.read_csv(tmp_path / "out" / "overview.csv")["ours"].item() == pytest.approx(table["ours"].item())
    results = tmp_path / "results"
    shutil.copytree(results_dir / "04_higstm", results / "04_higstm")
    run = json.loads((results / "04_higstm" / "run.json").read_text())
    (results / "04_higstm" / "run.json").write_text(json.dumps({**run, "profile": "book"}))
    with pytest.raises(overview.MissingResult, match="are from profile 'book' but the executed notebook .* ran "
                                                     "profile 'smoke'"):
        overview_runs(executed, results)
