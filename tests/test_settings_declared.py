"""Each setting is declared once (service settings: name, default, range, description), and what
operators read agrees with that declaration: the README's configuration table and the ConfigMap
the manifests ship (deploy/k8s/base/config.env)."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
from appwrite_token_exchange.env import EnvReader
from appwrite_token_exchange.settings import SETTING, Declared, Settings, declared_settings

ROOT = Path(__file__).resolve().parent.parent
DECLARED = {item.env: item for item in declared_settings()}
# Set on purpose in the ConfigMap to something other than the default (each says why in config.env).
CONFIGMAP_OVERRIDES = {"APPWRITE_ENDPOINT", "APPWRITE_PROJECT_ID", "TRUSTED_PROXIES"}


def readme_table(text: str) -> dict[str, str]:
    """variable -> default as the README's configuration table shows it."""
    section = text.split("\n## Configuration\n", 1)[1].split("\n#", 1)[0]
    shown: dict[str, str] = {}
    for row in re.findall(r"^\| (`.+?) \| (.+?) \| .* \|$", section, flags=re.M):
        names = expand_names(row[0])
        defaults = [default.strip() for default in row[1].split(" / ")]
        if len(defaults) == 1:
            defaults *= len(names)
        assert len(defaults) == len(names), row
        shown.update(zip(names, defaults, strict=True))
    return shown


def expand_names(cell: str) -> list[str]:
    """`HOST` / `PORT`, `REDIS_PASSWORD` / `_FILE` (its file form) and `RELAY_MAX_SOCKETS_PER_USER` /
    `_PER_SESSION` (the same stem) into full names; file forms are left out (every secret has one)."""
    names: list[str] = []
    for group in cell.split(", "):
        parts = [part.strip().strip("`") for part in group.split(" / ")]
        first = parts[0]
        for part in parts:
            if part == "_FILE":
                continue
            if part.startswith("_"):
                stem = first[: first.index(part.split("_")[1], 1) - 1]
                part = stem + part
            names.append(part)
    return names


def shown_default(item: Declared) -> str:
    if item.shown is not None:
        return item.shown
    if item.default is None:
        return "(required)"
    return f"`{item.default}`" if item.default else "(none)"


def config_env() -> dict[str, str]:
    lines = (ROOT / "deploy" / "k8s" / "base" / "config.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_readme_table_lists_every_setting_with_its_declared_default() -> None:
    table = readme_table((ROOT / "README.md").read_text())
    assert sorted(table) == sorted(DECLARED)
    assert {name: table[name] for name in DECLARED} == {name: shown_default(item) for name, item in DECLARED.items()}


def test_every_declared_default_is_what_an_unset_variable_gives() -> None:
    """`auto` defaults are derived at start from the memory limit: tests/test_capacity.py."""
    settings = Settings.from_env({"APPWRITE_ENDPOINT": "https://appwrite.example.com/v1", "APPWRITE_PROJECT_ID": "p"})
    for field in fields(Settings):
        item = field.metadata.get(SETTING)
        if item is not None and item.read is not None and item.default not in (None, "auto"):
            assert getattr(settings, field.name) == item.read(EnvReader({}), item.env, item.default), item.env
            assert field.default == getattr(settings, field.name), item.env


def test_the_configmap_sets_only_declared_settings_and_their_defaults() -> None:
    values = config_env()
    for key, value in values.items():
        if key.startswith("OTEL_"):
            continue  # OpenTelemetry's own variables (README, "Tracing")
        # A setting may itself name a file (RELAY_EVENT_RULES_FILE); any other NAME_FILE is a secret's file form.
        base = key if key in DECLARED else key.removesuffix("_FILE")
        assert base in DECLARED, f"config.env sets {key}, which no setting reads"
        if key != base:
            assert DECLARED[base].secret and value == "", f"{key}: only a secret has a file form, empty by default"
        elif key not in CONFIGMAP_OVERRIDES:
            assert value == (DECLARED[key].default or ""), f"config.env's {key}={value} is not the declared default"
    # And the service starts from it as shipped.
    Settings.from_env({key: value for key, value in values.items() if value})


def test_the_readme_parser_reads_combined_rows() -> None:
    assert expand_names("`RELAY_MAX_SOCKETS_PER_USER` / `_PER_SESSION` / `_PER_IP`") == [
        "RELAY_MAX_SOCKETS_PER_USER", "RELAY_MAX_SOCKETS_PER_SESSION", "RELAY_MAX_SOCKETS_PER_IP"]
    assert expand_names("`REDIS_PASSWORD` / `_FILE`, `REDIS_SENTINEL_PASSWORD` / `_FILE`") == [
        "REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD"]
    table = readme_table("\n## Configuration\n| `HOST` / `PORT` | `0.0.0.0` / `8081` | where |\n")
    assert table == {"HOST": "`0.0.0.0`", "PORT": "`8081`"}
    assert table["PORT"] != shown_default(DECLARED["PORT"])  # a drifted default is caught


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_every_setting_says_what_it_is_for(name: str) -> None:
    assert DECLARED[name].doc

