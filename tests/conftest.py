"""Shared test setup: results of test runs never land in the project's results/ folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_results(tmp_path_factory):
    """Send every Run (and notebook kernels started by tests) to a temporary results folder."""
    old = os.environ.get("REPRO_RESULTS_DIR")
    os.environ["REPRO_RESULTS_DIR"] = str(tmp_path_factory.mktemp("results"))
    yield
    if old is None:
        os.environ.pop("REPRO_RESULTS_DIR", None)
    else:
        os.environ["REPRO_RESULTS_DIR"] = old


@pytest.fixture(scope="session")
def results_dir():
    return Path(os.environ["REPRO_RESULTS_DIR"])


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Execute a notebook under the smoke profile once per session, in its own papermill process; return the
    executed copy.

    ``smoke_run.prefetch(paths)`` executes the ones not yet run two at a time (a kernel spends much of a smoke run
    importing and loading on one core); the book fixture uses it."""
    from concurrent.futures import ThreadPoolExecutor

    out_dir = tmp_path_factory.mktemp("executed")
    done: dict[str, Path | BaseException] = {}

    def execute(path: Path) -> None:
        out = out_dir / path.name
        profile = path.parent / "profiles" / "smoke" / f"{path.stem}.yaml"
        proc = subprocess.run([sys.executable, "-m", "papermill", str(path), str(out), "-f", str(profile),
                               "--kernel", "repro", "--cwd", str(path.parent), "--no-progress-bar"],
                              capture_output=True, text=True)
        # a failure is remembered, so dependants fail with the same cause
        done[path.stem] = out if proc.returncode == 0 else RuntimeError(proc.stderr[-3000:])

    def prefetch(paths, workers: int = 2) -> None:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(execute, [p for p in paths if p.stem not in done]))

    def run(path: Path) -> Path:
        if path.stem not in done:
            execute(path)
        result = done[path.stem]
        if isinstance(result, BaseException):
            pytest.fail(f"{path.name} failed under the smoke profile: {result}")
        return result

    run.out_dir = out_dir
    run.prefetch = prefetch
    return run


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="session")
def built_book(tmp_path_factory, smoke_run, results_dir):
    """The book built (HTML, `-n -W`) from every notebook executed under the smoke profile; its HTML folder."""
    if not (ROOT / "book" / "_mathjax" / "mathjax" / "tex-chtml.js").is_file():
        pytest.fail("offline MathJax is missing: run `make mathjax` (make test does)")
    src = tmp_path_factory.mktemp("book") / "book"
    shutil.copytree(ROOT / "book", src, ignore=shutil.ignore_patterns("_build", "notebooks", "_generated"))
    (src / "notebooks").mkdir()
    smoke_run.prefetch(NOTEBOOKS)
    for nb in NOTEBOOKS:
        shutil.copy(smoke_run(nb), src / "notebooks" / nb.name)
    bin_dir = Path(sys.executable).parent
    subprocess.run([sys.executable, "-m", "repro.book", "pages", "--executed", str(src / "notebooks"),
                    "--out", str(src / "_generated"), "--results", str(results_dir)], check=True)
    proc = subprocess.run([str(bin_dir / "jupyter-book"), "build", str(src), "--builder", "html", "-W", "-n",
                           "--keep-going"], capture_output=True, text=True)
    assert proc.returncode == 0, (f"book build failed (warnings are errors):\n{proc.stdout[-4000:]}\n"
                                  f"{proc.stderr[-4000:]}")
    return src / "_build" / "html"
