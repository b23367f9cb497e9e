"""The ``repro`` command: listing, checking before running, one real run, a failing run, the data report.

Runs go through the installed console script (``<venv>/bin/repro``), as a user would call it;
listing and bad input call :func:`repro.cli.main` in this process (no kernel starts).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from repro import cli
from repro.config import NOT_STATED, PROFILES, literal
from repro.papers import config_class

ROOT = Path(__file__).resolve().parents[1]
REPRO = Path(sys.executable).parent / "repro"
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PROGRESS = re.compile(r"^\[\s*(\d+)/(\d+)\] cell (\d+): [\d.]+ (?:s|min)( FAILED)?  ", re.MULTILINE)

needs_mirror = pytest.mark.skipif(not os.environ.get("REPRO_DATA_MIRROR"),
                                  reason="needs REPRO_DATA_MIRROR (e.g. /work/shared/data; .ci/run sets it)")


def repro(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPRO), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def _field(cls, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


# --------------------------------------------------------------------------- repro list
def test_list_names_every_notebook_with_its_parameter_count(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert len(NOTEBOOKS) == 6
    for name in NOTEBOOKS:
        count = len(dataclasses.fields(config_class(name))) - 1  # `profile` is chosen with --profile
        title = cli.notebook_title(ROOT / "notebooks" / f"{name}.ipynb")
        assert title and re.search(rf"^  {name} +{count} parameters  {re.escape(title)}$", out, re.MULTILINE)
    for profile in PROFILES:
        assert re.search(rf"^  {profile} \(", out, re.MULTILINE)


def test_list_notebook_shows_type_default_help_and_paper_value(capsys):
    assert cli.main(["list", "04_higstm"]) == 0
    out = capsys.readouterr().out
    cls = config_class("04_higstm")
    epochs = _field(cls, "epochs")
    assert f"  epochs: int = {literal(epochs.default)}\n      {epochs.metadata['help']}\n" in out
    window = _field(cls, "window")
    assert window.metadata["paper"] is not NOT_STATED
    assert f"  window: int = {literal(window.default)}   (paper: {literal(window.metadata['paper'])})\n" in out
    universes = _field(cls, "universes")
    assert f"      choices: {', '.join(universes.metadata['choices'])}\n" in out
    # every parameter, and what the smoke profile changes
    assert all(f"\n  {f.name}: " in out for f in dataclasses.fields(cls) if f.name != "profile")
    smoke = yaml.safe_load((ROOT / "notebooks/profiles/smoke/04_higstm.yaml").read_text())
    assert f"epochs={smoke['epochs']}" in out.split("  smoke: ", 1)[1].split("  book: ", 1)[0]


# --------------------------------------------------------------------------- checks before running
def test_parse_overrides():
    assert cli.parse_overrides(["seeds=0,1,2", 'tickers=["JPM"]', "x=a=b", "seeds=3"]) == {
        "seeds": "3", "tickers": '["JPM"]', "x": "a=b"}
    with pytest.raises(cli.UsageError, match="expected NAME=VALUE"):
        cli.parse_overrides(["seeds"])


def test_validate_passes_the_profile_file_then_the_coerced_overrides():
    cfg, params = cli.validate("04_higstm", "smoke", {"seeds": "0,1,2", "epochs": "3"})
    smoke = yaml.safe_load((ROOT / "notebooks/profiles/smoke/04_higstm.yaml").read_text())
    assert params == {**smoke, "seeds": [0, 1, 2], "epochs": 3}
    assert (cfg.profile, cfg.seeds, cfg.epochs, cfg.d_model) == ("smoke", [0, 1, 2], 3, smoke["d_model"])


def test_run_folder_is_named_by_notebook_and_utc_time(tmp_path):
    when = dt.datetime(2024, 5, 6, 9, 8, 7, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    first = cli.run_folder("00_data", when, runs=tmp_path)
    assert first == tmp_path / "00_data-20240506T070807Z" and not first.exists()
    first.mkdir()
    assert cli.run_folder("00_data", when, runs=tmp_path) == tmp_path / "00_data-20240506T070807Z-2"
    assert cli.run_folder("00_data").parent == ROOT / "runs"


HINTS = typing.get_type_hints(config_class("04_higstm"))
BAD = {
    "unknown notebook": (["04_higstn"], "no notebook '04_higstn'; notebooks (closest first): 04_higstm, "),
    "unknown parameter": (["04_higstm", "-p", "universe=csi300"],
                          "04_higstm has no parameter 'universe'; its parameters (closest first): universes, "),
    "bad value": (["04_higstm", "-p", "epochs=abc"],
                  f"04_higstm: parameter epochs='abc': expected {cli.type_name(HINTS['epochs'])}"),
    "unknown choice": (["04_higstm", "-p", "universes=csi301"],
                       "04_higstm: parameter universes: unknown value 'csi301'; valid values (closest first): "
                       "csi300, "),
    "unknown profile": (["04_higstm", "--profile", "ful"], "unknown profile 'ful'; profiles (closest first): full, "),
    "no value": (["04_higstm", "-p", "epochs"], "-p 'epochs': expected NAME=VALUE"),
    "profile as -p": (["04_higstm", "-p", "profile=full"], "set the profile with --profile"),
}


@pytest.mark.parametrize("args,message", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize("out", [False, True], ids=["default folder", "--out"])
def test_bad_input_exits_2_before_anything_runs(args, message, out, tmp_path, capsys, monkeypatch):
    import papermill

    def no_run(*a, **k):
        raise AssertionError("papermill was called")

    monkeypatch.setattr(papermill, "execute_notebook", no_run)
    before = sorted((ROOT / "runs").glob("*"))
    folder = tmp_path / "run"
    assert cli.main(["run", *args, *(["--out", str(folder)] if out else [])]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"repro run: {message}"), captured.err
    assert captured.out == "" and "Traceback" not in captured.err
    assert not folder.exists() and sorted((ROOT / "runs").glob("*")) == before


def test_console_script_reports_bad_input_without_traceback(tmp_path):
    proc = repro("run", "04_higstm", "-p", "universe=csi300", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("repro run: 04_higstm has no parameter 'universe'; its parameters (closest "
                                  "first): universes, ")
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_out_must_be_a_new_or_empty_folder(tmp_path, capsys):
    (tmp_path / "old.ipynb").write_text("{}")
    assert cli.main(["run", "00_data", "--out", str(tmp_path)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.ipynb"]


# --------------------------------------------------------------------------- real runs
@pytest.fixture
def run_env(tmp_path):
    """The environment of a user's shell: the mirror, results elsewhere, a stray REPRO_PROFILE."""
    env = dict(os.environ)
    env["REPRO_RESULTS_DIR"] = str(tmp_path / "elsewhere")  # the run must not write here
    env["REPRO_PROFILE"] = "full"  # --profile names the profile; a value left in the shell must not switch it
    return env


def _progress(stderr: str) -> list[tuple[int, int, int, bool]]:
    return [(int(a), int(b), int(c), bool(f)) for a, b, c, f in PROGRESS.findall(stderr)]


@pytest.mark.slow
@needs_mirror
def test_smoke_run_of_00_data(tmp_path, run_env):
    folder = tmp_path / "run"
    proc = repro("run", "00_data", "--profile", "smoke", "-p", "as_of=2022-12-30", "--out", str(folder), env=run_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in folder.iterdir()) == ["00_data.ipynb", "parameters.yaml", "results"]

    nb = json.loads((folder / "00_data.ipynb").read_text())
    smoke = yaml.safe_load((ROOT / "notebooks/profiles/smoke/00_data.yaml").read_text())
    passed = {**smoke, "as_of": "2022-12-30"}
    assert nb["metadata"]["papermill"]["parameters"] == passed
    assert yaml.safe_load((folder / "parameters.yaml").read_text()) == passed
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] is not None for c in code) and sum(bool(c["outputs"]) for c in code) >= 10
    assert not any(o["output_type"] == "error" for c in code for o in c["outputs"])

    record = json.loads((folder / "results" / "00_data" / "run.json").read_text())
    assert record["profile"] == "smoke" and record["params"]["profile"] == "smoke"
    assert record["params"]["as_of"] == "2022-12-30" and record["params"]["universes"] == smoke["universes"]
    assert not Path(run_env["REPRO_RESULTS_DIR"]).exists()

    # one progress line per code cell, in order, with the cell's index in the executed notebook
    code_index = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    assert _progress(proc.stderr) == [(k, len(code), i, False) for k, i in enumerate(code_index, 1)]
    assert f"executed notebook: {folder / '00_data.ipynb'}" in proc.stdout
    assert f"results:           {folder / 'results' / '00_data'}/" in proc.stdout


@pytest.mark.slow
@needs_mirror
def test_failing_run_keeps_the_partial_notebook_and_names_the_cell(tmp_path, run_env):
    folder = tmp_path / "run"
    # passes validation (any ticker name is a str) but the StockNet reader rejects it
    proc = repro("run", "00_data", "--profile", "smoke", "-p", "price_tickers=ZZZZ", "--out", str(folder),
                 env=run_env)
    assert proc.returncode == 1
    assert sorted(p.name for p in folder.iterdir()) == ["00_data.failed.ipynb", "parameters.yaml", "results"]
    found = re.search(r"^repro run: 00_data failed after [\d.]+ s: cell (\d+) \(In \[(\d+)\]\) raised "
                      r"UnknownKeyError: unknown StockNet ticker 'ZZZZ'", proc.stderr, re.MULTILINE)
    assert found, proc.stderr[-3000:]
    index, count = map(int, found.groups())
    assert f"partial notebook kept: {folder / '00_data.failed.ipynb'}" in proc.stderr

    nb = json.loads((folder / "00_data.failed.ipynb").read_text())
    (failed,) = [c for c in nb["cells"] if c["cell_type"] == "code" and c["execution_count"] == count]
    assert [o["ename"] for o in failed["outputs"] if o["output_type"] == "error"] == ["UnknownKeyError"]
    assert "price_tickers" in "".join(failed["source"]) or "stocknet" in "".join(failed["source"])
    lines = _progress(proc.stderr)
    assert lines[-1][2:] == (index, True) and not any(f for *_, f in lines[:-1])


# --------------------------------------------------------------------------- repro data
@needs_mirror
def test_data_from_the_mirror_is_verified(tmp_path):
    env = {**os.environ, "REPRO_CACHE_DIR": str(tmp_path / "cache")}
    proc = repro("data", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from repro.data import SOURCES

    for name in SOURCES:
        assert re.search(rf"^  {name} +verified  \d+ files?, sha256 as in data/manifests/{name}.sha256", proc.stdout,
                         re.MULTILINE)


@pytest.fixture
def fake_upstream(tmp_path):
    """us_prices' pinned upstream files, rebuilt from the mirror (whose .gz hold the upstream bytes), as file:// URLs.

    Each file's sha256 is checked against the manifest's upstream line first, so nothing here invents a hash.
    """
    from repro.data import us_prices

    mirror, src = Path(os.environ["REPRO_DATA_MIRROR"]), us_prices.SOURCE
    folders = {"sicheng": "sicheng_sp500_2003_2023", "quantedge": "quantedge_2021_2026"}
    raw = tmp_path / "raw"
    for key, up in src.upstreams.items():
        for ticker in us_prices.TICKERS:
            data = gzip.decompress((mirror / "us_prices" / folders[key] / f"{ticker}.csv.gz").read_bytes())
            assert hashlib.sha256(data).hexdigest() == src.expected(up.location(f"data/{ticker}.csv"))
            dest = raw / up.repo / up.commit / "data" / f"{ticker}.csv"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
    env = {k: v for k, v in os.environ.items() if k != "REPRO_DATA_MIRROR"}
    env.update(REPRO_CACHE_DIR=str(tmp_path / "cache"), REPRO_GITHUB_RAW=raw.as_uri())
    return env


@needs_mirror
def test_data_in_an_empty_cache_is_missing_until_fetched(fake_upstream, tmp_path):
    from repro.data import SOURCES

    proc = repro("data", env=fake_upstream)
    assert proc.returncode == 1
    assert f"data read from the download cache {tmp_path / 'cache'}" in proc.stdout
    for name in SOURCES:
        assert re.search(rf"^  {name} +missing   0 of \d+ files? here .*\n      get it: repro data fetch {name}$",
                         proc.stdout, re.MULTILINE)
    assert "make data" in proc.stdout and "REPRO_DATA_MIRROR" in proc.stdout

    fetch = repro("data", "fetch", "us_prices", env=fake_upstream)
    assert fetch.returncode == 0, fetch.stderr
    proc = repro("data", env=fake_upstream)
    assert proc.returncode == 1
    assert re.search(r"^  us_prices +verified  14 files, sha256 as in data/manifests/us_prices.sha256",
                     proc.stdout, re.MULTILINE)
    assert len(re.findall(r"^  \w+ +missing ", proc.stdout, re.MULTILINE)) == len(SOURCES) - 1

    damaged = tmp_path / "cache/us_prices/upstream/Sicheng-Wang1999+SP500/data/AAPL.csv"
    damaged.write_bytes(damaged.read_bytes() + b"\n")
    proc = repro("data", env=fake_upstream)
    assert re.search(r"^  us_prices +MISMATCH  1 of 14 files differ from the manifest .*\n      e.g. "
                     + re.escape(f"{damaged}; delete the damaged files, then: repro data fetch us_prices"),
                     proc.stdout, re.MULTILINE)


def test_data_fetch_rejects_an_unknown_source(capsys):
    assert cli.main(["data", "fetch", "us_price"]) == 2
    assert capsys.readouterr().err.startswith("repro data: unknown data source 'us_price'; sources (closest first): "
                                              "us_prices, ")
