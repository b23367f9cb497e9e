"""Pages generated at build time from what the notebooks measured.

``python -m repro.book pages --executed book/notebooks --out book/_generated`` writes
``execution.md``: per notebook the profile, wall time and peak memory, and the wall
time of each stage, read from papermill's metadata and the notebooks' ``run.json``; and
tags the executed notebooks so that they read as chapters (:func:`tidy_notebook`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import pandas as pd

from . import io, paths


def _notebook_record(path: Path) -> dict:
    nb = json.loads(path.read_text(encoding="utf-8"))
    pm = nb.get("metadata", {}).get("papermill", {})
    params = pm.get("parameters", {})
    return {
        "notebook": path.stem,
        "profile": params.get("profile", "?"),
        "wall_s": pm.get("duration"),
        "started": (pm.get("start_time") or "")[:19].replace("T", " "),
        "failed": bool(pm.get("exception")),
    }


def _run_record(notebook: str, results: Path) -> dict | None:
    path = results / notebook / "run.json"
    return io.read_json(path) if path.is_file() else None


def execution_page(executed: Path, results: Path) -> str:
    notebooks = sorted(p for p in executed.glob("[0-9][0-9]_*.ipynb"))
    rows, stage_tables = [], []
    for nb in notebooks:
        rec = _notebook_record(nb)
        run = _run_record(rec["notebook"], results)
        same = run is not None and run.get("profile") == rec["profile"]
        rec["peak_mem_mb"] = run.get("peak_mem_mb") if same else None
        rows.append(rec)
        if same and run.get("stages"):
            stages = pd.DataFrame(run["stages"])[["stage", "wall_s", "peak_mem_mb"]].rename(
                columns={"wall_s": "wall time (s)", "peak_mem_mb": "peak memory so far (MiB)"})
            stage_tables.append((rec["notebook"], stages))
    table = pd.DataFrame(rows, columns=["notebook", "profile", "wall_s", "peak_mem_mb", "started", "failed"])
    table = table.rename(columns={"wall_s": "wall time (s)", "peak_mem_mb": "peak memory (MiB)",
                                  "started": "started (UTC)"})
    lines = [
        "# Execution",
        "",
        "How long each notebook of this build took, measured while the book was built. Wall time is",
        "papermill's; peak memory is the notebook kernel's peak resident memory (from its `run.json`).",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}.",
        "",
        table.to_markdown(index=False, floatfmt=".1f") if len(table) else "No notebook was executed.",
    ]
    for name, stages in stage_tables:
        lines += ["", f"## {name}: stages", "", stages.to_markdown(index=False, floatfmt=".1f")]
    return "\n".join(lines) + "\n"


def tidy_notebook(nb: dict) -> dict:
    """Tags that make an executed notebook read as a chapter, not a log (jupyter-book honours them):
    papermill's injected-parameters cell is removed (the chapter's settings table shows this run's values),
    the parameters cell is collapsed, and so is the output of a cell that only printed (training logs)."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        outputs = cell.get("outputs", [])
        add = []
        if "injected-parameters" in tags:
            add.append("remove-cell")
        elif "parameters" in tags:
            add.append("hide-input")
        elif outputs and all(o.get("output_type") == "stream" for o in outputs):
            add.append("hide-output")
        tags.extend(t for t in add if t not in tags)
    return nb


def tidy_folder(executed: Path) -> list[str]:
    """:func:`tidy_notebook` on every executed chapter of a folder, in place (atomic writes); their names."""
    done = []
    for path in sorted(executed.glob("[0-9][0-9]_*.ipynb")):
        nb = tidy_notebook(json.loads(path.read_text(encoding="utf-8")))
        io.write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        done.append(path.stem)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.book")
    sub = parser.add_subparsers(dest="command", required=True)
    pages = sub.add_parser("pages", help="write the generated pages of the book")
    pages.add_argument("--executed", type=Path, required=True, help="folder of executed notebooks")
    pages.add_argument("--out", type=Path, required=True)
    pages.add_argument("--results", type=Path, default=None, help="results folder (default: results/)")
    args = parser.parse_args(argv)
    results = args.results or Path(os.environ.get("REPRO_RESULTS_DIR") or paths.project_root() / "results")
    io.write_text(args.out / "execution.md", execution_page(args.executed, results))
    tidy_folder(args.executed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
