"""setup.py's build step: the demo page's browser code, exactly as clients/js/package-lock.json pins
it, checked against the lock's hash, or no code and a line saying why (never other bytes)."""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def build_step() -> dict[str, Any]:
    """setup.py's functions, without building (the build backend runs it as __main__)."""
    return runpy.run_path(str(ROOT / "setup.py"), run_name="setup")


def fake_checkout(root: Path, helper_modules: tuple[str, ...]) -> Path:
    """clients/js with its lock and the helper's modules but no node_modules: what a fresh clone has."""
    clients = root / "clients" / "js"
    clients.mkdir(parents=True)
    for name in ("package-lock.json", *helper_modules):
        shutil.copyfile(ROOT / "clients" / "js" / name, clients / name)
    return clients


@pytest.mark.tools
def test_a_fetched_package_whose_hash_is_not_the_locks_is_refused(build_step: dict[str, Any], tmp_path: Path) -> None:
    locked = dict(build_step["locked_packages"]()["json-bigint"])
    for name in ("good", "bad"):
        (tmp_path / name).mkdir()
    unpacked = build_step["npm_pack"]("json-bigint", locked, tmp_path / "good")
    assert (unpacked / "lib" / "parse.js").is_file()
    locked["integrity"] = "sha512-" + "A" * 86 + "=="
    with pytest.raises(RuntimeError, match=r"not the one clients/js/package-lock\.json pins"):
        build_step["npm_pack"]("json-bigint", locked, tmp_path / "bad")


@pytest.mark.tools
def test_from_a_fresh_clone_the_locked_versions_are_fetched_with_their_licences(
    build_step: dict[str, Any], tmp_path: Path
) -> None:
    build_step["collect_vendor"].__globals__["CLIENTS"] = fake_checkout(tmp_path, build_step["HELPER_MODULES"])
    target = tmp_path / "vendor"
    line = build_step["collect_vendor"](target)
    assert "fetched with npm pack: appwrite, bignumber.js, json-bigint" in line
    assert build_step["complete"](target)
    pinned = build_step["locked_packages"]()["appwrite"]["version"]
    assert json.loads((target / "appwrite" / "package.json").read_text())["version"] == pinned
    assert "Redistribution and use" in (target / "appwrite" / "LICENSE").read_text()  # BSD-3-Clause travels along
    for name in build_step["HELPER_MODULES"]:  # the helper and the shared mode's modules, as in the checkout
        assert (target / name).read_bytes() == (ROOT / "clients" / "js" / name).read_bytes(), name


def test_without_npm_or_a_checkout_the_build_goes_on_without_the_page_code(
    build_step: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collect = build_step["collect_vendor"]
    collect.__globals__["CLIENTS"] = tmp_path / "absent"
    assert "no clients/js here" in collect(tmp_path / "vendor")
    collect.__globals__["CLIENTS"] = fake_checkout(tmp_path, build_step["HELPER_MODULES"])
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert "no npm" in collect(tmp_path / "vendor")
    assert not (tmp_path / "vendor").exists()
