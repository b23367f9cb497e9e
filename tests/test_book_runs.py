"""The book rendered from run folders that `repro run` made elsewhere (`make book RUNS=...`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repro import book, inputs

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def fake_run(folder: Path, notebook: str, started: str, commit: str | None = "abc1234", seeds=(0,),
             nb_seeds=None) -> Path:
    """A run folder as `repro run` leaves it: the executed notebook and results/<notebook>/run.json."""
    (folder / "results" / notebook).mkdir(parents=True)
    params = {"profile": "smoke", "seeds": list(seeds)}
    nb = {"cells": [], "metadata": {"papermill": {"parameters": {**params, "seeds": list(nb_seeds or seeds)}}}}
    (folder / f"{notebook}.ipynb").write_text(json.dumps(nb))
    (folder / "results" / notebook / "run.json").write_text(json.dumps(
        {"profile": "smoke", "params": params, "git_commit": commit, "started_utc": started}))
    return folder


def test_the_latest_run_of_each_chapter_is_found_and_failed_runs_are_not(tmp_path):
    fake_run(tmp_path / "04_higstm-20261201T100000Z", "04_higstm", "2026-12-01T10:00:00+00:00")
    late = fake_run(tmp_path / "04_higstm-20261202T090000Z", "04_higstm", "2026-12-02T09:00:00+00:00")
    failed = tmp_path / "04_higstm-20261203T090000Z"
    failed.mkdir()
    (failed / "04_higstm.failed.ipynb").write_text("{}")
    other = fake_run(tmp_path / "gpu" / "02_convlstm_t5-20261130T000000Z", "02_convlstm_t5",
                     "2026-11-30T00:00:00+00:00")
    assert book.find_runs(tmp_path) == {"02_convlstm_t5": other, "04_higstm": late}
    assert book.find_runs(late) == {"04_higstm": late}  # a single run folder works too
    with pytest.raises(book.RunFolderError, match="no run folder .*nowhere"):
        book.find_runs(tmp_path / "nowhere")


def test_a_run_without_commit_or_with_disagreeing_parameters_is_refused(tmp_path):
    run = fake_run(tmp_path / "a", "04_higstm", "2026-12-01T10:00:00+00:00", commit=None, seeds=(0,), nb_seeds=(1,))
    with pytest.raises(book.RunFolderError, match=r"cannot render 04_higstm from it: its run.json records no git "
                                                  r"commit \(run from a git checkout\); the notebook's and "
                                                  r"run.json's parameters differ on seeds\."):
        book.check_run("04_higstm", run)
    with pytest.raises(book.RunFolderError, match="holds no run made by `repro run`"):
        book.import_runs(tmp_path / "a" / "results", tmp_path / "exec", tmp_path / "res")


def test_importing_marks_the_notebook_drops_the_build_stamp_and_the_fact_box_says_so(tmp_path):
    run = fake_run(tmp_path / "runs" / "04_higstm-20261202T090000Z", "04_higstm", "2026-12-02T09:00:00+00:00")
    stamps = tmp_path / "inputs"
    stamps.mkdir()
    (stamps / "04_higstm.sha256").write_text("x\n")
    (tmp_path / "res" / "stale").mkdir(parents=True)
    assert book.import_runs(tmp_path / "runs", tmp_path / "exec", tmp_path / "res", stamps) == ["04_higstm"]
    nb = json.loads((tmp_path / "exec" / "04_higstm.ipynb").read_text())
    assert nb["metadata"][book.IMPORTED_KEY] == run.name and not (stamps / "04_higstm.sha256").exists()
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == ["04_higstm"]  # only the imported results
    box = book.add_fact_box({**nb, "cells": [{"cell_type": "markdown", "metadata": {}, "source": "# T"}]},
                            json.loads((run / "results" / "04_higstm" / "run.json").read_text()))["cells"][1]["source"]
    assert f"- **Imported** from the run folder `{run.name}`: executed by `repro run`" in box
    assert book.results_folder("04_higstm", [tmp_path / "res", tmp_path / "other"]) == tmp_path / "res" / "04_higstm"
    assert book.results_folder("00_data", [tmp_path / "res", tmp_path / "other"]) == tmp_path / "res" / "00_data"


@pytest.mark.slow
def test_make_book_renders_a_chapter_from_a_repro_run_folder(tmp_path, smoke_run, results_dir):
    if not (ROOT / "book" / "_mathjax" / "mathjax" / "tex-chtml.js").is_file():
        pytest.fail("offline MathJax is missing: run `make mathjax` (make test does)")
    bin_dir = Path(sys.executable).parent
    runs = tmp_path / "gpu-box"
    env = {k: v for k, v in os.environ.items() if k not in ("REPRO_RESULTS_DIR", "REPRO_PROFILE")}
    made = subprocess.run([str(bin_dir / "repro"), "run", "04_higstm", "--profile", "smoke", "-p", "seeds=1",
                           "--out", str(runs / "04_higstm-elsewhere")], env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-3000:]
    # a project whose other chapters were executed here before (their notebooks, results and build stamps)
    root = tmp_path / "p"
    for name in ("src", "notebooks", "data/manifests", "book"):
        shutil.copytree(ROOT / name, root / name, symlinks=True, ignore=shutil.ignore_patterns(
            "__pycache__", "_build", "notebooks" if name == "book" else "__none__", "_generated", "_mathjax"))
    (root / "book" / "_mathjax").symlink_to(ROOT / "book" / "_mathjax")
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy2(ROOT / name, root / name)
    (root / "book" / "notebooks").mkdir()
    executed_here = [nb for nb in NOTEBOOKS if nb != "04_higstm"]
    for nb in executed_here:
        inputs.write_stamp(nb, "smoke", root / "book" / "_generated" / "inputs" / f"{nb}.sha256", root)
    time.sleep(0.01)
    for nb in executed_here:
        shutil.copy(smoke_run(ROOT / "notebooks" / f"{nb}.ipynb"), root / "book" / "notebooks" / f"{nb}.ipynb")
        shutil.copytree(results_dir / nb, root / "results" / nb)
    stamp = tmp_path / "installed"
    stamp.touch()
    proc = subprocess.run(["make", "-C", str(root), "book", "PROFILE=smoke", f"RUNS={runs}",
                           f"VENV={bin_dir.parent}", f"STAMP={stamp}"], env={**env, "REPRO_ROOT": str(root)},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "papermill" not in proc.stdout  # nothing executed here
    assert f"04_higstm: rendered from {runs / '04_higstm-elsewhere'}" in proc.stdout
    html = (root / "book" / "_build" / "html" / "notebooks" / "04_higstm.html").read_text()
    run = json.loads((runs / "04_higstm-elsewhere" / "results" / "04_higstm" / "run.json").read_text())
    assert run["git_commit"] and f'git commit <code class="docutils literal notranslate"><span class="pre">' \
                                 f'{run["git_commit"]}</span></code>' in html
    assert "Imported" in html and "04_higstm-elsewhere" in html
    assert "<code class=\"docutils literal notranslate\"><span class=\"pre\">seeds</span></code> [1]" in html
    overview = (root / "book" / "_generated" / "overview.csv").read_text()
    assert "04_higstm" in overview and "01_keras_baselines" in overview
