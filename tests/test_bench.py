"""make bench: the Performance appendix is read from the measured files; notebook costs come from run records."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from repro import bench


def record(folder, notebook, profile, started, wall, peak):
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"notebook": notebook, "profile": profile, "started_utc": started,
                                                 "wall_s": wall, "peak_mem_mb": peak,
                                                 "machine": {"cpus": 2, "gpu": None}}))


def test_notebook_costs_keep_the_latest_run_of_each_notebook_and_profile(tmp_path):
    record(tmp_path / "results" / "04_higstm", "04_higstm", "book", "2026-12-01T10:00:00+00:00", 1155.0, 2587.5)
    record(tmp_path / "runs" / "04_higstm-a" / "results" / "04_higstm", "04_higstm", "book",
           "2026-12-02T10:00:00+00:00", 1020.0, 2500.0)
    record(tmp_path / "runs" / "04_higstm-b" / "results" / "04_higstm", "04_higstm", "smoke",
           "2026-12-02T11:00:00+00:00", 12.0, 600.0)
    record(tmp_path / "results" / "00_data", "00_data", "book", "2026-12-01T09:00:00+00:00", 30.0, 400.0)
    table = bench.notebook_costs([tmp_path / "results", tmp_path / "runs"])
    assert table[["notebook", "profile", "wall_s", "peak_mem_mb"]].values.tolist() == [
        ["00_data", "book", 30.0, 400.0], ["04_higstm", "book", 1020.0, 2500.0], ["04_higstm", "smoke", 12.0, 600.0]]


def test_the_page_says_when_nothing_was_measured_and_shows_every_table_when_it_was(tmp_path):
    assert "No benchmark has been run for this build: `make bench`" in bench.page(tmp_path)
    (tmp_path / "bench.json").write_text(json.dumps({"started_utc": "2026-12-02T16:00:00Z", "quick": False,
                                                     "wall_s": 321.4, "machine": {"platform": "Linux-x",
                                                                                  "cpus": 2, "python": "3.11.7"}}))
    pd.DataFrame({"shape": ["L=16"], "backend": ["fused"], "pass": ["forward"], "median_ms": [1.25],
                  "x floor": [3.5]}).to_csv(tmp_path / "scan.csv", index=False)
    pd.DataFrame({"model": ["GRU"], "stocks": [100], "seconds_per_day": [0.0123]}).to_csv(tmp_path / "epochs.csv",
                                                                                          index=False)
    pd.DataFrame({"notebook": ["04_higstm"], "profile": ["book"], "wall_s": [1020.0]}).to_csv(
        tmp_path / "notebooks.csv", index=False)
    text = bench.page(tmp_path)
    assert "Measured 2026-12-02T16:00:00Z on Linux-x, 2 CPU cores, Python 3.11.7; 321 s in all." in text
    for heading in ("## The selective scan", "## One training epoch against universe size", "## Notebooks per profile"):
        assert heading in text
    assert "| L=16    | fused     | forward |        1.25 |      3.50 |" in text
    assert "| GRU     |      100 |             0.012 |" in text and "| 04_higstm  | book      |   1020.0 |" in text


@pytest.mark.slow
def test_an_epoch_is_timed_on_real_data_with_its_own_peak_memory():
    costs = bench.epoch_costs(sizes=(30,), models=("GRU",), days=3)
    [row] = costs.to_dict("records")
    assert row["model"] == "GRU" and row["stocks"] == 30 and row["days"] == 3
    assert 0 < row["seconds_per_day"] < 10 and row["peak_after_data_mb"] > 100 and row["training_adds_mb"] >= 0
    assert row["parameters"] > 1000
