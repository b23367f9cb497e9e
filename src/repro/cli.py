"""The ``repro`` command: what can be run, one checked notebook run, and the state of the data.

    repro list [NOTEBOOK]                    notebooks and profiles; a notebook's parameters
    repro run NOTEBOOK [--profile P] [-p NAME=VALUE ...] [--out DIR]
                                             check every parameter, then execute with papermill
                                             into runs/<notebook>-<UTC time>/
    repro sweep NOTEBOOK [--profile P] [-p NAME=A,B | NAME=0..4 ...] [--workers N | --scheduler ADDRESS]
                                             a grid of runs on Dask distributed, merged into one table
    repro data [fetch [SOURCE ...] | sources]
                                             which data sets are here and verified; get them

Exit status: 0 done, 1 a run failed or data is not verified, 2 bad input (nothing was run),
130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import sys
import time
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import paths
from .config import DEFAULT_PROFILE, NOT_STATED, PROFILE_ENV, PROFILES, ChapterConfig, closest_first, literal

KERNEL = "repro"
# The kernel follows PROFILE_ENV when ``profile`` is left at ``book`` (see ChapterConfig.from_parameters);
# ``repro run`` names its profile explicitly, so a value left in the user's shell must not switch it.


class UsageError(Exception):
    """Bad input, found before anything runs (exit status 2)."""


class RunFailed(Exception):
    """The notebook ran and failed; ``kept`` is the partial executed notebook, if any."""

    def __init__(self, message: str, kept: Path | None, status: int = 1):
        super().__init__(message)
        self.kept, self.status = kept, status


# --------------------------------------------------------------------------- notebooks
def notebooks(root: Path | None = None) -> dict[str, Path]:
    """Notebook name -> path, for ``notebooks/[0-9][0-9]_*.ipynb`` (the book's chapters)."""
    root = root or paths.project_root()
    return {p.stem: p for p in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))}


def resolve_notebook(name: str, available: Sequence[str]) -> str:
    """The notebook ``name`` names (``04_higstm``, ``04_higstm.ipynb`` or a path to it), or a UsageError."""
    stem = Path(name).name.removesuffix(".ipynb")
    if stem not in available:
        raise UsageError(f"no notebook {name!r}; notebooks (closest first): "
                         + ", ".join(closest_first(stem, available)))
    return stem


def notebook_title(path: Path) -> str:
    """The first markdown cell's ``# `` heading ('' when there is none)."""
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
            return ""
    return ""


def config_class(notebook: str) -> type[ChapterConfig]:
    """The notebook's config class; a UsageError when no chapter module declares it."""
    from .config import ParameterError
    from .papers import config_class as find

    try:
        return find(notebook)
    except ParameterError as exc:
        raise UsageError(str(exc)) from None


def type_name(tp: Any) -> str:
    """``int``, ``list[str]``, ``int | None``: a type as a user would write it."""
    if isinstance(tp, type) and typing.get_origin(tp) is None:
        return tp.__name__
    return str(tp).replace("typing.", "")


def _parameters(cls: type[ChapterConfig]) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.name != "profile"]


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def describe_notebooks(root: Path | None = None) -> str:
    """``repro list``: one line per notebook (name, parameter count, title), then the profiles."""
    found = notebooks(root)
    width = max(map(len, found), default=0)
    lines = ["notebooks (repro list NOTEBOOK shows its parameters; repro run NOTEBOOK runs it):"]
    for name, path in found.items():
        try:
            count = f"{len(_parameters(config_class(name))):3d} parameters"
        except UsageError:  # a notebook without a chapter config: listed, but it cannot be checked
            count = "  no parameters"
        lines.append(f"  {name:<{width}}  {count}  {notebook_title(path)}")
    lines += ["", f"profiles (--profile, default {DEFAULT_PROFILE}):"]
    lines += [f"  {part.strip()}" for part in _profile_help().split(" | ")]
    return "\n".join(lines)


def _profile_help() -> str:
    (field,) = (f for f in dataclasses.fields(ChapterConfig) if f.name == "profile")
    return field.metadata["help"]


def _wrap_items(head: str, items: Sequence[str], width: int = 100) -> list[str]:
    """``head`` then ``items`` joined by ", ", broken into lines between items only (values stay whole)."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + len(piece) + 1 > width and line.strip() != head.strip():
            lines.append(line.rstrip())
            line = " " * 6
        line += piece + " "
    return [*lines, line.rstrip()]


def describe_parameters(notebook: str, path: Path) -> str:
    """``repro list NOTEBOOK``: what each profile changes, then every parameter with type, default and help."""
    from .config import profile_overrides

    cls = config_class(notebook)
    hints = typing.get_type_hints(cls)
    lines = [f"{notebook}: {notebook_title(path)}",
             f"  {path.relative_to(path.parents[1])}; parameters declared in {cls.__module__}.{cls.__qualname__}",
             "", "profiles (--profile; each file changes these defaults):"]
    for profile in PROFILES:
        changes = profile_overrides(notebook, profile)
        lines += _wrap_items(f"  {profile}: ", [f"{k}={literal(v)}" for k, v in changes.items()] or ["(the defaults)"])
    lines += ["", "parameters (-p NAME=VALUE; default = the book profile; lists as A,B or JSON):"]
    for f in _parameters(cls):
        paper = f.metadata["paper"]
        lines.append(f"  {f.name}: {type_name(hints[f.name])} = {literal(_default(f))}"
                     + ("" if paper is NOT_STATED else f"   (paper: {literal(paper)})"))
        lines.append(f"      {f.metadata['help']}")
        choices, minimum = f.metadata.get("choices"), f.metadata.get("minimum")
        if choices is not None:
            lines.append("      choices: " + ", ".join(map(str, choices() if callable(choices) else choices)))
        if minimum is not None:
            lines.append(f"      at least {minimum}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- checking a run
def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``["epochs=3", "seeds=0,1"]`` -> ``{"epochs": "3", "seeds": "0,1"}`` (a later NAME wins)."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-p {pair!r}: expected NAME=VALUE, e.g. -p seeds=0,1,2 or -p 'tickers=[\"JPM\"]'")
        out[name.strip()] = value
    return out


def validate(notebook: str, profile: str, overrides: Mapping[str, str]) -> tuple[ChapterConfig, dict[str, Any]]:
    """Check a run before it starts; return its config and the parameters to hand papermill.

    The parameters are what ``papermill -f notebooks/profiles/<profile>/<notebook>.yaml -p ...``
    would pass: the profile file's values, ``profile``, then the overrides (as the config
    coerced them, so ``seeds=0,1`` arrives as the list ``[0, 1]``).
    """
    from .config import profile_overrides

    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; profiles (closest first): "
                         + ", ".join(closest_first(profile, PROFILES)))
    cls = config_class(notebook)
    names = [f.name for f in _parameters(cls)]
    for name in overrides:
        if name == "profile":
            raise UsageError("set the profile with --profile, not -p profile=...")
        if name not in names:
            # checked here: the dataclass would only raise a TypeError ("unexpected keyword argument")
            raise UsageError(f"{notebook} has no parameter {name!r}; its parameters (closest first): "
                             + ", ".join(closest_first(name, names)))
    try:
        cfg = cls.for_profile(profile, **overrides)
    except (TypeError, ValueError) as exc:  # ParameterError is a ValueError; its message names the parameter
        raise UsageError(f"{notebook}: {exc}") from None
    params = {**profile_overrides(notebook, profile), "profile": profile,
              **{name: getattr(cfg, name) for name in overrides}}
    return cfg, params


def run_folder(notebook: str, now: dt.datetime | None = None, runs: Path | None = None) -> Path:
    """``runs/<notebook>-<YYYYmmddTHHMMSSZ>`` (UTC), with ``-2``, ``-3``... if that one exists; not created."""
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    runs = runs or paths.project_root() / "runs"
    base = runs / f"{notebook}-{now:%Y%m%dT%H%M%SZ}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


# --------------------------------------------------------------------------- executing
def _cell_label(source: str, width: int = 60) -> str:
    """A cell's first comment or line, for progress and failure messages."""
    line = next((s.strip() for s in source.splitlines() if s.strip()), "")
    line = line.lstrip("#").strip() if line.startswith("#") else line
    return line if len(line) <= width else line[: width - 1] + "…"


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 100 else f"{s / 60:.1f} min"


class Progress:
    """One line per code cell as it finishes: ``[ 3/17] cell 5: 2.1 s  <its first line>``.

    A line is written only when the cell ends: the kernel writes its own warnings to the
    same terminal, and a half-written line would be torn by them.
    """

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.done = 0
        self.started = 0.0

    def cell_start(self, nb: Any, index: int) -> None:
        self.started = time.perf_counter()

    def cell_end(self, nb: Any, index: int) -> None:
        cell = nb.cells[index]
        if cell.cell_type != "code":
            return
        total = sum(c.cell_type == "code" for c in nb.cells)
        self.done += 1
        failed = cell.metadata.get("papermill", {}).get("status") == "failed"
        took = _seconds(time.perf_counter() - self.started)
        # papermill tags the cell it adds after the parameters cell; its first line would read "# Parameters" too
        injected = "injected-parameters" in cell.metadata.get("tags", [])
        label = "the parameters papermill injected" if injected else _cell_label(cell.source)
        self.stream.write(f"[{self.done:>{len(str(total))}}/{total}] cell {index}: {took}{' FAILED' if failed else ''}"
                          f"  {label}\n")
        self.stream.flush()


def _progress_engine():
    """papermill's nbclient engine, also calling a ``progress`` object as each cell starts and ends.

    papermill 2.7 reports cells only through tqdm or, with ``log_output``, by logging every
    output too; its engine API passes extra keyword arguments of ``execute_notebook`` down to
    ``execute_managed_notebook``, where the execution manager's per-cell hooks can be wrapped.
    """
    from papermill.engines import NBClientEngine, papermill_engines

    class ProgressEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, progress=None, **kwargs):
            if progress is not None:
                start, end = nb_man.cell_start, nb_man.cell_complete

                def cell_start(cell, cell_index=None, **kw):
                    progress.cell_start(nb_man.nb, cell_index)
                    return start(cell, cell_index, **kw)

                def cell_complete(cell, cell_index=None, **kw):
                    result = end(cell, cell_index, **kw)
                    progress.cell_end(nb_man.nb, cell_index)
                    return result

                nb_man.cell_start, nb_man.cell_complete = cell_start, cell_complete
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("repro-progress", ProgressEngine)
    return "repro-progress"


@contextlib.contextmanager
def _kernel_env(results: Path) -> Iterator[None]:
    """Environment for the kernel (it inherits ours): results into the run folder, no REPRO_PROFILE."""
    saved = {k: os.environ.get(k) for k in ("REPRO_RESULTS_DIR", PROFILE_ENV)}
    os.environ["REPRO_RESULTS_DIR"] = str(results)
    os.environ.pop(PROFILE_ENV, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(source: Path, folder: Path, parameters: Mapping[str, Any], *, cwd: Path,
            progress: TextIO | None = None) -> Path:
    """Execute ``source`` with ``parameters`` into ``folder``; return ``folder/<name>.ipynb``.

    Results go to ``folder/results`` (``REPRO_RESULTS_DIR`` for the kernel). papermill saves
    the notebook after every cell, so it writes to a hidden name that is renamed when the run
    succeeds; a failed or interrupted run leaves ``<name>.failed.ipynb`` and raises RunFailed.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    folder.mkdir(parents=True, exist_ok=True)
    final, failed = folder / f"{source.stem}.ipynb", folder / f"{source.stem}.failed.ipynb"
    running = folder / f".{source.stem}.running.ipynb"

    def keep_failed() -> Path | None:
        if running.exists():
            os.replace(running, failed)
            return failed
        return None

    try:
        with _kernel_env(folder / "results"):
            papermill.execute_notebook(
                str(source), str(running), parameters=dict(parameters), kernel_name=KERNEL, cwd=str(cwd),
                progress_bar=False, log_output=False, engine_name=_progress_engine(),
                progress=Progress(progress or sys.stderr))
    except PapermillExecutionError as exc:
        kept = keep_failed()
        raise RunFailed(f"cell {exc.cell_index} (In [{exc.exec_count}]) raised {exc.ename}: {exc.evalue}\n"
                        f"  the cell begins: {_cell_label(exc.source, 100)}", kept) from None
    except KeyboardInterrupt:
        raise RunFailed("interrupted", keep_failed(), status=130) from None
    except Exception as exc:  # the kernel died or would not start: no cell to blame
        raise RunFailed(f"{type(exc).__name__}: {exc}", keep_failed()) from None
    os.replace(running, final)
    return final


def _show(path: Path) -> str:
    """``path`` relative to the working folder when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def cmd_run(notebook: str, profile: str, pairs: Sequence[str], out: str | None) -> int:
    import yaml

    found = notebooks()
    notebook = resolve_notebook(notebook, list(found))
    overrides = parse_overrides(pairs)
    _, params = validate(notebook, profile, overrides)
    if out is not None:
        folder = Path(out).expanduser().resolve()
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise UsageError(f"--out {out}: not an empty folder; name a new one, so that runs do not mix")
    else:
        folder = run_folder(notebook)

    # Everything was checked: only now is anything written.
    folder.mkdir(parents=True, exist_ok=True)
    command = " ".join(["repro run", notebook, "--profile", profile, *(f"-p {p}" for p in pairs)])
    header = (f"# {command}\n# What papermill was given: the profile file's values, then the -p overrides.\n"
              f"# Re-run: papermill -k {KERNEL} --cwd notebooks -f <this file> notebooks/{notebook}.ipynb OUT.ipynb\n")
    (folder / "parameters.yaml").write_text(header + yaml.safe_dump(params, sort_keys=False, allow_unicode=True),
                                            encoding="utf-8")
    print(f"running {notebook} (profile {profile}{''.join(f'; {k}={v}' for k, v in overrides.items())}) "
          f"into {_show(folder)}/", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        executed = execute(found[notebook], folder, params, cwd=paths.project_root() / "notebooks")
    except RunFailed as exc:
        print(f"repro run: {notebook} failed after {_seconds(time.perf_counter() - started)}: {exc}", file=sys.stderr)
        if exc.kept is not None:
            print(f"  partial notebook kept: {_show(exc.kept)}", file=sys.stderr)
        return exc.status
    results = folder / "results" / notebook
    print(f"done in {_seconds(time.perf_counter() - started)}\n"
          f"  executed notebook: {_show(executed)}\n"
          f"  results:           {_show(results)}/ (run.json, tables, predictions)\n"
          f"  parameters:        {_show(folder / 'parameters.yaml')}")
    return 0


# --------------------------------------------------------------------------- data
def data_report() -> tuple[str, bool]:
    """``repro data``: each source verified, damaged or missing where this machine reads it; all verified?"""
    from . import data

    mirror = paths.mirror_dir()
    if mirror is not None:
        lines = [f"data read from the offline mirror {mirror} (REPRO_DATA_MIRROR)"]
    else:
        lines = [f"data read from the download cache {paths.cache_dir()} (REPRO_CACHE_DIR moves it; "
                 "REPRO_DATA_MIRROR is not set)"]
    width = max(map(len, data.SOURCES))
    all_ok = True
    for name in data.SOURCES:
        status = data.local_status(name)
        total = sum(map(len, status.values()))
        if status["mismatch"]:
            state, detail = "MISMATCH", f"{len(status['mismatch'])} of {_files(total)} differ from the manifest"
            detail += f", {len(status['missing'])} missing" if status["missing"] else ""
        elif status["missing"]:
            state = "missing" if not status["verified"] else "partial"
            detail = f"{len(status['verified'])} of {_files(total)} here"
        else:
            state, detail = "verified", f"{_files(total)}, sha256 as in data/manifests/{name}.sha256"
        lines.append(f"  {name:<{width}}  {state:<8}  {detail}  ({data.source_module(name).SOURCE.title})")
        if state == "verified":
            continue
        all_ok = False
        if status["mismatch"]:
            fix = (f"restore the mirror's copy (cd {mirror} && sha256sum -c MANIFEST.sha256)" if mirror else
                   f"delete the damaged files, then: repro data fetch {name}")
            lines.append(f"      e.g. {status['mismatch'][0]}; {fix}")
        elif mirror:
            lines.append(f"      the mirror lacks {status['missing'][0]}; copy the complete mirror, or unset "
                         f"REPRO_DATA_MIRROR and run: repro data fetch {name}")
        else:
            lines.append(f"      get it: repro data fetch {name}")
    if not all_ok and not mirror:
        lines.append("every source at once: make data (or repro data fetch); without internet, set REPRO_DATA_MIRROR "
                     "to a copy of the offline data mirror")
    return "\n".join(lines), all_ok


def _files(n: int) -> str:
    return f"{n} file" + ("" if n == 1 else "s")


def cmd_data(action: str | None, sources: Sequence[str]) -> int:
    from . import data
    from .data.__main__ import main as data_main

    if action == "sources":
        return data_main(["sources"])
    if action == "fetch":
        for name in sources:
            if name not in data.SOURCES:
                raise UsageError(f"unknown data source {name!r}; sources (closest first): "
                                 + ", ".join(closest_first(name, data.SOURCES)))
        return data_main(["fetch", *sources])
    try:
        text, ok = data_report()
    except (FileNotFoundError, data.DataError) as exc:  # REPRO_DATA_MIRROR names no folder
        print(exc, file=sys.stderr)
        return 1
    print(text)
    return 0 if ok else 1


# --------------------------------------------------------------------------- entry point
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="repro", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{list,run,sweep,data}")
    ls = sub.add_parser("list", help="notebooks and profiles; with NOTEBOOK, its parameters")
    ls.add_argument("notebook", nargs="?", metavar="NOTEBOOK")
    run = sub.add_parser("run", help="check the parameters, then execute one notebook into a run folder")
    run.add_argument("notebook", metavar="NOTEBOOK", help="e.g. 04_higstm (repro list shows them)")
    run.add_argument("--profile", default=DEFAULT_PROFILE, metavar="P",
                     help=f"{' | '.join(PROFILES)} (default {DEFAULT_PROFILE})")
    run.add_argument("-p", dest="params", action="append", default=[], metavar="NAME=VALUE",
                     help="set a parameter (repeatable); lists as A,B or JSON")
    run.add_argument("--out", metavar="DIR", help="run folder (default runs/<notebook>-<UTC time>/)")
    sw = sub.add_parser("sweep", help="run a grid of parameter values on Dask distributed and merge the results")
    sw.add_argument("notebook", metavar="NOTEBOOK")
    sw.add_argument("--profile", default=DEFAULT_PROFILE, metavar="P",
                    help=f"{' | '.join(PROFILES)} (default {DEFAULT_PROFILE})")
    sw.add_argument("-p", dest="params", action="append", default=[], metavar="NAME=VALUES",
                    help="an axis of the grid: A,B, a JSON list, or 0..4 (repeatable; one value: fixed)")
    sw.add_argument("--workers", type=int, default=2, metavar="N", help="local worker processes (default 2)")
    sw.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://host:8786 "
                    "(its workers need this project installed at the same path)")
    sw.add_argument("--out", metavar="DIR", help="sweep folder (default runs/sweep-<notebook>-<UTC time>/)")
    dat = sub.add_parser("data", help="which data sets are here and verified; fetch them")
    dat_sub = dat.add_subparsers(dest="action", metavar="{fetch,sources}")
    fetch = dat_sub.add_parser("fetch", help="download (or verify from REPRO_DATA_MIRROR) and unpack")
    fetch.add_argument("sources", nargs="*", metavar="SOURCE", help="default: all")
    dat_sub.add_parser("sources", help="upstream repositories, commits and licences")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _dispatch(args)
    except UsageError as exc:
        print(f"repro {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `repro list 04_higstm | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "list":
        found = notebooks()
        if args.notebook is None:
            print(describe_notebooks())
        else:
            name = resolve_notebook(args.notebook, list(found))
            print(describe_parameters(name, found[name]))
        return 0
    if args.command == "run":
        return cmd_run(args.notebook, args.profile, args.params, args.out)
    if args.command == "sweep":
        from . import sweep

        return sweep.main(args.notebook, args.profile, args.params, args.workers, args.scheduler, args.out)
    return cmd_data(args.action, getattr(args, "sources", []))

if __name__ == "__main__":
    sys.exit(main())
