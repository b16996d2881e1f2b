"""The lock files (locks/*.txt) agree with the ranges they were made from.

`pip install .` resolves from pyproject.toml's ranges; the image, CI and scripts/test install from
the locks. A pin outside its range would mean the tests ran on something a user cannot get (or the
reverse), so every declared requirement must be locked, inside its range, with hashes.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "locks"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])


@dataclass(frozen=True)
class Pin:
    version: Version
    hashes: int


def read_lock(text: str) -> dict[str, Pin]:
    """name -> pin, from a `uv pip compile --generate-hashes` file (one entry per package)."""
    pins: dict[str, Pin] = {}
    for entry in re.split(r"\n(?=\S)", text):
        first = entry.split("\n", 1)[0]
        if not first or first.startswith("#"):
            continue
        requirement = Requirement(first.rstrip(" \\"))
        (spec,) = requirement.specifier
        assert spec.operator == "==", first
        pins[canonicalize_name(requirement.name)] = Pin(Version(spec.version), entry.count("--hash=sha256:"))
    return pins


def declared(requirements: list[str], extras: dict[str, list[str]]) -> list[Requirement]:
    """The requirements as written, with the project's own extras (dev -> test) expanded."""
    found: list[Requirement] = []
    for line in requirements:
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == PROJECT:
            for extra in requirement.extras:
                found += declared(extras[extra], extras)
        else:
            found.append(requirement)
    return found


def mismatches(requirements: list[Requirement], pins: dict[str, Pin]) -> list[str]:
    """What in `requirements` the lock leaves out or pins outside its range (empty when it agrees)."""
    problems = []
    for requirement in requirements:
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement} is not locked")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{requirement} is locked at {pin.version}, outside its range")
    return problems


def lock(name: str) -> dict[str, Pin]:
    return read_lock((LOCKS / name).read_text())


EXTRAS = PYPROJECT["project"]["optional-dependencies"]
LOCKED_SETS = {
    "runtime.txt": declared(PYPROJECT["project"]["dependencies"], EXTRAS),
    "dev.txt": declared([*PYPROJECT["project"]["dependencies"], f"{PROJECT}[dev]"], EXTRAS),
    "build.txt": declared(PYPROJECT["build-system"]["requires"], EXTRAS),
    "deploy-check.txt": [
        Requirement(line)
        for line in (ROOT / "deploy" / "requirements-check.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ],
}


@pytest.mark.parametrize("name", sorted(LOCKED_SETS))
def test_every_declared_requirement_is_locked_inside_its_range(name: str) -> None:
    assert mismatches(LOCKED_SETS[name], lock(name)) == []


@pytest.mark.parametrize("name", sorted(LOCKED_SETS))
def test_every_pin_carries_hashes_and_says_how_it_was_made(name: str) -> None:
    text = (LOCKS / name).read_text()
    assert "#    scripts/update-locks" in text.splitlines()[1]
    pins = read_lock(text)
    assert pins, f"{name} locks nothing"
    assert [package for package, pin in pins.items() if pin.hashes == 0] == []


def test_the_dev_set_runs_the_versions_the_image_ships() -> None:
    runtime, dev = lock("runtime.txt"), lock("dev.txt")
    assert set(runtime) <= set(dev)
    assert {name: pin.version for name, pin in runtime.items()} == {name: dev[name].version for name in runtime}


def test_the_test_extra_holds_what_pytest_imports() -> None:
    test_set = {canonicalize_name(requirement.name) for requirement in declared(EXTRAS["test"], EXTRAS)}
    assert {"pytest", "pytest-aiohttp", "openapi-core", "jsonschema", "openapi-python-client"} <= test_set


def test_the_check_catches_a_pin_outside_its_range_and_a_missing_one() -> None:
    pins = read_lock("# header\n#    scripts/update-locks\naiohttp==3.14.5 \\\n    --hash=sha256:00\n    # via x\n")
    assert pins == {"aiohttp": Pin(Version("3.14.5"), 1)}
    assert mismatches([Requirement("aiohttp>=3.14,<4")], pins) == []
    assert mismatches([Requirement("aiohttp>=3.15")], pins) == ["aiohttp>=3.15 is locked at 3.14.5, outside its range"]
    assert mismatches([Requirement("redis>=8")], pins) == ["redis>=8 is not locked"]
