"""What a chapter's execution depends on, as one content hash (incremental book builds).

A chapter is re-executed only when one of its inputs changed: the notebook, its profile
file (and the profile's name), every module of this package that the notebook imports,
followed through the package's own imports (static ones and those inside functions), the
paper tables beside its chapter module, the data manifests and the pinned versions.
``make book`` keeps one stamp per chapter, ``book/_generated/inputs/<notebook>.sha256``,
rewritten only when the hash changes, so make re-executes exactly the chapters whose
inputs moved.

    python -m repro.inputs write 04_higstm --profile book --out book/_generated/inputs/04_higstm.sha256
    python -m repro.inputs list 04_higstm     # the files behind the hash

Only the standard library is imported here: the check runs before every build.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import tempfile
from pathlib import Path

PACKAGE = "repro"
SRC = Path(__file__).resolve().parent  # src/repro
ROOT = SRC.parents[1]
#: Files every chapter depends on besides its own (data checksums, pinned versions).
SHARED = ("constraints.txt",)


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The source file of a module of this package (``repro.papers.p003_higstm``) under ``src``, or None."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = src.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_names(source: str, current: str = "", is_package: bool = False, src: Path = SRC) -> set[str]:
    """Modules of this package that ``source`` imports anywhere (module level or inside functions).

    ``from a import b`` counts ``a`` and, when it is a module, ``a.b``; every parent package
    of an imported module counts too (Python runs its ``__init__``).
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(current, is_package, node)
            names = [base] + [f"{base}.{a.name}" for a in node.names if a.name != "*"]
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if parts[0] == PACKAGE and module_file(prefix, src) is not None:
                    found.add(prefix)
    return found


def closure(names: set[str], src: Path = SRC) -> set[str]:
    """``names`` and every module of this package they import, transitively."""
    seen: set[str] = set()
    todo = sorted(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, src)
        text = path.read_text(encoding="utf-8")
        todo.extend(imported_names(text, name, path.name == "__init__.py", src) - seen)
    return seen


def notebook_source(path: Path) -> str:
    """The code of a notebook's cells (IPython magics and shell lines dropped, so it parses)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    lines = [line for c in cells if c["cell_type"] == "code"
             for line in "".join(c["source"]).splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def chapter_inputs(notebook: str, profile: str, root: Path = ROOT) -> list[Path]:
    """Every file the execution of ``notebook`` under ``profile`` depends on, sorted."""
    nb = root / "notebooks" / f"{notebook}.ipynb"
    if not nb.is_file():
        valid = sorted(p.stem for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        raise FileNotFoundError(f"no notebook {nb}; notebooks: {', '.join(valid)}")
    src = root / "src" / PACKAGE
    files = {nb, *(module_file(m, src) for m in closure(imported_names(notebook_source(nb), src=src), src))}
    # data files beside the modules (the papers' printed tables, checksums of bundled files)
    files |= {p.with_suffix(ext) for p in list(files) if p.parent != root / "notebooks"
              for ext in (".yaml", ".sha256") if p.with_suffix(ext).is_file()}
    profile_file = root / "notebooks" / "profiles" / profile / f"{notebook}.yaml"
    files |= {profile_file} if profile_file.is_file() else set()
    files |= set((root / "data" / "manifests").glob("*.sha256"))
    files |= {root / s for s in SHARED if (root / s).is_file()}
    return sorted(files)


def input_hash(notebook: str, profile: str, root: Path = ROOT) -> str:
    """sha256 over the profile's name and each input's path (relative to the project) and content."""
    digest = hashlib.sha256(f"profile={profile}\n".encode())
    for path in chapter_inputs(notebook, profile, root):
        digest.update(f"{path.relative_to(root)}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def write_stamp(notebook: str, profile: str, out: Path, root: Path = ROOT) -> bool:
    """Write the hash to ``out`` only when it differs from what is there (so make sees an old mtime when
    nothing changed); whether it was written."""
    text = input_hash(notebook, profile, root) + "\n"
    if out.is_file() and out.read_text() == text:
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, out)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.inputs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("write", "list"):
        p = sub.add_parser(name)
        p.add_argument("notebook")
        p.add_argument("--profile", default="book")
        if name == "write":
            p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from .paths import project_root

    root = project_root()  # REPRO_ROOT when set: the project being built, not where this package is installed
    try:
        if args.command == "list":
            for path in chapter_inputs(args.notebook, args.profile, root):
                print(path.relative_to(root))
        elif write_stamp(args.notebook, args.profile, args.out, root):
            print(f"{args.notebook}: inputs changed, it will be executed ({args.profile} profile)")
    except FileNotFoundError as exc:
        parser.exit(2, f"{exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
