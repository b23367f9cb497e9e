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
    pd.DataFrame({"chapter": ["03_mamballm", "04_higstm", "04_higstm"], "model": ["MambaLLM", "HIGSTM", "GRU"],
                  "axis": ["window", "stocks", "stocks"], "size": [5, 100, 100], "epoch_s": [0.2, 5.5, 0.246],
                  "unit": ["window", "training day", "training day"], "units": [64, 20, 20],
                  "seconds_per_unit": [0.003125, 0.275, 0.0123], "peak_after_data_mb": [805.3, 430.4, 431.0],
                  "training_adds_mb": [12.4, 140.6, 40.6], "threads": [1, 2, 2],
                  "parameters": [768936, 21348, 10881]}).to_csv(tmp_path / "epochs.csv", index=False)
    pd.DataFrame({"notebook": ["04_higstm"], "profile": ["book"], "wall_s": [1020.0]}).to_csv(
        tmp_path / "notebooks.csv", index=False)
    text = bench.page(tmp_path)
    assert "Measured 2026-12-02T16:00:00Z on Linux-x, 2 CPU cores, Python 3.11.7; 321 s in all." in text
    for heading in ("## The selective scan", "## One training epoch against universe size or window",
                    "### 03_mamballm: MambaLLM against window", "### 04_higstm: HIGSTM and GRU against universe size",
                    "## Notebooks per profile"):
        assert heading in text
    assert bench.EPOCH_CHAPTERS["04_higstm"].note in text and bench.EPOCH_CHAPTERS["03_mamballm"].note in text
    assert "| L=16    | fused     | forward |        1.25 |      3.50 |" in text
    assert ("| model    |   window |   epoch (s) |   windows |   ms per window |   peak after data (MB) |   "
            "training adds (MB) |   threads |   parameters |") in text
    assert ("| MambaLLM |        5 |       0.200 |        64 |           3.125 |                    805 |"
            "                   12 |         1 |       768936 |") in text
    assert ("| model   |   stocks |   epoch (s) |   days |   ms per day |   peak after data (MB) |   "
            "training adds (MB) |   threads |   parameters |") in text
    assert ("| HIGSTM  |      100 |       5.500 |     20 |      275.000 |                    430 |"
            "                  141 |         2 |        21348 |") in text
    assert ("| GRU     |      100 |       0.246 |     20 |       12.300 |                    431 |"
            "                   41 |         2 |        10881 |") in text
    assert text.index("### 03_mamballm") < text.index("### 04_higstm") < text.index("## Notebooks per profile")
    assert "| 04_higstm  | book      |   1020.0 |" in text


# --------------------------------------------------------------------------- epochs on real data
def recurrent(cell: str, inputs: int, hidden: int, layers: int = 1) -> int:
    """Parameters of a PyTorch GRU or LSTM of ``layers`` layers (two bias vectors per gate)."""
    gates = {"gru": 3, "lstm": 4}[cell]
    return sum(gates * (hidden * ((inputs if layer == 0 else hidden) + hidden) + 2 * hidden) for layer in range(layers))


def keras_bilstm(features: int) -> int:
    """The paper's best BiLSTM (64 then 128 units each way; Keras LSTMs have one bias per gate), dense to 1."""
    return 2 * 4 * (64 * (features + 64) + 64) + 2 * 4 * (128 * (128 + 128) + 128) + 2 * 128 + 1


def keras_cnn(features: int, window: int) -> int:
    """The paper's best CNN: Conv1D(96, kernel 2, same), max pooling by 2 (same), dense 96, dense 1."""
    pooled = -(-window // 2)
    return 96 * (2 * features + 1) + (pooled * 96 + 1) * 96 + 97


def expected_parameters(chapter: str, model: str, size: int) -> int | None:
    import torch

    from repro.models import hist, smamba
    from repro.papers import p000_mamballm, p001_convlstm_t5, p002_keras, p003_higstm, p004_mtmd

    if chapter == "01_keras_baselines":
        features = len(p002_keras.FEATURE_SETS["numeric_full"])
        return keras_bilstm(features) if model == "BiLSTM" else keras_cnn(features, size)
    if chapter == "02_convlstm_t5":
        if model != "Conv-LSTM":
            return None  # the T5's vocabulary is trained on the texts
        c = p001_convlstm_t5.Config()  # Conv1D (kernel 3), an LSTM, a linear head
        features = len(p001_convlstm_t5.PRICE_FEATURES)
        return c.filters * (features * c.kernel_size + 1) + recurrent("lstm", c.filters, c.hidden) + c.hidden + 1
    if chapter == "03_mamballm":
        c = p000_mamballm.Config()
        features = len(p000_mamballm.FEATURES)
        if model == "GRU":
            return recurrent("gru", features, 64) + 64 + 1
        net = smamba.build("mamballm", features, size, 384, **c.model_sizes("mamballm"))  # MiniLM: 384 numbers
        return sum(p.numel() for p in net.parameters())
    if chapter == "04_higstm":
        c = p003_higstm.Config()
        if model == "GRU":
            return recurrent("gru", len(p003_higstm.FEATURES), c.d_model, 2) + c.d_model + 1
        net = p003_higstm.HIGSTM(len(p003_higstm.FEATURES), size, c.window, c.d_model, c.d_state, c.d_conv, c.expand,
                                 c.d_te, c.d_ge, c.d_attn, c.top_share)
        return sum(p.numel() for p in net.parameters())
    c = p004_mtmd.Config()
    if model == "GRU":
        return recurrent("gru", 6, c.hidden, c.layers) + c.hidden + 1  # Alpha360: 6 blocks per day
    # the concept matrix is a buffer: its stocks and concepts add no parameters
    net = hist.HIST(torch.zeros(size, 3), d_feat=6, hidden=c.hidden, layers=c.layers, memory=p004_mtmd.MEMORY[model],
                    memory_items=c.memory_items, topk=c.memory_topk)
    return sum(p.numel() for p in net.parameters())


EVERY_MODEL = [(chapter, model) for chapter, spec in bench.EPOCH_CHAPTERS.items() for model in spec.models]


@pytest.mark.slow
@pytest.mark.parametrize("chapter, model", EVERY_MODEL, ids=[f"{c}-{m}" for c, m in EVERY_MODEL])
def test_a_tiny_epoch_of_every_chapters_models_is_timed_on_real_data(chapter, model):
    # in this process (the imports are paid once); the fresh-process run is the next test
    spec = bench.EPOCH_CHAPTERS[chapter]
    size = 30 if spec.axis == "stocks" else 5
    row = bench.epoch_cost(chapter, model, size, days=2, samples=24)
    assert (row["chapter"], row["model"], row["axis"], row["size"]) == (chapter, model, spec.axis, size)
    assert row["unit"] == spec.unit and row["units"] == (2 if spec.axis == "stocks" else 24)
    assert row["epoch_s"] > 0 and row["seconds_per_unit"] == pytest.approx(row["epoch_s"] / row["units"])
    assert row["peak_after_data_mb"] > 100 and row["training_adds_mb"] >= 0 and row["threads"] >= 1
    expected = expected_parameters(chapter, model, size)
    assert row["parameters"] == expected if expected is not None else row["parameters"] > 10_000


@pytest.mark.slow
def test_epochs_are_timed_each_in_its_own_process_with_its_own_peak_memory():
    costs = bench.epoch_costs(chapters=("04_higstm", "02_convlstm_t5"), stocks=(30,), days=3, models=("GRU",))
    assert list(costs.columns) == ["chapter", "model", "axis", "size", "epoch_s", "unit", "units", "seconds_per_unit",
                                   "peak_after_data_mb", "training_adds_mb", "threads", "parameters"]
    [row] = costs.to_dict("records")  # chapter 02 has no GRU
    assert (row["chapter"], row["model"], row["axis"], row["size"], row["unit"], row["units"]) == (
        "04_higstm", "GRU", "stocks", 30, "training day", 3)
    assert 0 < row["seconds_per_unit"] < 10 and row["epoch_s"] == pytest.approx(3 * row["seconds_per_unit"])
    assert 100 < row["peak_after_data_mb"] < 4000 and row["training_adds_mb"] >= 0 and row["threads"] >= 1
    assert row["parameters"] == expected_parameters("04_higstm", "GRU", 30)


def test_scan_sentences_say_where_the_targets_are_met_and_by_how_much_they_are_missed():
    chapter = bench.CHAPTER_SHAPES[0][0]
    scan = pd.DataFrame({"shape": ["batch 32, L=16", "batch 32, L=16", chapter], "pass": ["forward", "backward",
                                                                                          "forward"],
                         "fused (ms)": [1.0, 4.0, 2.0], "parallel (ms)": [3.0, 2.0, 8.0],
                         "fused (x floor)": [2.0, 9.0, 12.0]})
    assert bench.scan_sentences(scan) == [
        "- Against mambapy's parallel scan: the fused scan is faster in 2 of 3 rows (shape and pass; 0.5 to 4.0 "
        "times as fast), slower on batch 32, L=16 (backward).",
        "- At the chapters' shapes it takes 12.0 to 12.0 times the memory-bound floor; the target is 5 times, met on "
        "0 of 1: missed by up to 2.4x."]
    assert bench.scan_sentences(scan.drop(columns="parallel (ms)")) == []
    # the exp floor: 0.9 ms of decays against a 0.15 ms memory floor (6x), 1.2 ms against 0.3 ms (4x)
    chapter_2 = bench.CHAPTER_SHAPES[1][0]
    scan = pd.concat([scan, pd.DataFrame({"shape": [chapter_2], "pass": ["forward+backward"], "fused (ms)": [3.0],
                                          "parallel (ms)": [9.0], "fused (x floor)": [10.0]})], ignore_index=True)
    scan["floor (ms)"] = [0.1, 0.4, 0.15, 0.3]
    scan["exp floor (ms)"] = [0.5, 0.5, 0.9, 1.2]
    scan["fused (x exp floor)"] = scan["fused (ms)"] / scan["exp floor (ms)"]
    assert bench.scan_sentences(scan)[2] == (
        "- The exponentials alone (the exp floor: one exp(δA) per state update, with the kernel's own exp and threads) "
        "take 4.0 to 6.0 times the memory-bound floor at these shapes: on 1 of 2 rows the 5x target is below what "
        "evaluating the decays costs on this machine, whatever the scan. The fused scan takes 2.2 to 2.2 times the exp "
        "floor (forward), 2.5 to 2.5 times the exp floor (forward+backward).")
    scan["exp floor (ms)"] = float("nan")
    assert len(bench.scan_sentences(scan)) == 2


def test_budget_sentences_hold_each_book_run_to_its_chapters_budget_and_the_memory_limit():
    nbs = pd.DataFrame({"notebook": ["00_data", "01_keras_baselines", "04_higstm", "04_higstm"],
                        "profile": ["book", "book", "book", "smoke"], "wall_s": [6.0, 720.0, 1260.0, 10.0],
                        "peak_mem_mb": [400.0, 4608.0, 2048.0, 300.0]})
    assert bench.budget_sentences(nbs) == [
        "- `book` profile: 1 of 2 chapters within their budget (over: 04_higstm); 01_keras_baselines 12.0 of 15 min, "
        "04_higstm 21.0 of 20 min.",
        "- Every notebook together: 33.1 min of kernel time; the largest peak 4.5 GiB (01_keras_baselines), under the "
        "8 GiB limit."]
    assert bench.budget_sentences(nbs.loc[nbs["profile"] == "smoke"]) == []
