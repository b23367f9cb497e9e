"""Every notebook: committed clean, parameterized from its chapter's config, thin, and executable
under the smoke profile.

The executed copies are reused by tests/test_book.py to build the book.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from repro.config import PROFILES
from repro.papers import chapters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: nbval runs these two as they are in Jupyter (the papermill fixture already executes every notebook; each
#: nbval notebook costs a kernel start and its imports -- every notebook took 107 s, these two about 20 s): the
#: data chapter and a cross-sectional one, which read the profile from $REPRO_PROFILE like any other.
NBVAL_NOTEBOOKS = [ROOT / "notebooks" / "00_data.ipynb", ROOT / "notebooks" / "04_higstm.ipynb"]
MAX_LOGIC_LINES = 15


def logic_lines(source: str) -> list[str]:
    """The lines of a cell that hold code: not blank, not only a comment."""
    return [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_there_are_notebooks_and_each_has_a_chapter_module():
    assert [p.stem for p in NOTEBOOKS][:1] == ["00_data"]
    assert sorted(chapters()) == [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_its_parameters_cell_is_its_config(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    assert nb.metadata["kernelspec"]["name"] == "repro"
    config = chapters()[path.stem].Config
    assert code[0].source == config.parameters_cell(), "stale parameters cell: run `python -m repro.papers sync`"
    assert f"{config.__name__}.from_parameters(globals())" in code[1].source, "the set-up cell reads the config"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_profiles_are_overrides_of_the_config(path):
    config = chapters()[path.stem].Config
    defaults = config()
    assert defaults.profile == "book"
    fields = {f.name for f in dataclasses.fields(config)}
    for profile in PROFILES:
        params = yaml.safe_load((ROOT / "notebooks" / "profiles" / profile / f"{path.stem}.yaml").read_text())
        assert params.pop("profile") == profile
        assert not set(params) - fields, f"{profile} sets parameters the config does not have"
        cfg = config.for_profile(profile)  # every value passes the config's checks
        same = [k for k in params if getattr(cfg, k) == getattr(defaults, k)]
        assert not same, f"{profile} repeats the defaults of {same}: a profile holds overrides only"
    assert not yaml.safe_load((ROOT / "notebooks" / "profiles" / "book" / f"{path.stem}.yaml").read_text()).keys() - {
        "profile"}, "the book profile is the config's defaults"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_read_like_paragraphs(path):
    """No function or class defined in a cell, no private names, and at most 15 lines of logic a cell."""
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        if i == 0:
            continue  # the parameters cell: one line per parameter
        tree = ast.parse(cell.source)
        defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defined, f"code cell {i} defines a function or class: move it into the package"
        private = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")]
        private += [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names
                    if a.name.startswith("_")]
        assert not private, f"code cell {i} uses private names {private}"
        lines = logic_lines(cell.source)
        assert len(lines) <= MAX_LOGIC_LINES, f"code cell {i} has {len(lines)} lines of logic:\n{cell.source}"
    assert not re.search(r"\bif TEST\b", "".join(c.source for c in nb.cells)), "profiles change parameters only"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_under_smoke_profile(path, smoke_run, results_dir):
    out = smoke_run(path)
    nb = json.loads(out.read_text())
    assert not nb["metadata"]["papermill"].get("exception")
    run = json.loads((results_dir / path.stem / "run.json").read_text())
    assert run["profile"] == "smoke"
    assert run["stages"], "the notebook should time its stages"
    for name in run["files"]:
        assert (results_dir / path.stem / name).is_file()


@pytest.mark.slow
def test_committed_notebooks_pass_nbval_under_the_smoke_profile(tmp_path):
    """`pytest --nbval-lax` runs committed notebooks as they are, cell by cell (no papermill); $REPRO_PROFILE
    picks the smoke profile (repro.config.PROFILE_ENV), as it does for a student in Jupyter."""
    results = tmp_path / "results"
    env = {**os.environ, "REPRO_PROFILE": "smoke", "REPRO_RESULTS_DIR": str(results)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p",
                           "no:cacheprovider", "-q", *map(str, NBVAL_NOTEBOOKS)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:]
    cells = sum(c.cell_type == "code" for nb in NBVAL_NOTEBOOKS for c in nbformat.read(nb, as_version=4).cells)
    assert re.search(rf"\b{cells} passed\b", proc.stdout), proc.stdout[-2000:]  # every code cell ran
    for nb in NBVAL_NOTEBOOKS:
        assert json.loads((results / nb.stem / "run.json").read_text())["profile"] == "smoke", nb.stem
