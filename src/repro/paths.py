"""Where things live: the project root, the data cache, results and manifests.

Every location can be moved with an environment variable, so that a notebook
run from another folder (papermill, a classroom copy) finds the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def project_root() -> Path:
    """The repository root (the folder holding ``pyproject.toml``).

    ``REPRO_ROOT`` overrides it; otherwise it is found from this file, which
    works for the editable install that ``make install`` makes.
    """
    env = os.environ.get("REPRO_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    for parent in _PKG.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "data").is_dir():
            return parent
    raise RuntimeError(
        "cannot locate the repro project root from "
        f"{_PKG}; install with `make install` (editable) or set REPRO_ROOT"
    )


def manifest_dir() -> Path:
    return project_root() / "data" / "manifests"


def cache_dir() -> Path:
    """Download and derived-data cache (git-ignored). ``REPRO_CACHE_DIR`` overrides."""
    env = os.environ.get("REPRO_CACHE_DIR")
    path = Path(env).expanduser() if env else project_root() / "data" / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def mirror_dir() -> Path | None:
    """The offline mirror named by ``REPRO_DATA_MIRROR``, or None (download from upstream)."""
    env = os.environ.get("REPRO_DATA_MIRROR")
    if not env:
        return None
    path = Path(env).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(
            f"REPRO_DATA_MIRROR={env!r} is not a folder. Point it at a copy of the data mirror "
            "(the folder holding MANIFEST.sha256), or unset it to download from upstream."
        )
    return path


def results_dir(notebook: str) -> Path:
    """Folder for one notebook's machine-readable results: ``results/<notebook>/``.

    ``REPRO_RESULTS_DIR`` moves the parent folder (tests use a temporary one).
    """
    env = os.environ.get("REPRO_RESULTS_DIR")
    base = Path(env).expanduser() if env else project_root() / "results"
    path = base / notebook
    path.mkdir(parents=True, exist_ok=True)
    return path
