"""Conventions of the package that keep it navigable: equation tags and the direction of imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "repro"
FILES = sorted(SRC.rglob("*.py"))

#: Each layer may import only from layers listed before it (and from the shared utilities).
LAYERS = ["data", "features", "text", "models", "protocols", "papers"]
SHARED = {"io", "paths", "config", "runs", "metrics", "backtest", "report", "plots", "book"}


def test_every_equation_reference_is_a_unique_tag():
    """Equations are cited as ``[003 eq. 7]`` (paper id, number), so one grep finds any equation's code."""
    loose = []
    for path in FILES:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            untagged = re.sub(r"\[\d{3} eq\. \d+\]", "", line)
            if re.search(r"\beqs?\.\s*\d", untagged, flags=re.IGNORECASE):
                loose.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert not loose, "cite equations as [PPP eq. N]:\n" + "\n".join(loose)


def test_equation_tags_are_found_for_the_implemented_papers():
    text = "\n".join(p.read_text(encoding="utf-8") for p in FILES)
    tags = set(re.findall(r"\[(\d{3}) eq\. (\d+)\]", text))
    assert {("003", str(k)) for k in range(4, 23)} <= tags  # HIGSTM's model and loss, every equation
    assert {("002", str(k)) for k in range(1, 17)} <= tags  # paper 002's ARIMA and networks


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "repro" else None


def _imports(path: Path) -> set[str]:
    """Absolute names of the repro modules a file imports (relative imports resolved)."""
    package = ".".join(("repro", *path.relative_to(SRC).with_suffix("").parts))
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("repro.")}


@pytest.mark.parametrize("path", [p for p in FILES if _layer(".".join(("repro", *p.relative_to(SRC).parts)))
                                  in LAYERS], ids=lambda p: str(p.relative_to(SRC)))
def test_layers_import_downwards_only(path):
    own = _layer(".".join(("repro", *path.relative_to(SRC).parts)))
    allowed = set(LAYERS[: LAYERS.index(own) + 1]) | SHARED
    wrong = sorted(m for m in _imports(path) if _layer(m) not in allowed and _layer(m) in LAYERS)
    assert not wrong, f"{own} may not import {wrong} (layers: {' -> '.join(LAYERS)})"
