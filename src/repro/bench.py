"""``make bench``: what things cost on this machine, measured side by side, for the book's Performance appendix.

    python -m repro.bench run [--quick]     measure; write results/bench/*.csv and bench.json
    python -m repro.bench page --out DIR    write DIR/performance.md from those files (make book does it)

Three measurements, each written as a table that the page reads (nothing is typed):

* ``scan.csv``: the selective scan of :mod:`repro.models.ssm`, forward and forward + backward,
  every CPU backend at d_inner 64, d_state 16, batch 32 and L in 16, 64, 256, 1024, and the
  chapters' shapes, beside the memory-bound floor of each shape (the time to stream its
  inputs and outputs once, measured here), so every time reads as a multiple of it, and beside
  the exp floor (the decays exp(delta A) alone, the one transcendental every scan evaluates);
* ``epochs.csv`` (long: one row per chapter, model and size): one training epoch of each chapter's
  main model and its strongest trained rival, built as the chapter builds it (its ``Config``
  defaults, the book profile), each (chapter, model, size) in its own process: the seconds of the
  epoch's training steps (no validation), per training day or window, the peak memory once the
  data is loaded and what training adds above it, threads and parameters (:data:`EPOCH_CHAPTERS`):

  - ``01_keras_baselines`` (a comparison without a model of its own): the two networks of its
    headline claims, the BiLSTM (R²) and the CNN (the lowest MAE), at the paper's reported
    hyper-parameters (the chapter tunes its own; its side studies use these), on the
    ``numeric_full`` features of one ticker, against the window;
  - ``02_convlstm_t5``: the paper's hybrid in its two trained parts: the Conv-LSTM (level 1, the
    network that reads the window and the rival of the hybrid's claim) and the T5 of level 2 on its
    texts (its other rivals, persistence, momentum and least squares, have no epochs);
  - ``03_mamballm``: MambaLLM (S-Mamba and the authors' texts) and the GRU (the recurrent baseline
    the chapter plots beside it), against the window;
  - ``04_higstm``: HIGSTM and the GRU on the first 100, 300 and 500 stocks of CSI500;
  - ``05_mtmd``: MTMD and the GRU (the recurrent baseline the chapter also trains on the paper's
    next-day label; HIST is MTMD without its memories) on qlib's Alpha360 inputs, on the first 100,
    300 and 500 rows of CSI500 point in time over June to December 2023 (the chapter's CSI300 has
    about 300 members a day);
* ``notebooks.csv``: every notebook's wall time and peak memory per profile, from the run
  records (``results/<notebook>/run.json`` and run folders made by ``repro run``).

Run it on an idle machine: another job on the same cores shows up as a slower backend.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import io, paths

SCAN_LENGTHS = (16, 64, 256, 1024)
#: (name, batch, length, channels, state) of the scans the chapters run (book profile).
CHAPTER_SHAPES = (("HIGSTM, CSI500 day (book)", 498, 16, 32, 32), ("HIGSTM, CSI500 day (paper)", 498, 16, 128, 48),
                  ("S-Mamba, ch. 03 (book)", 64, 16, 32, 8))
SCAN_BACKENDS = ("sequential", "parallel", "fused")
EPOCH_STOCKS = (100, 300, 500)
EPOCH_WINDOWS = (5, 20, 60)
#: The one ticker of the per-ticker chapters (in StockNet and in ``us_prices``).
EPOCH_TICKER = "AAPL"
EPOCH_SEED = 0
EPOCH_LINE = "EPOCH "  # marks the child's result on its stdout


@dataclass(frozen=True)
class EpochBench:
    """A chapter's row of the epochs table: its main model and strongest rival, what the size counts, and the
    page's sentence on what was measured."""

    models: tuple[str, str]
    axis: str  # "stocks" (universe size) or "window" (days per input window)
    note: str

    @property
    def unit(self) -> str:
        return "training day" if self.axis == "stocks" else "window"


EPOCH_CHAPTERS = {
    "01_keras_baselines": EpochBench(
        ("BiLSTM", "CNN"), "window",
        "The networks of the paper's headline claims, the BiLSTM (R²) and the CNN (MAE), at the hyper-parameters the "
        f"paper reports as best, on the `numeric_full` features of {EPOCH_TICKER} (StockNet), one epoch over its "
        "training windows; Keras's epoch is the second of two, since the first also traces the training step."),
    "02_convlstm_t5": EpochBench(
        ("Conv-LSTM", "T5 (level 2)"), "window",
        f"The hybrid's two trained parts on {EPOCH_TICKER}'s StockNet prices: the Conv-LSTM of level 1, and the T5 of "
        "level 2 on the texts of that Conv-LSTM's forecasts after one epoch, with the sentiment at 0 (the T5's cost "
        "depends on the length of its texts, not on the scores). The T5 reads two numbers whatever the window."),
    "03_mamballm": EpochBench(
        ("MambaLLM", "GRU"), "window",
        "MambaLLM (S-Mamba over the variates, the authors' texts embedded and averaged over the window) and the GRU, "
        f"on {EPOCH_TICKER}'s training windows over the authors' text span; S-Mamba's tokens are the twelve "
        "features, so the window only widens its embedding. MambaLLM's peak after the data includes the sentence "
        "encoder when its texts were not embedded (and cached) before."),
    "04_higstm": EpochBench(
        ("HIGSTM", "GRU"), "stocks",
        "HIGSTM and its strongest baseline, the GRU, on random training days of the first n stocks (by code) of "
        "CSI500."),
    "05_mtmd": EpochBench(
        ("MTMD", "GRU"), "stocks",
        "MTMD and the GRU on Alpha360's 60-day windows, random training days of the first n rows (by code) of CSI500 "
        "point in time over 2023-06..12 (the chapter runs CSI300, about 300 members a day), with the chapter's rank "
        "label and MSE loss."),
}


def bench_dir() -> Path:
    return Path(os.environ.get("REPRO_RESULTS_DIR") or paths.project_root() / "results") / "bench"


# --------------------------------------------------------------------------- notebooks
def notebook_costs(roots: list[Path]) -> pd.DataFrame:
    """Wall time and peak memory of the latest run of each (notebook, profile) among the run records under
    ``roots`` (results folders and run folders)."""
    rows = []
    for root in roots:
        for record in Path(root).rglob("run.json"):
            run = io.read_json(record)
            if "notebook" not in run or "wall_s" not in run:
                continue
            rows.append({"notebook": run["notebook"], "profile": run.get("profile"), "wall_s": run.get("wall_s"),
                         "peak_mem_mb": run.get("peak_mem_mb"), "started": run.get("started_utc"),
                         "cpus": run.get("machine", {}).get("cpus"), "gpu": run.get("machine", {}).get("gpu"),
                         "record": str(record)})
    if not rows:
        return pd.DataFrame(columns=["notebook", "profile", "wall_s", "peak_mem_mb", "started", "cpus", "gpu"])
    frame = pd.DataFrame(rows).sort_values("started")
    latest = frame.groupby(["notebook", "profile"], as_index=False).last()
    return latest.drop(columns="record").sort_values(["profile", "notebook"]).reset_index(drop=True)


# --------------------------------------------------------------------------- training epochs
def _training_windows(ds, samples: int | None):
    """The training windows of a price-forecast dataset (its first ``samples`` of them when given)."""
    import numpy as np

    keep = ds.mask("train")
    if samples:
        keep &= np.cumsum(keep) <= samples
    return ds.select(keep)


def _torch_row(net, seconds: float, units: int) -> dict:
    import torch

    return {"epoch_s": seconds, "units": units, "threads": torch.get_num_threads(),
            "parameters": int(sum(p.numel() for p in net.parameters()))}


def _keras_epoch(model: str, window: int, samples: int | None):
    """Chapter 01: the ``numeric_full`` windows of one ticker (prices and macro data; the text experiments need
    the tweets scored first)."""
    from .models import keras_nets
    from .papers import p002_keras as paper

    keras_nets._keras()  # TensorFlow before the data: the memory once the data is loaded includes it
    import tensorflow as tf

    cfg = paper.Config(tickers=[EPOCH_TICKER], window=window, experiments=["numeric_full"])
    ds = paper.datasets(cfg, paper.daily_table(cfg.tickers, cfg.macro_lag_years), paper.periods(cfg, None))
    train = _training_windows(ds["numeric_full"], samples)
    name = model.lower()

    def epoch() -> dict:
        net, seconds = keras_nets.train_one_epoch(name, keras_nets.PAPER_BEST[name], train.X, train.y, EPOCH_SEED,
                                                  cfg.batch_size)
        return {"size": train.window, "epoch_s": seconds, "units": len(train.y),
                "threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
                "parameters": int(net.count_params())}
    return epoch


def _convlstm_epoch(model: str, window: int, samples: int | None):
    """Chapter 02: every day of one ticker's StockNet prices, the chapter's 64/16/20 split."""
    import numpy as np

    from .models import convlstm, t5_numbers
    from .papers import p001_convlstm_t5 as paper

    cfg = paper.Config(tickers=[EPOCH_TICKER], window=window, window_search=False)
    ds = paper.dataset(cfg, paper.price_table(cfg.tickers), (cfg.start, cfg.end), window)
    train = _training_windows(ds, samples)
    if model == "Conv-LSTM":
        def epoch() -> dict:
            net, seconds = convlstm.train_one_epoch(train.X, train.y, cfg.convlstm_settings(), EPOCH_SEED, "cpu")
            return {"size": train.window, **_torch_row(net, seconds, len(train.y))}
        return epoch
    level1, _ = convlstm.train_one_epoch(train.X, train.y, cfg.convlstm_settings(), EPOCH_SEED, "cpu")
    units = paper.to_units(train, train.to_price(convlstm.predict(level1, train.X)))
    inputs = paper.t5_inputs(cfg, units, np.zeros(len(units)))
    targets = paper.t5_targets(cfg, paper.to_units(train, train.y_raw))
    from transformers import T5ForConditionalGeneration  # noqa: F401  (imported before the peak after the data)

    t5 = t5_numbers.NumberT5(cfg.t5_settings(), model=cfg.t5_model, seed=EPOCH_SEED, device="cpu")

    def epoch() -> dict:
        seconds = t5.train_one_epoch(list(inputs), list(targets))
        return {"size": train.window, **_torch_row(t5.model, seconds, len(inputs))}
    return epoch


def _mamballm_epoch(model: str, window: int, samples: int | None):
    """Chapter 03: one ticker's windows over the authors' text span; MambaLLM's texts embedded up to the last
    training day only (the embedding is cached, and not timed)."""
    from .models import smamba
    from .papers import p000_mamballm as paper

    name = "mamballm" if model == "MambaLLM" else model.lower()
    cfg = paper.Config(tickers=[EPOCH_TICKER], window=window)
    train = _training_windows(paper.dataset(cfg, paper.stock_table(cfg)), samples)
    text = None
    if name == "mamballm":
        days = paper.index_days(cfg).loc[: train.date.max()]
        vectors = paper.text_vectors(cfg, paper.day_texts(cfg, days))
        text = paper.scaled_on_train(paper.window_mean(vectors, train), train)

    def epoch() -> dict:
        net, seconds = smamba.train_one_epoch(name, train.X, train.y, text, cfg.train_settings(), EPOCH_SEED, "cpu",
                                              **cfg.model_sizes(name))
        return {"size": train.window, **_torch_row(net, seconds, len(train.y))}
    return epoch


def _cross_section_epoch(chapter: str, model: str, stocks: int, days: int):
    """Chapters 04 and 05: a short recent span of CSI500 (the chapter's window of history, ``days`` + 10
    training days, 5 validation and 5 test days), one epoch of ``days`` random training days of
    :func:`repro.protocols.cross_section.train` with the chapter's loss, label, learning rate and clipping."""
    import torch  # noqa: F401  (before the data: the memory once the data is loaded includes it)

    from .protocols import cross_section as cs

    split = dict(split_counts=[days + 10, 5, 5], split_dates=None, epochs=1, days_per_epoch=days, valid_days=5,
                 seeds=[EPOCH_SEED], device="cpu", max_stocks=stocks)
    if chapter == "04_higstm":
        from .papers import p003_higstm as paper

        cfg = paper.Config(start="2021-01-01", **split)
        experiment = paper.prepare(cfg, "csi500")
    else:
        from .papers import p004_mtmd as paper

        cfg = paper.Config(universes=["csi500"], start="2023-06-01", end="2023-12-29", **split)
        experiment, _ = paper.prepare(cfg, "csi500")

    def epoch() -> dict:
        net = paper.MODELS[model](experiment.panel, cfg)
        result = cs.train(net, experiment.panel, experiment.parts, 1, cfg.window, lr=cfg.lr, seed=EPOCH_SEED,
                          days_per_epoch=days, valid_days=cfg.valid_days, device="cpu", clip=cfg.clip,
                          loss=cfg.loss, label=cfg.train_label, log=lambda *_: None)
        hist = result.history.iloc[0]
        return {"size": experiment.panel.n_stocks, **_torch_row(net, float(hist["train_seconds"]), int(hist["days"]))}
    return epoch


def epoch_cost(chapter: str, model: str, size: int, days: int = 20, samples: int | None = None) -> dict:
    """One training epoch of ``model`` of ``chapter`` (:data:`EPOCH_CHAPTERS`) at ``size`` stocks or window
    days, and the process's peak memory; meant to run in a fresh process (see :func:`epoch_costs`).

    ``days``: training days of a cross-section epoch; ``samples``: training windows of a per-ticker epoch (None:
    all of the ticker's). The data is loaded first; the peak then is ``peak_after_data_mb`` and what building and
    training the model add above it ``training_adds_mb`` (the peak is monotonic)."""
    from .runs import peak_memory_mb, seed_everything

    spec = EPOCH_CHAPTERS[chapter]
    if model not in spec.models:
        raise ValueError(f"{chapter} times {' and '.join(spec.models)}, not {model!r}")
    if spec.axis == "stocks":
        epoch = _cross_section_epoch(chapter, model, size, days)
    else:
        load = {"01_keras_baselines": _keras_epoch, "02_convlstm_t5": _convlstm_epoch,
                "03_mamballm": _mamballm_epoch}[chapter]
        epoch = load(model, size, samples)
    loaded = peak_memory_mb()
    seed_everything(EPOCH_SEED)  # as the notebooks do (PyTorch's deterministic algorithms too)
    row = epoch()
    return {"chapter": chapter, "model": model, "axis": spec.axis, "size": row["size"], "epoch_s": row["epoch_s"],
            "unit": spec.unit, "units": row["units"], "seconds_per_unit": row["epoch_s"] / row["units"],
            "peak_after_data_mb": loaded, "training_adds_mb": max(0.0, peak_memory_mb() - loaded),
            "threads": row["threads"], "parameters": row["parameters"]}


def epoch_costs(chapters=tuple(EPOCH_CHAPTERS), stocks=EPOCH_STOCKS, windows=EPOCH_WINDOWS, days: int = 20,
                samples: int | None = None, models: tuple[str, ...] | None = None) -> pd.DataFrame:
    """:func:`epoch_cost` for both models (or those of them in ``models``) of every chapter at each of its sizes
    (``stocks`` or ``windows``), each in its own Python process."""
    rows = []
    for chapter in chapters:
        spec = EPOCH_CHAPTERS[chapter]
        for model in (m for m in spec.models if models is None or m in models):
            for size in stocks if spec.axis == "stocks" else windows:
                code = (f"import json; from repro.bench import epoch_cost, EPOCH_LINE; print(EPOCH_LINE + json.dumps("
                        f"epoch_cost({chapter!r}, {model!r}, {size}, {days}, {samples})))")
                proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
                found = [line for line in proc.stdout.splitlines() if line.startswith(EPOCH_LINE)]
                if proc.returncode != 0 or not found:
                    raise RuntimeError(f"epoch benchmark {chapter} {model} x {size} failed:\n{proc.stderr[-2000:]}")
                rows.append(json.loads(found[-1][len(EPOCH_LINE):]))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- scan
def scan_table(quick: bool = False) -> pd.DataFrame:
    """The selective-scan timings of every CPU backend beside the memory floor (see the module docstring)."""
    from .bench_scan import scan_timings

    shapes = [(f"batch 32, L={n}, d 64, N 16", 32, n, 64, 16) for n in (SCAN_LENGTHS[:2] if quick else SCAN_LENGTHS)]
    shapes += [] if quick else list(CHAPTER_SHAPES)
    table = scan_timings(shapes, backends=SCAN_BACKENDS, repeats=3 if quick else 9)
    keys, index = ["shape", "pass"], ["shape", "pass", "floor_ms", "exp_floor_ms"]
    # one row per (shape, pass); the floors are one value there, joined rather than pivoted on (dropna=False would
    # cross them with every other level)
    cells = table.pivot_table(index=keys, columns="backend", values=["median_ms", "x_floor", "x_exp_floor"],
                              sort=False, dropna=False)
    ratio, per_exp = cells["x_floor"], cells["x_exp_floor"]
    wide = table.groupby(keys, sort=False)[index[2:]].first().join(cells["median_ms"])
    wide = wide.reset_index()
    for backend in SCAN_BACKENDS:
        if backend in ratio.columns:
            wide[f"{backend} (x floor)"] = ratio[backend].to_numpy()
    if "fused" in per_exp.columns:
        wide["fused (x exp floor)"] = per_exp["fused"].to_numpy()
    wide.columns = [c if c in index or "floor" in c else f"{c} (ms)" for c in wide.columns]
    return wide.rename(columns={"floor_ms": "floor (ms)", "exp_floor_ms": "exp floor (ms)"})


# --------------------------------------------------------------------------- the run and the page
def run(quick: bool = False, out: Path | None = None) -> Path:
    """Measure everything and write the tables; the folder."""
    out = out or bench_dir()
    out.mkdir(parents=True, exist_ok=True)
    meta = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": quick,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}}
    t0 = time.perf_counter()
    scan = scan_table(quick)
    if len(scan):
        io.write_text(out / "scan.csv", scan.to_csv(index=False))
    sizes = dict(stocks=EPOCH_STOCKS[:1], windows=EPOCH_WINDOWS[:1], days=5, samples=64) if quick else {}
    epochs = epoch_costs(**sizes)
    io.write_text(out / "epochs.csv", epochs.to_csv(index=False))
    root = paths.project_root()
    notebooks = notebook_costs([Path(os.environ.get("REPRO_RESULTS_DIR") or root / "results"), root / "runs"])
    io.write_text(out / "notebooks.csv", notebooks.to_csv(index=False))
    meta["wall_s"] = round(time.perf_counter() - t0, 1)
    io.write_text(out / "bench.json", json.dumps(meta, indent=1) + "\n")
    return out


def epoch_tables(epochs: pd.DataFrame) -> list[str]:
    """Markdown lines of the epochs table: one section per chapter, its sentence and its rows."""
    lines = []
    for chapter, g in epochs.groupby("chapter", sort=False):
        spec = EPOCH_CHAPTERS.get(chapter)
        axis, unit = g["axis"].iloc[0], g["unit"].iloc[0]
        unit = "day" if unit == "training day" else unit
        table = pd.DataFrame({"model": g["model"], axis: g["size"], "epoch (s)": g["epoch_s"], f"{unit}s": g["units"],
                              f"ms per {unit}": 1000 * g["seconds_per_unit"],
                              "peak after data (MB)": g["peak_after_data_mb"],
                              "training adds (MB)": g["training_adds_mb"], "threads": g["threads"],
                              "parameters": g["parameters"]})
        against = "universe size" if axis == "stocks" else "window"
        lines += [f"### {chapter}: {' and '.join(dict.fromkeys(g['model']))} against {against}", "",
                  *([spec.note, ""] if spec else []),
                  table.to_markdown(index=False, floatfmt=("", "", ".3f", "", ".3f", ".0f", ".0f", "", "")), ""]
    return lines


#: The targets the scan is held to: at least as fast as mambapy's parallel scan everywhere, and within this
#: multiple of the memory-bound floor at the chapters' shapes.
SCAN_FLOOR_TARGET = 5.0


def scan_sentences(scan: pd.DataFrame, ours: str = "fused", rival: str = "parallel",
                   target: float = SCAN_FLOOR_TARGET) -> list[str]:
    """Where our CPU scan (``ours``, what ``backend="auto"`` picks on CPU) stands against mambapy's parallel
    scan and against ``target`` x the floor at the chapters' shapes, computed from the table."""
    need = {f"{ours} (ms)", f"{rival} (ms)", f"{ours} (x floor)"}
    if not need <= set(scan.columns) or scan.empty:
        return []
    speedup = scan[f"{rival} (ms)"] / scan[f"{ours} (ms)"]
    slower = scan.loc[speedup < 1]
    chapters = scan.loc[scan["shape"].isin([name for name, *_ in CHAPTER_SHAPES]), f"{ours} (x floor)"]
    lines = [f"- Against mambapy's {rival} scan: the {ours} scan is faster in {len(scan) - len(slower)} of "
             f"{len(scan)} rows (shape and pass; {speedup.min():.1f} to {speedup.max():.1f} times as fast)"
             + ("." if slower.empty else ", slower on " + ", ".join(f"{r['shape']} ({r['pass']})"
                                                                   for _, r in slower.iterrows()) + ".")]
    if len(chapters):
        met = int((chapters <= target).sum())
        lines.append(f"- At the chapters' shapes it takes {chapters.min():.1f} to {chapters.max():.1f} times the "
                     f"memory-bound floor; the target is {target:g} times, met on {met} of {len(chapters)}"
                     + ("." if met == len(chapters) else f": missed by up to {chapters.max() / target:.1f}x."))
    at = scan.loc[scan["shape"].isin([name for name, *_ in CHAPTER_SHAPES])]
    if {"floor (ms)", "exp floor (ms)", f"{ours} (x exp floor)"} <= set(scan.columns) and at["exp floor (ms)"].notna().any():
        at = at.loc[at["exp floor (ms)"].notna()]
        exps = at["exp floor (ms)"] / at["floor (ms)"]
        above = int((exps > target).sum())
        per = {p: g[f"{ours} (x exp floor)"] for p, g in at.groupby("pass", sort=False)}
        lines.append(f"- The exponentials alone (the exp floor: one exp(δA) per state update, with the kernel's own "
                     f"exp and threads) take {exps.min():.1f} to {exps.max():.1f} times the memory-bound floor at "
                     f"these shapes"
                     + (f": on {above} of {len(at)} rows the {target:g}x target is below what evaluating the decays "
                        "costs on this machine, whatever the scan" if above else "")
                     + f". The {ours} scan takes "
                     + ", ".join(f"{v.min():.1f} to {v.max():.1f} times the exp floor ({p})" for p, v in per.items())
                     + ".")
    return lines


#: Wall-time budget of each chapter's ``book`` profile on a 2-core CPU (seconds), as its issue set it.
BOOK_BUDGET_S = {"01_keras_baselines": 900, "02_convlstm_t5": 600, "03_mamballm": 720, "04_higstm": 1200,
                 "05_mtmd": 1500}
#: The memory every ``book``-profile notebook must stay under (MiB).
BOOK_PEAK_LIMIT_MB = 8192


def budget_sentences(notebooks: pd.DataFrame) -> list[str]:
    """The ``book`` profile's runs against their budgets (:data:`BOOK_BUDGET_S`) and the memory limit."""
    book = notebooks.loc[notebooks["profile"] == "book"]
    if book.empty:
        return []
    timed = book.loc[book["notebook"].isin(list(BOOK_BUDGET_S))]
    budget = timed["notebook"].map(BOOK_BUDGET_S)
    over = timed.loc[timed["wall_s"] > budget, "notebook"].tolist()
    lines = [f"- `book` profile: {len(timed) - len(over)} of {len(timed)} chapters within their budget"
             + ("" if not over else " (over: " + ", ".join(over) + ")")
             + "; " + ", ".join(f"{r.notebook} {r.wall_s / 60:.1f} of {b / 60:.0f} min"
                                for r, b in zip(timed.itertuples(), budget)) + "."]
    if "peak_mem_mb" not in book or book["peak_mem_mb"].isna().all():
        return lines
    peak = book["peak_mem_mb"].max()
    lines.append(f"- Every notebook together: {book['wall_s'].sum() / 60:.1f} min of kernel time; the largest peak "
                 f"{peak / 1024:.1f} GiB ({book.loc[book['peak_mem_mb'].idxmax(), 'notebook']}), "
                 + ("under" if peak < BOOK_PEAK_LIMIT_MB else "over") + f" the {BOOK_PEAK_LIMIT_MB // 1024} GiB limit.")
    return lines


def page(folder: Path) -> str:
    """The Performance appendix (MyST markdown) from a bench folder; says so when nothing was measured yet."""
    lines = ["# Performance", "",
             "What the code costs on the machine that ran `make bench`, measured side by side in one run",
             "(`python -m repro.bench run`); the tables below are read from its files in `results/bench/`.", ""]
    meta_path = folder / "bench.json"
    if not meta_path.is_file():
        return "\n".join(lines + ["No benchmark has been run for this build: `make bench` measures and writes it.",
                                  ""])
    meta = io.read_json(meta_path)
    m = meta["machine"]
    lines += [f"Measured {meta['started_utc']} on {m['platform']}, {m['cpus']} CPU cores, Python {m['python']}"
              + (" (quick mode: fewer shapes and repeats)" if meta.get("quick") else "") + f"; "
              f"{meta['wall_s']:.0f} s in all.", ""]
    if (folder / "scan.csv").is_file():
        scan = pd.read_csv(folder / "scan.csv")
        lines += ["## The selective scan", "",
                  "Median milliseconds per call, and the same as a multiple of the memory-bound floor (the time to",
                  "stream the call's inputs and outputs once on this machine) and, for the fused scan, of the exp",
                  "floor (the decays exp(δA) alone, one per state update, by the kernel's own exp: the arithmetic",
                  "no scan can skip).", "",
                  scan.to_markdown(index=False, floatfmt=".2f"), ""] + scan_sentences(scan) + [""]
    if (folder / "epochs.csv").is_file():
        lines += ["## One training epoch against universe size or window", "",
                  "Each chapter's main model and its strongest trained rival, built as the chapter builds them (book",
                  "profile), each chapter, model and size in a fresh process: the seconds of one epoch's training",
                  "steps (validation not counted) and per training day or window, the peak resident memory once the",
                  "data is loaded, and what building and training the model add above that peak.", ""]
        lines += epoch_tables(pd.read_csv(folder / "epochs.csv"))
    if (folder / "notebooks.csv").is_file():
        nbs = pd.read_csv(folder / "notebooks.csv")
        lines += ["## Notebooks per profile", "",
                  "The latest run of each notebook and profile among the run records here (`results/` and",
                  "`runs/`): wall time and peak resident memory of the kernel.", "",
                  (nbs.to_markdown(index=False, floatfmt=".1f") if len(nbs) else "No run record found."), ""]
        lines += budget_sentences(nbs) + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--quick", action="store_true", help="fewer shapes, sizes and repeats (a minute)")
    r.add_argument("--out", type=Path, default=None)
    p = sub.add_parser("page")
    p.add_argument("--out", type=Path, required=True, help="folder for performance.md")
    p.add_argument("--bench", type=Path, default=None, help="bench folder (default results/bench)")
    args = parser.parse_args(argv)
    if args.command == "run":
        print(f"benchmarks written to {run(args.quick, args.out)}")
    else:
        from .book import write_if_changed

        write_if_changed(args.out / "performance.md", page(args.bench or bench_dir()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
