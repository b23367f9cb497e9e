"""``repro sweep``: a grid of checked notebook runs on Dask distributed, merged into one table.

    repro sweep 04_higstm --profile book -p seeds=0..4 -p universes=csi300,csi500 [--workers 2]
    repro sweep 04_higstm --profile full -p seeds=0..4 --scheduler tcp://10.0.0.5:8786

Each ``-p`` with several values (``A,B``, a JSON list, or ``0..4`` for integers) is an
axis of the grid; a list parameter gets one item per run (``seeds=[3]``). Every point is
checked (as ``repro run`` does) before anything starts. Runs go to
``runs/sweep-<notebook>-<UTC time>/<point>/``, one ``repro run`` folder each. A run that
fails is reported with its cell and does not stop the others. The chapter's headline
metrics (:mod:`repro.overview`) of the runs are merged into ``sweep.csv``: mean and std over
the values of ``seeds`` per setting of the other axes.

Why Dask distributed: it is pure Python and small on PyPI (Ray ships a ~70 MB binary with
its own object store and dashboard), ``LocalCluster`` gives N local worker processes with
nothing to set up, and the same code connects to a running cluster by its scheduler's
address (``dask scheduler`` / ``dask worker``, or a Kubernetes / HPC launcher). Each task is
coarse (a whole notebook), so a task scheduler's per-task overhead does not matter.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from . import paths

SEED_AXIS = "seeds"


def axis_values(text: str) -> list[str]:
    """The values of one ``-p`` axis: ``"0..4"`` -> 0,1,2,3,4; ``"a,b"`` or ``'["a","b"]'`` -> a, b."""
    text = text.strip()
    if ".." in text and text.replace("..", "", 1).lstrip("-").isdigit():
        lo, hi = (int(x) for x in text.split(".."))
        if hi < lo:
            raise ValueError(f"{text!r}: an empty range (write low..high)")
        return [str(v) for v in range(lo, hi + 1)]
    if text.startswith("["):
        return [json.dumps(v) if not isinstance(v, str) else v for v in json.loads(text)]
    return [v.strip() for v in text.split(",") if v.strip()]


def grid(axes: Mapping[str, str]) -> list[dict[str, str]]:
    """Every combination of the axes' values, as ``-p`` overrides (a list parameter gets one item a run)."""
    names = list(axes)
    values = [axis_values(axes[n]) for n in names]
    for name, vals in zip(names, values):
        if not vals:
            raise ValueError(f"-p {name}: no value")
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def point_name(point: Mapping[str, str]) -> str:
    """A folder name for a grid point: ``seeds-3_universes-csi300``."""
    safe = {k: re.sub(r"[^A-Za-z0-9.]+", "-", v).strip("-") for k, v in point.items()}
    return "_".join(f"{k}-{v}" for k, v in safe.items()) or "default"


def run_point(notebook: str, profile: str, point: Mapping[str, str], folder: str, threads: int) -> dict:
    """One grid point, executed where a Dask worker runs it: ``repro run`` into ``folder``. Never raises: a
    failure comes back as ``{"status": "failed", "error": ...}`` so that the other points go on."""
    from . import cli

    os.environ.update({k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    started = time.perf_counter()
    record = {"point": dict(point), "folder": folder, "status": "done", "error": "", "wall_s": 0.0}
    try:
        _, params = cli.validate(notebook, profile, point)
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        with open(os.devnull, "w") as quiet:
            cli.execute(cli.notebooks()[notebook], out, params, cwd=paths.project_root() / "notebooks",
                        progress=quiet)
    except cli.RunFailed as exc:
        record.update(status="failed", error=str(exc))
    except Exception as exc:  # anything else on the worker: reported, not raised
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    record["wall_s"] = round(time.perf_counter() - started, 1)
    return record


def merge(notebook: str, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The chapter's headline metrics of every finished run, mean and std over the seed axis per setting."""
    from . import overview
    from .papers import chapters

    module = chapters()[notebook]
    if not hasattr(module, "headlines"):
        return pd.DataFrame()
    rows = []
    for rec in records:
        if rec["status"] != "done":
            continue
        res = overview.ChapterResults(notebook, Path(rec["folder"]) / "results" / notebook)
        setting = {k: v for k, v in rec["point"].items() if k != SEED_AXIS}
        for h in module.headlines(res):
            rows.append({**setting, "metric": h.metric, "claim": h.claim, "value": h.ours,
                         "baseline": h.baseline, "baseline value": h.baseline_value, "verdict": h.vs_baseline})
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    done = next(rec for rec in records if rec["status"] == "done")  # a worker that died leaves no point
    keys = [*[k for k in done["point"] if k != SEED_AXIS], "claim", "metric", "baseline"]
    table = frame.groupby(keys, sort=False).agg(
        runs=("value", "size"), mean=("value", "mean"), std=("value", "std"),
        **{"baseline mean": ("baseline value", "mean")},
        verdicts=("verdict", lambda v: ", ".join(f"{w} {n}" for w, n in v.str.split(" ").str[0].value_counts()
                                                 .items())))
    return table.reset_index()


def sweep(notebook: str, profile: str, axes: Mapping[str, str], *, workers: int = 2, scheduler: str | None = None,
          out: Path | None = None, log=print) -> tuple[Path, list[dict], pd.DataFrame]:
    """Check every point, run the grid on Dask, write ``runs.csv`` and ``sweep.csv``; (folder, records, table)."""
    from . import cli

    points = grid(axes)
    for point in points:  # every point is checked before anything starts
        cli.validate(notebook, profile, point)
    now = dt.datetime.now(dt.timezone.utc)
    folder = out or paths.project_root() / "runs" / f"sweep-{notebook}-{now:%Y%m%dT%H%M%SZ}"
    folder.mkdir(parents=True, exist_ok=False)
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    threads = max(1, (os.cpu_count() or 1) // workers) if scheduler is None else 1
    records = []
    with Client(scheduler or cluster) as client:
        log(f"{len(points)} runs of {notebook} ({profile}) on {client.scheduler_info()['address']}, "
            f"{len(client.scheduler_info()['workers'])} workers; folders under {folder}/")
        futures = [client.submit(run_point, notebook, profile, p, str(folder / point_name(p)), threads,
                                 key=f"{notebook}-{point_name(p)}", pure=False) for p in points]
        for future in as_completed(futures):
            try:
                rec = future.result()
            except Exception as exc:  # the worker itself died: still only this point is lost
                rec = {"point": {}, "folder": "", "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                       "wall_s": float("nan")}
            records.append(rec)
            log(f"[{len(records)}/{len(points)}] {point_name(rec['point'])}: {rec['status']} in {rec['wall_s']} s"
                + (f": {rec['error']}" if rec["error"] else ""))
    if cluster is not None:
        cluster.close()
    order = {point_name(p): i for i, p in enumerate(points)}
    records.sort(key=lambda r: order.get(point_name(r["point"]), len(order)))
    runs = pd.DataFrame([{**r["point"], "status": r["status"], "wall_s": r["wall_s"], "folder": r["folder"],
                          "error": r["error"]} for r in records])
    runs.to_csv(folder / "runs.csv", index=False)
    table = merge(notebook, records)
    if len(table):
        table.to_csv(folder / "sweep.csv", index=False)
    return folder, records, table


def main(notebook: str, profile: str, pairs: Sequence[str], workers: int, scheduler: str | None,
         out: str | None) -> int:
    """``repro sweep``: exit 0 when every run finished, 1 when some failed, 2 on bad input (nothing ran)."""
    from . import cli

    notebook = cli.resolve_notebook(notebook, list(cli.notebooks()))
    try:
        axes = cli.parse_overrides(pairs)
        grid(axes)  # a malformed axis is bad input; sweep() checks every point's values before it starts
    except ValueError as exc:
        raise cli.UsageError(str(exc)) from None
    if workers < 1:
        raise cli.UsageError(f"--workers {workers}: at least 1")
    folder = Path(out).expanduser().resolve() if out else None
    if folder is not None and folder.exists():
        raise cli.UsageError(f"--out {out}: exists; name a new folder, so that sweeps do not mix")
    folder, records, table = sweep(notebook, profile, axes, workers=workers, scheduler=scheduler, out=folder,
                                   log=lambda m: print(m, file=sys.stderr, flush=True))
    failed = [r for r in records if r["status"] != "done"]
    if len(table):
        with pd.option_context("display.width", 160, "display.max_colwidth", 60):
            print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
        print(f"\nmerged: {folder / 'sweep.csv'}")
    else:
        print("no headline metric to merge (the chapter has none, or no run finished)")
    print(f"runs: {folder / 'runs.csv'} ({len(records) - len(failed)} done, {len(failed)} failed)")
    return 1 if failed else 0


__all__ = ["axis_values", "grid", "main", "merge", "point_name", "run_point", "sweep"]
