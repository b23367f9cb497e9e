"""What a notebook run leaves behind: results files, stage timings, peak memory, seeds.

A notebook opens a :class:`Run` with its chapter's config, wraps each stage in
``with run.stage("train"):``, saves its tables and predictions with :meth:`Run.save`, and
calls :meth:`Run.finish`, which writes ``run.json`` (the config's parameters, stage wall
times, peak memory, versions). Every
file goes to ``results/<notebook>/`` atomically, so any table in the book can be
recomputed from these files without re-training.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import io, paths
from .config import ChapterConfig


def as_list(value: Any) -> list:
    """A list parameter as papermill may deliver it: a list, a JSON/YAML list string or "A,B".

    ``papermill -p tickers '["JPM"]'`` passes the *string* '["JPM"]' (only ``-y``/``-f``
    give real lists), so notebooks normalise their list parameters with this.
    """
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        import yaml

        text = value.strip()
        if text.startswith("["):
            parsed = yaml.safe_load(text)
            if isinstance(parsed, list):
                return parsed
        return [part.strip() for part in text.split(",") if part.strip()]
    return [value]


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    On Linux this is ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` survives fork and exec, so a
    process started by a big parent (a notebook kernel under pytest, a benchmark's child) would report the
    parent's size at the fork as its own peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and -- when already imported -- PyTorch and TensorFlow.

    PyTorch is also switched to deterministic algorithms, so the same parameters on the
    same machine give the same numbers.
    """
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
    if "tensorflow" in sys.modules or "keras" in sys.modules:
        import keras

        keras.utils.set_random_seed(seed)


def _git_commit(root: Path | None = None) -> str | None:
    """HEAD's short hash, with ``+dirty`` when tracked files differ from it (the run used edits)."""
    root = root or paths.project_root()
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=5)
        if head.returncode or not head.stdout.strip():
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    """The processor's name (``model name`` of /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_name() -> str | None:
    """The CUDA device's name if this process imported torch and has one (never imports torch itself)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("repro", "numpy", "pandas", "torch", "tensorflow", "keras", "scikit-learn", "transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


class Run:
    """Results folder, stage timer and run record of one notebook execution."""

    def __init__(self, config: ChapterConfig):
        self.config = config
        self.notebook = config.notebook
        self.profile = config.profile
        self.params = config.to_dict()
        self.dir: Path = paths.results_dir(self.notebook)
        self.stages: list[dict[str, Any]] = []
        self.files: list[str] = []
        self._t0 = time.perf_counter()
        self.started = pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")

    @contextlib.contextmanager
    def stage(self, name: str, quiet: bool = False) -> Iterator[None]:
        """Time a stage; record its wall time and the process's peak memory after it."""
        t = time.perf_counter()
        yield
        wall = time.perf_counter() - t
        rec = {"stage": name, "wall_s": round(wall, 3), "peak_mem_mb": round(peak_memory_mb(), 1)}
        self.stages.append(rec)
        if not quiet:
            print(f"[{name}] {wall:.1f} s, peak memory {rec['peak_mem_mb']:.0f} MiB")

    def save(self, name: str, obj: Any) -> None:
        """Save a table (.csv / .parquet from a DataFrame or Series) or a dict (.json) under the results folder.

        Returns nothing, so a notebook cell ending with it prints nothing; the file is
        ``self.dir / name``.
        """
        target = self.dir / name
        if isinstance(obj, (pd.DataFrame, pd.Series)):
            io.write_frame(target, obj)
        elif target.suffix == ".json":
            io.write_json(target, obj)
        else:
            raise TypeError(f"cannot save {type(obj).__name__} as {name}: give a DataFrame or a dict (.json)")
        self.files.append(name)

    def timings(self) -> pd.DataFrame:
        return pd.DataFrame(self.stages, columns=["stage", "wall_s", "peak_mem_mb"]).set_index("stage")

    def finish(self) -> dict[str, Any]:
        """Write ``run.json`` and return it."""
        record = {
            "notebook": self.notebook,
            "profile": self.profile,
            "params": self.params,
            "started_utc": self.started,
            "wall_s": round(time.perf_counter() - self._t0, 3),
            "peak_mem_mb": round(peak_memory_mb(), 1),
            "stages": self.stages,
            "files": sorted(set(self.files)),
            "git_commit": _git_commit(),
            "versions": _versions(),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu": _cpu_model(),
                        "gpu": _gpu_name()},
            "data": "mirror" if os.environ.get("REPRO_DATA_MIRROR") else "upstream",
        }
        io.write_json(self.dir / "run.json", record)
        return record
