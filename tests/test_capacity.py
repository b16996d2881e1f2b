"""What the relay may hold, sized to the memory limit: read from the cgroup as a container sees it
(v2, then v1), or set; derived caps, counted per upstream scheme, explicit ones kept; and the
shipped pod's numbers as the README states them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from appwrite_token_exchange.capacity import (
    SOCKET_BYTES,
    TLS_SOCKET_BYTES,
    UNLIMITED_IN_FLIGHT_BYTES,
    UNLIMITED_SOCKETS,
    MemoryLimit,
    container_memory_limit,
    parse_size,
    plan,
)
from appwrite_token_exchange.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent
BASE = {"APPWRITE_ENDPOINT": "https://appwrite.example.com/v1", "APPWRITE_PROJECT_ID": "p"}


@pytest.mark.parametrize(("files", "expected"), [
    ({"memory.max": "268435456\n"}, MemoryLimit(268435456, "cgroup v2")),
    ({"memory.max": "max\n"}, MemoryLimit(None, "none")),
    ({"memory/memory.limit_in_bytes": "536870912\n"}, MemoryLimit(536870912, "cgroup v1")),
    ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, MemoryLimit(None, "none")),
    ({}, MemoryLimit(None, "none")),
])
def test_the_limit_is_read_as_the_container_sees_it(tmp_path: Path, files: dict[str, str], expected) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert container_memory_limit(tmp_path) == expected


def test_sizes_read_as_kubernetes_writes_them() -> None:
    assert [parse_size(text) for text in ("256Mi", "1Gi", "268435456", "1G", "512Ki")] == [
        256 * 2**20, 2**30, 268435456, 10**9, 512 * 1024]
    assert parse_size("256MB") is None and parse_size("lots") is None


def test_caps_are_derived_from_a_limit_and_explicit_ones_kept() -> None:
    limit = MemoryLimit(512 * 2**20, "cgroup v2")
    derived = plan(limit, None, None)
    assert derived.derived == ("RELAY_MAX_BYTES_IN_FLIGHT", "RELAY_MAX_SOCKETS")
    assert derived.max_bytes_in_flight == int(512 * 2**20 * 0.10)
    half = plan(MemoryLimit(256 * 2**20, "cgroup v2"), None, None)
    assert 0 < half.max_sockets < derived.max_sockets
    kept = plan(limit, 123, 4_000_000)
    assert (kept.max_sockets, kept.max_bytes_in_flight, kept.derived) == (123, 4_000_000, ())
    unlimited = plan(MemoryLimit(None, "none"), None, None)
    assert (unlimited.max_sockets, unlimited.max_bytes_in_flight) == (UNLIMITED_SOCKETS, UNLIMITED_IN_FLIGHT_BYTES)


def test_a_tls_upstream_counts_each_socket_at_what_a_burst_leaves_it() -> None:
    limit = MemoryLimit(512 * 2**20, "cgroup v2")
    plain, tls = plan(limit, None, None), plan(limit, None, None, tls=True)
    assert (plain.upstream_scheme, plain.socket_bytes) == ("ws", SOCKET_BYTES)
    assert (tls.upstream_scheme, tls.socket_bytes) == ("wss", TLS_SOCKET_BYTES)
    assert tls.max_bytes_in_flight == plain.max_bytes_in_flight
    # The same room for sockets, filled at each scheme's cost.
    assert abs(tls.max_sockets * TLS_SOCKET_BYTES - plain.max_sockets * SOCKET_BYTES) < TLS_SOCKET_BYTES
    assert plan(limit, 5000, None, tls=True).max_sockets == 5000  # explicit still wins
    assert plan(MemoryLimit(None, "none"), None, None, tls=True).max_sockets == UNLIMITED_SOCKETS
    assert tls.to_json()["upstreamScheme"] == "wss" and tls.to_json()["socketBytes"] == TLS_SOCKET_BYTES


def test_the_settings_take_the_limit_and_say_where_it_came_from() -> None:
    settings = Settings.from_env({**BASE, "CONTAINER_MEMORY_LIMIT": "256Mi"})
    assert settings.capacity is not None
    assert settings.capacity.limit == MemoryLimit(256 * 2**20, "CONTAINER_MEMORY_LIMIT")
    assert settings.capacity.upstream_scheme == "wss"  # BASE's Appwrite is https://
    assert settings.relay_max_sockets == plan(settings.capacity.limit, None, None, tls=True).max_sockets
    plain = Settings.from_env({**BASE, "APPWRITE_ENDPOINT": "http://appwrite:80/v1", "CONTAINER_MEMORY_LIMIT": "256Mi"})
    assert plain.capacity is not None and plain.capacity.upstream_scheme == "ws"
    assert plain.relay_max_sockets == plan(plain.capacity.limit, None, None).max_sockets > settings.relay_max_sockets
    explicit = Settings.from_env({**BASE, "CONTAINER_MEMORY_LIMIT": "256Mi", "RELAY_MAX_SOCKETS": "5000"})
    assert explicit.relay_max_sockets == 5000  # an operator's choice wins, even past the estimate
    for bad in ("256MB", "10Mi", "lots"):
        with pytest.raises(SettingsError, match="CONTAINER_MEMORY_LIMIT"):
            Settings.from_env({**BASE, "CONTAINER_MEMORY_LIMIT": bad})


def shipped_pod_limit() -> int:
    deployment = yaml.safe_load((ROOT / "deploy/k8s/base/deployment.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container.get("env", [])}
    # The manifest hands the pod's own limit to the service, so the caps follow the limit.
    assert env["CONTAINER_MEMORY_LIMIT"]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.memory"
    size = parse_size(container["resources"]["limits"]["memory"])
    assert size is not None
    return size


def shipped_endpoint_scheme() -> str:
    lines = (ROOT / "deploy/k8s/base/config.env").read_text().splitlines()
    [endpoint] = [line.split("=", 1)[1] for line in lines if line.startswith("APPWRITE_ENDPOINT=")]
    return endpoint.split("://", 1)[0]


def test_the_readme_states_the_shipped_pods_caps() -> None:
    """Its caps as its Appwrite's scheme makes them (https:// as shipped), and the other scheme's."""
    limit = MemoryLimit(shipped_pod_limit(), "CONTAINER_MEMORY_LIMIT")
    scheme = shipped_endpoint_scheme()
    other = "http" if scheme == "https" else "https"
    shipped, alternative = plan(limit, None, None, tls=scheme == "https"), plan(limit, None, None, tls=other == "https")
    readme = (ROOT / "README.md").read_text()
    stated = re.search(rf"([\d,]+) in the shipped (\d+)Mi pod, whose Appwrite is `{scheme}://` \(([\d,]+) with an? "
                       rf"`{other}://` one\)", readme)
    assert stated is not None
    assert int(stated.group(2)) * 2**20 == shipped_pod_limit()
    assert (count(stated.group(1)), count(stated.group(3))) == (shipped.max_sockets, alternative.max_sockets)
    sizing = re.search(rf"The shipped (\d+)Mi pod holds ([\d,]+) sockets \(([\d,]+) with an? `{other}://` Appwrite\)",
                       readme)
    assert sizing is not None
    assert (count(sizing.group(2)), count(sizing.group(3))) == (shipped.max_sockets, alternative.max_sockets)


def count(text: str) -> int:
    return int(text.replace(",", ""))
