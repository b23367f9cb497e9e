"""`repro sweep`: grids of checked runs on Dask distributed, failures reported per run, results merged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from repro import sweep

REPRO = Path(sys.executable).parent / "repro"


def test_axes_make_a_grid_of_single_values():
    assert sweep.axis_values("0..4") == ["0", "1", "2", "3", "4"]
    assert sweep.axis_values("csi300, csi500") == ["csi300", "csi500"]
    assert sweep.axis_values('["AAPL", "GOOG"]') == ["AAPL", "GOOG"]
    assert sweep.grid({"seeds": "0..1", "universes": "csi300,csi500"}) == [
        {"seeds": "0", "universes": "csi300"}, {"seeds": "0", "universes": "csi500"},
        {"seeds": "1", "universes": "csi300"}, {"seeds": "1", "universes": "csi500"}]
    assert sweep.point_name({"seeds": "1", "tickers": '["A B"]'}) == "seeds-1_tickers-A-B"
    with pytest.raises(ValueError, match="an empty range"):
        sweep.axis_values("4..0")


def test_merge_gives_mean_and_std_over_seeds_per_setting(tmp_path):
    """Hand-made chapter-04 runs: two seeds on csi500 whose HIGSTM IC means are known."""
    import json

    import numpy as np

    from repro.protocols import cross_section as cs

    days = pd.bdate_range("2023-01-03", periods=60)
    base = np.random.default_rng(0).normal(0, 0.1, len(days))
    records = []
    for seed, shift in ((0, 0.02), (1, 0.04)):
        folder = tmp_path / f"seeds-{seed}"
        res = folder / "results" / "04_higstm"
        res.mkdir(parents=True)
        (res / "run.json").write_text(json.dumps({"profile": "smoke", "params": {"universes": ["csi500"],
                                                                                 "seeds": [seed]}}))
        daily = pd.concat([pd.DataFrame({"model": "HIGSTM", "seed": seed, "IC": base + shift}),
                           pd.DataFrame({"model": cs.MOMENTUM, "seed": -1, "IC": base})])
        daily.assign(universe="csi500", datetime=np.tile(days, 2), RankIC=daily["IC"]).to_csv(res / "daily_ic.csv")
        records.append({"point": {"seeds": str(seed), "universes": "csi500"}, "folder": str(folder),
                        "status": "done"})
    records.append({"point": {"seeds": "2", "universes": "csi500"}, "folder": "", "status": "failed"})
    table = sweep.merge("04_higstm", records)
    [row] = table.to_dict("records")
    assert row["universes"] == "csi500" and row["runs"] == 2 and row["baseline"] == "momentum"
    assert row["mean"] == pytest.approx(base.mean() + 0.03) and row["std"] == pytest.approx(np.std([0.02, 0.04],
                                                                                                 ddof=1))
    assert row["verdicts"] == "better 2"  # each seed clears momentum by 0.02 or 0.04 on every day
    assert sweep.merge("00_data", records).empty  # no headline metric in the data chapter


def test_bad_input_stops_a_sweep_before_anything_runs(tmp_path):
    env = {**os.environ, "REPRO_ROOT": str(Path(__file__).resolve().parents[1])}
    for args, message in ((["04_higstm", "-p", "seed=0..1"], "04_higstm has no parameter 'seed'; its parameters "
                                                             "(closest first): seeds"),
                          (["04_higstm", "-p", "seeds=3..1"], "'3..1': an empty range"),
                          (["04_higstm", "-p", "epochs=1,x"], "04_higstm: parameter epochs='x': expected int")):
        proc = subprocess.run([str(REPRO), "sweep", *args, "--out", str(tmp_path / "s")], env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_a_two_point_smoke_grid_on_two_local_workers_merges_into_one_table(tmp_path):
    out = tmp_path / "sweep"
    env = {k: v for k, v in os.environ.items() if k not in ("REPRO_RESULTS_DIR", "REPRO_PROFILE")}
    proc = subprocess.run([str(REPRO), "sweep", "04_higstm", "--profile", "smoke", "-p", "seeds=0..1",
                           "--workers", "2", "--out", str(out)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "2 runs of 04_higstm (smoke)" in proc.stderr and ", 2 workers;" in proc.stderr
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs["status"]) == ["done", "done"] and list(runs["seeds"]) == [0, 1]
    table = pd.read_csv(out / "sweep.csv")
    ics = [pd.read_csv(out / f"seeds-{s}" / "results" / "04_higstm" / "table2_ours.csv", index_col=0)
           .set_index("model").loc["HIGSTM", "IC_mean"] for s in (0, 1)]
    [row] = table.to_dict("records")
    assert row["runs"] == 2 and row["mean"] == pytest.approx(sum(ics) / 2)
    assert row["std"] == pytest.approx(pd.Series(ics).std(ddof=1))


@pytest.mark.slow
def test_a_failing_run_is_reported_and_the_others_are_kept(tmp_path):
    out = tmp_path / "sweep"
    env = {k: v for k, v in os.environ.items() if k not in ("REPRO_RESULTS_DIR", "REPRO_PROFILE")}
    proc = subprocess.run([str(REPRO), "sweep", "00_data", "--profile", "smoke", "-p", "price_tickers=AAPL,ZZZZ",
                           "--workers", "2", "--out", str(out)], env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr[-4000:]
    runs = pd.read_csv(out / "runs.csv").set_index("price_tickers")
    assert runs.loc["AAPL", "status"] == "done" and runs.loc["ZZZZ", "status"] == "failed"
    assert "ZZZZ" in runs.loc["ZZZZ", "error"] and "cell" in runs.loc["ZZZZ", "error"]
    assert (out / "price_tickers-AAPL" / "00_data.ipynb").is_file()
    assert (out / "price_tickers-ZZZZ" / "00_data.failed.ipynb").is_file()
    assert "no headline metric to merge" in proc.stdout and "(1 done, 1 failed)" in proc.stdout
