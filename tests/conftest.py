"""Shared test setup: results of test runs never land in the project's results/ folder."""

from __future__ import annotations

import os

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
    from pathlib import Path

    return Path(os.environ["REPRO_RESULTS_DIR"])


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Execute a notebook under the smoke profile once per session; return the executed copy."""
    from pathlib import Path

    import papermill
    import yaml

    out_dir = tmp_path_factory.mktemp("executed")
    done: dict[str, Path | BaseException] = {}

    def run(path: Path) -> Path:
        if path.stem not in done:
            params = yaml.safe_load((path.parent / "profiles" / "smoke" / f"{path.stem}.yaml").read_text())
            out = out_dir / path.name
            try:
                papermill.execute_notebook(str(path), str(out), parameters=params, kernel_name="repro",
                                           cwd=str(path.parent), progress_bar=False)
                done[path.stem] = out
            except BaseException as exc:  # remembered, so dependants fail with the same cause
                done[path.stem] = exc
        result = done[path.stem]
        if isinstance(result, BaseException):
            pytest.fail(f"{path.name} failed under the smoke profile: {result}")
        return result

    run.out_dir = out_dir
    return run
