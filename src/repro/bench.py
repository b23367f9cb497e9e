"""``make bench``: what things cost on this machine, measured side by side, for the book's Performance appendix.

    python -m repro.bench run [--quick]     measure; write results/bench/*.csv and bench.json
    python -m repro.bench page --out DIR    write DIR/performance.md from those files (make book does it)

Three measurements, each written as a table that the page reads (nothing is typed):

* ``scan.csv``: the selective scan of :mod:`repro.models.ssm`, forward and forward + backward,
  every CPU backend at d_inner 64, d_state 16, batch 32 and L in 16, 64, 256, 1024, and the
  chapters' shapes, beside the memory-bound floor of each shape (the time to stream its
  inputs and outputs once, measured here), so every time reads as a multiple of it;
* ``epochs.csv``: one training epoch of chapter 04's main model (HIGSTM) and its strongest
  baseline (GRU) on 100, 300 and 500 stocks of CSI500, seconds per training day, the peak
  memory once the data is loaded and what training adds above it, each in its own process;
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
from pathlib import Path

import pandas as pd

from . import io, paths

SCAN_LENGTHS = (16, 64, 256, 1024)
#: (name, batch, length, channels, state) of the scans the chapters run (book profile).
CHAPTER_SHAPES = (("HIGSTM, CSI500 day (book)", 498, 16, 32, 32), ("HIGSTM, CSI500 day (paper)", 498, 16, 128, 48),
                  ("S-Mamba, ch. 03 (book)", 64, 16, 32, 8))
SCAN_BACKENDS = ("sequential", "parallel", "fused")
EPOCH_SIZES = (100, 300, 500)
EPOCH_MODELS = ("HIGSTM", "GRU")


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
def epoch_cost(model: str, stocks: int, days: int = 20) -> dict:
    """Seconds per training day of one epoch of a chapter-04 model on ``stocks`` CSI500 stocks (book-profile
    sizes), and the process's peak memory; meant to run in a fresh process (see :func:`epoch_costs`)."""
    import torch

    from .papers import p003_higstm as p003
    from .protocols import cross_section as cs
    from .runs import peak_memory_mb, seed_everything

    cfg = p003.Config(max_stocks=stocks, start="2021-01-01", split_counts=[days + 10, 5, 5], epochs=1,
                      days_per_epoch=days, valid_days=5, seeds=[0], device="cpu")
    experiment = p003.prepare(cfg, "csi500")
    loaded = peak_memory_mb()  # the peak is monotonic: what training adds shows above this
    seed_everything(0)
    net = p003.MODELS[model](experiment.panel, cfg)
    start = time.perf_counter()
    result = cs.train(net, experiment.panel, experiment.parts, 1, cfg.window, days_per_epoch=days,
                      valid_days=5, log=lambda *_: None)
    hist = result.history.iloc[0]
    return {"model": model, "stocks": len(experiment.panel.codes), "days": int(hist["days"]),
            "seconds_per_day": float(hist["train_seconds"]) / int(hist["days"]),
            "epoch_s_incl_validation": time.perf_counter() - start, "peak_after_data_mb": loaded,
            "training_adds_mb": max(0.0, peak_memory_mb() - loaded),
            "threads": torch.get_num_threads(), "parameters": cs.n_parameters(net)}


def epoch_costs(sizes=EPOCH_SIZES, models=EPOCH_MODELS, days: int = 20) -> pd.DataFrame:
    """:func:`epoch_cost` for every model and size, each in its own Python process."""
    rows = []
    for model in models:
        for stocks in sizes:
            code = (f"import json; from repro.bench import epoch_cost; "
                    f"print(json.dumps(epoch_cost({model!r}, {stocks}, {days})))")
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"epoch benchmark {model} x {stocks} failed:\n{proc.stderr[-2000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- scan
def scan_table(quick: bool = False) -> pd.DataFrame:
    """The selective-scan timings of every CPU backend beside the memory floor (see the module docstring)."""
    from .bench_scan import scan_timings

    shapes = [(f"batch 32, L={n}, d 64, N 16", 32, n, 64, 16) for n in (SCAN_LENGTHS[:2] if quick else SCAN_LENGTHS)]
    shapes += [] if quick else list(CHAPTER_SHAPES)
    table = scan_timings(shapes, backends=SCAN_BACKENDS, repeats=3 if quick else 9)
    wide = table.pivot_table(index=["shape", "pass", "floor_ms"], columns="backend", values="median_ms", sort=False)
    ratio = table.pivot_table(index=["shape", "pass"], columns="backend", values="x_floor", sort=False)
    wide = wide.reset_index()
    for backend in SCAN_BACKENDS:
        if backend in ratio.columns:
            wide[f"{backend} (x floor)"] = ratio[backend].to_numpy()
    wide.columns = [c if c in ("shape", "pass", "floor_ms") or "floor" in c else f"{c} (ms)" for c in wide.columns]
    return wide.rename(columns={"floor_ms": "floor (ms)"})


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
    epochs = epoch_costs(sizes=(50, 100) if quick else EPOCH_SIZES, days=5 if quick else 20)
    io.write_text(out / "epochs.csv", epochs.to_csv(index=False))
    root = paths.project_root()
    notebooks = notebook_costs([Path(os.environ.get("REPRO_RESULTS_DIR") or root / "results"), root / "runs"])
    io.write_text(out / "notebooks.csv", notebooks.to_csv(index=False))
    meta["wall_s"] = round(time.perf_counter() - t0, 1)
    io.write_text(out / "bench.json", json.dumps(meta, indent=1) + "\n")
    return out


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
                  "stream the call's inputs and outputs once on this machine).", "",
                  scan.to_markdown(index=False, floatfmt=".2f"), ""]
    if (folder / "epochs.csv").is_file():
        epochs = pd.read_csv(folder / "epochs.csv")
        lines += ["## One training epoch against universe size", "",
                  "Chapter 04's HIGSTM and its strongest baseline (GRU), book-profile sizes, one epoch of training",
                  "days on the first n stocks of CSI500, each size in a fresh process: the peak resident memory once",
                  "the data is loaded, and what training adds above that peak.", "",
                  epochs.to_markdown(index=False, floatfmt=".3f"), ""]
    if (folder / "notebooks.csv").is_file():
        nbs = pd.read_csv(folder / "notebooks.csv")
        lines += ["## Notebooks per profile", "",
                  "The latest run of each notebook and profile among the run records here (`results/` and",
                  "`runs/`): wall time and peak resident memory of the kernel.", "",
                  (nbs.to_markdown(index=False, floatfmt=".1f") if len(nbs) else "No run record found."), ""]
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
