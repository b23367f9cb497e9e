"""``python -m repro.papers sync|check``: keep each notebook's parameters cell equal to its config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import paths
from . import chapters


def parameters_cell(path: Path):
    """The notebook and its first code cell (the one tagged ``parameters``)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cell = next((c for c in nb.cells if c.cell_type == "code"), None)
    if cell is None or "parameters" not in cell.metadata.get("tags", []):
        raise SystemExit(f"{path}: the first code cell must be tagged 'parameters'")
    return nb, cell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.papers", description=__doc__)
    parser.add_argument("command", choices=("sync", "check"))
    args = parser.parse_args(argv)
    import nbformat

    stale = []
    for notebook, module in chapters().items():
        path = paths.project_root() / "notebooks" / f"{notebook}.ipynb"
        nb, cell = parameters_cell(path)
        want = module.Config.parameters_cell()
        if cell.source == want:
            continue
        stale.append(notebook)
        if args.command == "sync":
            cell.source = want
            nbformat.write(nb, path)
            print(f"rewrote the parameters cell of {path.name}")
    if args.command == "check" and stale:
        print("parameters cells that differ from their config: " + ", ".join(stale)
              + " (run `python -m repro.papers sync`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
