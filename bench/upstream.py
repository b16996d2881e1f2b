"""The Appwrite emulator as the upstream, a Redis server, and the session cookies to load with."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.procs import PYTHON, Child, Children, free_port, http_call, wait_http

PROJECT = "bench"
PASSWORD = "bench-password-123"  # noqa: S105 - a throwaway emulator user


@dataclass(frozen=True)
class Session:
    user_id: str
    cookie: str


def emulator_env(project: str = PROJECT) -> dict[str, str]:
    """Appwrite without its own limits: every exchange and socket the benchmark makes must pass."""
    return {
        "EMULATOR_PROJECT_ID": project,
        "EMULATOR_JWT_RATE_LIMIT": "0",
        "EMULATOR_REALTIME_CONNECT_LIMIT": "0",
        "EMULATOR_REALTIME_MESSAGE_LIMIT": "0",
        "LOG_LEVEL": "warning",
    }


def start_emulator(
    children: Children, cpus: frozenset[int], *, lean: bool, name: str = "emulator", lean_args: tuple[str, ...] = ()
) -> Child:
    """`lean_args`: more options of bench.lean_emulator (its request caps)."""
    port = free_port()
    module = ["-m", "bench.lean_emulator", *lean_args] if lean else ["-m", "appwrite_token_exchange", "emulator"]
    child = children.start(
        name, [PYTHON, *module, "--port", str(port)], env=emulator_env(), cpus=cpus, port=port
    )
    wait_http(child, "/v1/health/version")
    return child


def create_sessions(emulator: Child, count: int, prefix: str = "bench") -> list[Session]:
    """`count` users with one session each, through the emulator's control API."""
    assert emulator.port is not None
    sessions = []
    for index in range(count):
        user_id = f"{prefix}{index}"
        status, body = http_call(
            emulator.port, "POST", "/_emulator/users",
            {"email": f"{user_id}@example.com", "password": PASSWORD, "userId": user_id},
        )
        if status != 201:
            raise RuntimeError(f"emulator refused a user: {status} {body!r}")
        status, body = http_call(emulator.port, "POST", "/_emulator/sessions", {"userId": user_id})
        if status != 201:
            raise RuntimeError(f"emulator refused a session: {status} {body!r}")
        sessions.append(Session(user_id, json.loads(body)["secret"]))
    return sessions


def write_sessions(sessions: list[Session], path: Path) -> Path:
    path.write_text("".join(f"{session.cookie}\n" for session in sessions))
    return path


def start_redis(children: Children, cpus: frozenset[int], directory: Path) -> tuple[Child, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    child = children.start(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        cpus=cpus,
        port=port,
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or not child.alive():
                    raise
                time.sleep(0.05)
    finally:
        client.close()
    return child, f"redis://127.0.0.1:{port}/0"
