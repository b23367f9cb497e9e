"""Run provenance: which code produced a results folder."""

from __future__ import annotations

import subprocess

from repro.runs import _git_commit


def git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_git_commit_marks_runs_made_from_edited_files(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "model.py").write_text("lr = 1e-3\n")
    git(tmp_path, "add", "model.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert _git_commit(tmp_path) == head
    (tmp_path / "notes.txt").write_text("untracked files do not change results\n")
    assert _git_commit(tmp_path) == head
    (tmp_path / "model.py").write_text("lr = 1e-2\n")
    assert _git_commit(tmp_path) == head + "+dirty"


def test_git_commit_outside_a_repository_is_none(tmp_path):
    assert _git_commit(tmp_path) is None


def test_a_child_process_reports_its_own_peak_memory_not_its_parents():
    """ru_maxrss survives fork and exec; the recorded peak must not (a kernel started under a big pytest)."""
    import subprocess
    import sys

    import numpy as np

    from repro.runs import peak_memory_mb

    held = np.ones(400 * 2**20 // 8)  # 400 MiB in this process
    assert peak_memory_mb() > 400
    code = "from repro.runs import peak_memory_mb; print(peak_memory_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0 < child < 300 < peak_memory_mb(), (child, peak_memory_mb())
    del held
