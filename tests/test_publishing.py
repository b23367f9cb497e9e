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
