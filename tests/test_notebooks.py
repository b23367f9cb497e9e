"""Every notebook: committed clean, parameterized, and executable under the smoke profile.

The executed copies are reused by tests/test_book.py to build the book.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PROFILES = ("smoke", "book", "full")


def _parameter_names(nb) -> set[str]:
    cell = next(c for c in nb.cells if c.cell_type == "code")
    names = set()
    for line in cell.source.splitlines():
        line = line.split("#", 1)[0]
        if "=" in line and not line.startswith((" ", "\t")):
            names.add(line.split("=", 1)[0].strip())
    return names


def test_there_are_notebooks():
    assert [p.stem for p in NOTEBOOKS][:1] == ["00_data"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parameterized(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    assert nb.metadata["kernelspec"]["name"] == "repro"
    names = _parameter_names(nb)
    assert "profile" in names
    for profile in PROFILES:
        params = yaml.safe_load((ROOT / "notebooks" / "profiles" / profile / f"{path.stem}.yaml").read_text())
        assert params["profile"] == profile
        unknown = set(params) - names
        assert not unknown, f"{profile} profile sets parameters the notebook does not have: {unknown}"


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
