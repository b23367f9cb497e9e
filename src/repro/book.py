"""Pages generated at build time from what the notebooks measured.

``python -m repro.book pages --executed book/notebooks --out book/_generated`` writes
``execution.md``: per notebook the profile, wall time and peak memory, and the wall
time of each stage, read from papermill's metadata and the notebooks' ``run.json``;
``overview.md`` and ``overview.csv``: each paper's headline claims beside this build's values
(:mod:`repro.overview`); and tags the executed notebooks so that they read as chapters
(:func:`tidy_notebook`), with a box of the run's reproducibility facts under each title (:func:`fact_box`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from . import io, paths


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` (atomically) only when the file holds something else, so that an unchanged page keeps
    its modification time and Sphinx does not rebuild it; whether it was written."""
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    io.write_text(path, text)
    return True


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


Results = Path | Sequence[Path]


def results_folder(notebook: str, results: Results) -> Path:
    """The folder holding ``notebook``'s results: the first of ``results`` (one folder, or several in order of
    preference, e.g. imported runs before the local ``results/``) with its ``run.json``; else the first."""
    folders = [Path(results)] if isinstance(results, (str, Path)) else [Path(r) for r in results]
    return next((f / notebook for f in folders if (f / notebook / "run.json").is_file()), folders[0] / notebook)


def _run_record(notebook: str, results: Results) -> dict | None:
    path = results_folder(notebook, results) / "run.json"
    return io.read_json(path) if path.is_file() else None


def _records(path: Path, results: Results) -> tuple[dict, dict | None]:
    """(papermill's record of an executed notebook, its ``run.json`` when that run has the same profile)."""
    rec, run = _notebook_record(path), _run_record(path.stem, results)
    return rec, run if run is not None and run.get("profile") == rec["profile"] else None


def execution_page(executed: Path, results: Results) -> str:
    notebooks = sorted(p for p in executed.glob("[0-9][0-9]_*.ipynb"))
    rows, stage_tables = [], []
    for nb in notebooks:
        rec, run = _records(nb, results)
        rec["peak_mem_mb"] = run.get("peak_mem_mb") if run else None
        rows.append(rec)
        if run and run.get("stages"):
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


def chapter_times(executed: Path, results: Results) -> str:
    """A markdown table of each executed chapter's profile, wall time and peak memory (for the teaching page)."""
    rows = []
    for nb in sorted(executed.glob("[0-9][0-9]_*.ipynb")):
        rec, run = _records(nb, results)
        peak = run.get("peak_mem_mb") if run else None
        rows.append({"chapter": f"{{doc}}`/notebooks/{rec['notebook']}`", "profile": rec["profile"],
                     "wall time (min)": rec["wall_s"] / 60 if rec["wall_s"] is not None else float("nan"),
                     "peak memory (GiB)": peak / 1024 if peak else float("nan")})
    if not rows:
        return "No chapter was executed in this build.\n"
    return pd.DataFrame(rows).to_markdown(index=False, floatfmt=".1f") + "\n"


FACTS_KEY = "repro_facts"
#: Packages named in the fact box (the run records more).
FACT_PACKAGES = ("python", "numpy", "pandas", "torch", "tensorflow", "keras", "scikit-learn", "transformers")


def fact_box(run: dict, imported: str | None = None) -> str:
    """A MyST admonition with a run's reproducibility facts, from its ``run.json`` (and the run folder it was
    imported from, for a chapter rendered from ``make book RUNS=...``)."""
    params, machine = run.get("params", {}), run.get("machine", {})
    seeds = {k: v for k, v in params.items() if k == "seeds" or k.endswith("_seeds")}
    data = {"mirror": "the offline mirror (REPRO_DATA_MIRROR)", "upstream": "downloaded from upstream"}
    versions = ", ".join(f"{k} {v}" for k, v in run.get("versions", {}).items() if k in FACT_PACKAGES)
    hardware = f"{machine.get('cpus', '?')} CPU cores ({machine.get('cpu') or machine.get('platform', '?')})"
    lines = [
        "```{admonition} This run",
        ":class: note",
        "",
        f"- **Profile** `{run.get('profile')}`"
        + ("; " + "; ".join(f"`{k}` {v}" for k, v in seeds.items()) if seeds else "")
        + " (every parameter in the settings table below).",
        f"- **Data** {data.get(run.get('data'), run.get('data', '?'))}.",
        f"- **Hardware** {hardware}; GPU: {machine.get('gpu') or 'none used'}.",
        f"- **Cost** {run.get('wall_s', float('nan')):,.0f} s wall time, peak memory "
        f"{run.get('peak_mem_mb', float('nan')):,.0f} MiB (per stage at the end of the chapter).",
        f"- **Code** git commit `{run.get('git_commit') or 'unknown'}`, started {run.get('started_utc', '?')}; "
        f"{versions}.",
        *([f"- **Imported** from the run folder `{imported}`: executed by `repro run` on the hardware above, "
           "not by this build."] if imported else []),
        "```",
    ]
    return "\n".join(lines)


def add_fact_box(nb: dict, run: dict | None) -> dict:
    """Put (or replace) the fact box right after the notebook's title cell."""
    cells = [c for c in nb.get("cells", []) if not c.get("metadata", {}).get(FACTS_KEY)]
    if run is not None:
        box = {"cell_type": "markdown", "metadata": {FACTS_KEY: True},
               "source": fact_box(run, nb.get("metadata", {}).get(IMPORTED_KEY))}
        cells.insert(1 if cells and cells[0].get("cell_type") == "markdown" else 0, box)
    nb["cells"] = cells
    return nb


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


def tidy_folder(executed: Path, results: Results) -> list[str]:
    """:func:`tidy_notebook` and :func:`add_fact_box` (from the run of the same profile in ``results``) on every
    executed chapter of a folder, in place (atomic writes); their names."""
    done = []
    for path in sorted(executed.glob("[0-9][0-9]_*.ipynb")):
        _, run = _records(path, results)
        nb = add_fact_box(tidy_notebook(json.loads(path.read_text(encoding="utf-8"))), run)
        write_if_changed(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        done.append(path.stem)
    return done


def overview_runs(executed: Path, results: Results) -> dict:
    """The results behind :mod:`repro.overview`'s page: every chapter with headlines, its results when it was
    executed into ``executed`` (None otherwise). An executed chapter whose results are missing, or come from
    another profile than the executed notebook, is an error: the page would show numbers of another run."""
    from . import overview

    runs = {}
    for notebook in overview.headline_chapters():
        path = executed / f"{notebook}.ipynb"
        if not path.is_file():
            runs[notebook] = None
            continue
        res = overview.ChapterResults(notebook, results_folder(notebook, results))
        profile = _notebook_record(path)["profile"]
        if res.profile != profile:
            raise overview.MissingResult(
                f"{notebook}: the results in {res.folder} are from profile {res.profile!r} but the executed notebook "
                f"{path} ran profile {profile!r}; re-run the chapter so both come from one run.")
        runs[notebook] = res
    return runs


def write_overview(executed: Path, results: Results, out: Path) -> pd.DataFrame:
    """``overview.md`` and ``overview.csv`` in ``out``; the table."""
    from . import overview

    runs = overview_runs(executed, results)
    table = overview.collect(runs)
    write_if_changed(out / "overview.md", overview.page(table, runs))
    write_if_changed(out / "overview.csv", table.to_csv(index=False))
    return table


IMPORTED_KEY = "repro_imported_from"


class RunFolderError(ValueError):
    """A run folder cannot be rendered as it is (not made by ``repro run``, or its record is incomplete)."""


def find_runs(folder: Path) -> dict[str, Path]:
    """Run folders made by ``repro run`` in ``folder`` (itself one, or holding several): for each notebook, the
    folder of its latest run (by the start time in its ``run.json``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFolderError(f"no run folder {folder}: give a folder made by `repro run` (runs/<notebook>-<UTC "
                             "time>/) or one that holds such folders")
    found: dict[str, tuple[str, Path]] = {}
    for nb in sorted(folder.rglob("[0-9][0-9]_*.ipynb")):
        record = nb.parent / "results" / nb.stem / "run.json"
        if nb.name.startswith(".") or nb.stem.endswith(".failed") or not record.is_file():
            continue
        started = str(io.read_json(record).get("started_utc") or "")
        if nb.stem not in found or started > found[nb.stem][0]:
            found[nb.stem] = (started, nb.parent)
    return {name: run for name, (_, run) in sorted(found.items())}


def check_run(notebook: str, run_dir: Path) -> dict:
    """The run record of a run folder, after checking that its notebook and record agree and say what the book
    must show: the parameters papermill passed, the profile, and the git commit."""
    nb = json.loads((run_dir / f"{notebook}.ipynb").read_text(encoding="utf-8"))
    pm = nb.get("metadata", {}).get("papermill", {})
    run = io.read_json(run_dir / "results" / notebook / "run.json")
    problems = []
    if "parameters" not in pm or "profile" not in pm["parameters"]:
        problems.append("the executed notebook has no papermill parameters (was it made by `repro run`?)")
    if pm.get("exception"):
        problems.append("the notebook stopped with an exception")
    if not run.get("git_commit"):
        problems.append("its run.json records no git commit (run from a git checkout)")
    params = run.get("params") or {}
    if not params:
        problems.append("its run.json records no parameters")
    differ = [k for k, v in pm.get("parameters", {}).items() if k in params and params[k] != v]
    if differ:
        problems.append(f"the notebook's and run.json's parameters differ on {', '.join(sorted(differ))}")
    if problems:
        raise RunFolderError(f"{run_dir}: cannot render {notebook} from it: " + "; ".join(problems) + ".")
    return run


def import_runs(folder: Path, executed: Path, results: Path, stamps: Path | None = None) -> list[str]:
    """Copy each chapter's latest run in ``folder`` into ``executed`` (the notebook, marked with its origin) and
    ``results`` (its results, which ``results`` holds alone afterwards); every run is checked first. A chapter's
    build stamp in ``stamps`` is removed, so a later build without ``RUNS`` executes it here again."""
    import shutil

    runs = find_runs(folder)
    if not runs:
        raise RunFolderError(f"{folder} holds no run made by `repro run` (<notebook>.ipynb beside "
                             "results/<notebook>/run.json)")
    for notebook, run_dir in runs.items():
        check_run(notebook, run_dir)
    shutil.rmtree(results, ignore_errors=True)
    for notebook, run_dir in runs.items():
        nb = json.loads((run_dir / f"{notebook}.ipynb").read_text(encoding="utf-8"))
        nb.setdefault("metadata", {})[IMPORTED_KEY] = run_dir.name
        io.write_text(executed / f"{notebook}.ipynb", json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        shutil.copytree(run_dir / "results" / notebook, results / notebook)
        if stamps is not None:
            (stamps / f"{notebook}.sha256").unlink(missing_ok=True)
    return list(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.book")
    sub = parser.add_subparsers(dest="command", required=True)
    pages = sub.add_parser("pages", help="write the generated pages of the book")
    pages.add_argument("--executed", type=Path, required=True, help="folder of executed notebooks")
    pages.add_argument("--out", type=Path, required=True)
    pages.add_argument("--results", type=Path, action="append", default=None,
                       help="results folder (default: results/); repeat it to look in several, first match wins")
    found = sub.add_parser("runs", help="check a run folder and print the chapters it holds (make book RUNS=...)")
    found.add_argument("folder", type=Path)
    imp = sub.add_parser("import-runs", help="copy the latest run of each chapter in a run folder into the book")
    imp.add_argument("folder", type=Path)
    imp.add_argument("--executed", type=Path, required=True)
    imp.add_argument("--results", type=Path, required=True)
    imp.add_argument("--stamps", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "runs":
            runs = find_runs(args.folder)
            for notebook, run_dir in runs.items():
                check_run(notebook, run_dir)
            print(" ".join(runs))
            return 0
        if args.command == "import-runs":
            runs = find_runs(args.folder)
            for name in import_runs(args.folder, args.executed, args.results, args.stamps):
                print(f"{name}: rendered from {runs[name]}")
            return 0
    except RunFolderError as exc:
        parser.exit(2, f"{exc}\n")
    results = args.results or [Path(os.environ.get("REPRO_RESULTS_DIR") or paths.project_root() / "results")]
    write_if_changed(args.out / "execution.md", execution_page(args.executed, results))
    write_overview(args.executed, results, args.out)
    write_if_changed(args.out / "chapter_times.md", chapter_times(args.executed, results))
    from . import bench

    write_if_changed(args.out / "performance.md", bench.page(bench.bench_dir()))
    tidy_folder(args.executed, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
