"""Incremental builds: a chapter's input hash moves with its own notebook, profile and imported modules only,
and `make notebooks` re-executes exactly the chapters whose inputs changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repro import inputs

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def project_copy(dest: Path) -> Path:
    """The files a build reads (mtimes kept), without the virtual environment and outputs."""
    for name in ("src", "notebooks", "data/manifests"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


def hashes(root: Path, profile: str = "book") -> dict[str, str]:
    return {nb: inputs.input_hash(nb, profile, root) for nb in NOTEBOOKS}


def relative(root: Path, notebook: str) -> set[str]:
    return {str(p.relative_to(root)) for p in inputs.chapter_inputs(notebook, "book", root)}


def test_a_chapters_inputs_are_its_notebook_profile_and_the_modules_it_imports():
    higstm = relative(ROOT, "04_higstm")
    assert {"notebooks/04_higstm.ipynb", "notebooks/profiles/book/04_higstm.yaml", "constraints.txt",
            "src/repro/papers/p003_higstm.py", "src/repro/papers/p003_higstm.yaml", "src/repro/models/higstm.py",
            "src/repro/protocols/cross_section.py", "src/repro/models/ssm.py", "src/repro/papers/__init__.py",
            "src/repro/__init__.py"} <= higstm
    assert not {"src/repro/papers/p002_keras.py", "src/repro/protocols/price_forecast.py",
                "src/repro/models/keras_nets.py", "notebooks/01_keras_baselines.ipynb"} & higstm
    keras = relative(ROOT, "01_keras_baselines")
    assert {"src/repro/models/keras_nets.py", "src/repro/protocols/price_forecast.py",
            "src/repro/papers/p002_keras.yaml"} <= keras and "src/repro/papers/p003_higstm.py" not in keras
    assert all(p.startswith("data/manifests/") for p in higstm if p.endswith(".sha256"))


def test_imports_inside_functions_and_relative_imports_are_followed():
    source = ("from .. import io\nfrom . import price_forecast\nfrom ..features import windows\n\n"
              "def f():\n    from ..models import ssm\n")
    found = inputs.imported_names(source, "repro.protocols.cross_section")
    assert {"repro.io", "repro.protocols", "repro.protocols.price_forecast", "repro.features",
            "repro.features.windows", "repro.models", "repro.models.ssm"} <= found
    assert "repro.features.windows.np" not in found and not any(n.startswith("numpy") for n in found)


def test_an_edit_moves_the_hash_of_the_chapters_that_import_it_and_no_other(tmp_path):
    root = project_copy(tmp_path / "p")
    before = hashes(root)
    assert len(set(before.values())) == len(NOTEBOOKS)
    module = root / "src" / "repro" / "papers" / "p003_higstm.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    after = hashes(root)
    assert [nb for nb in NOTEBOOKS if after[nb] != before[nb]] == ["04_higstm"]
    shared = root / "src" / "repro" / "protocols" / "price_forecast.py"
    shared.write_text(shared.read_text() + "\n# an edit\n")
    moved = hashes(root)
    assert [nb for nb in NOTEBOOKS if moved[nb] != after[nb]] == ["01_keras_baselines", "02_convlstm_t5",
                                                                  "03_mamballm"]
    assert hashes(root, "smoke")["04_higstm"] != moved["04_higstm"]  # another profile is another input
    profile = root / "notebooks" / "profiles" / "smoke" / "00_data.yaml"
    smoke = hashes(root, "smoke")
    profile.write_text(profile.read_text() + "\n# an edit\n")
    assert [nb for nb, h in hashes(root, "smoke").items() if h != smoke[nb]] == ["00_data"]


def test_the_stamp_is_rewritten_only_when_the_hash_changes(tmp_path):
    out = tmp_path / "inputs" / "04_higstm.sha256"
    assert inputs.write_stamp("04_higstm", "book", out)
    first = out.stat().st_mtime_ns
    time.sleep(0.01)
    assert not inputs.write_stamp("04_higstm", "book", out) and out.stat().st_mtime_ns == first
    assert out.read_text() == inputs.input_hash("04_higstm", "book") + "\n"
    assert inputs.write_stamp("04_higstm", "smoke", out)
    with pytest.raises(FileNotFoundError, match="no notebook .*04_higstn.ipynb; notebooks: 00_data, "):
        inputs.chapter_inputs("04_higstn", "book")


def executed_by(make_output: str) -> list[str]:
    return sorted(nb for nb in NOTEBOOKS if f"notebooks/{nb}.ipynb book/notebooks/.{nb}.running.ipynb" in make_output)


@pytest.mark.slow
def test_make_re_executes_only_the_chapter_whose_module_changed(tmp_path, smoke_run):
    root = project_copy(tmp_path / "p")
    stamp = tmp_path / "installed"
    stamp.touch()  # the virtual environment is this one: no install in the copy
    venv = Path(sys.executable).parent.parent
    make = ["make", "-C", str(root), "notebooks", "PROFILE=smoke", f"VENV={venv}", f"STAMP={stamp}"]
    env = {**os.environ, "REPRO_ROOT": str(root)}
    for nb in NOTEBOOKS:  # a previous build: executed notebooks and their stamps
        inputs.write_stamp(nb, "smoke", root / "book" / "_generated" / "inputs" / f"{nb}.sha256", root)
    time.sleep(0.01)
    (root / "book" / "notebooks").mkdir(parents=True)
    for nb in NOTEBOOKS:
        shutil.copy(smoke_run(ROOT / "notebooks" / f"{nb}.ipynb"), root / "book" / "notebooks" / f"{nb}.ipynb")
    unchanged = subprocess.run(make, env=env, capture_output=True, text=True, check=True)
    assert executed_by(unchanged.stdout) == [], unchanged.stdout
    module = root / "src" / "repro" / "papers" / "p003_higstm.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    edited = subprocess.run(make, env=env, capture_output=True, text=True)
    assert edited.returncode == 0, edited.stdout[-3000:] + edited.stderr[-3000:]
    assert executed_by(edited.stdout) == ["04_higstm"], edited.stdout
    assert "04_higstm: inputs changed" in edited.stdout
