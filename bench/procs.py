"""Child processes for the benchmark: started pinned to a core, measured from /proc, always stopped."""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces: the fields that follow start after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process now, or (`VmHWM`) at its peak so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over every core."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


def raise_open_files_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE toward `wanted` (never past the hard limit); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@dataclass(frozen=True)
class Cores:
    """Which CPUs the system under test gets, and which the load generator and helpers get."""

    sut: frozenset[int]
    rest: frozenset[int]

    @classmethod
    def split(cls, sut_cpu: int | None = None) -> Cores:
        available = sorted(os.sched_getaffinity(0))
        if len(available) < 2:
            return cls(frozenset(available), frozenset(available))
        chosen = available[0] if sut_cpu is None or sut_cpu not in available else sut_cpu
        return cls(frozenset({chosen}), frozenset(c for c in available if c != chosen))

    @property
    def pinned(self) -> bool:
        return self.sut != self.rest

    def describe(self) -> str:
        if not self.pinned:
            return f"not pinned (one CPU: {sorted(self.sut)})"
        return (
            f"system under test on CPU {','.join(map(str, sorted(self.sut)))}; "
            f"Appwrite emulator, Redis and load generator on CPU {','.join(map(str, sorted(self.rest)))}"
        )


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None
    log: IO[bytes] | None = field(default=None, repr=False)
    drain: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_kib(self.pid)

    def peak_rss(self) -> int:
        return rss_kib(self.pid, "VmHWM")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Children:
    """Every process the benchmark starts; all of them are stopped on exit, whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._children: list[Child] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for child in reversed(self._children):
            self.stop(child)

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        cpus: Iterable[int] | None = None,
        port: int | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout_pipe: bool = False,
        stdout_to_null: bool = False,
        drain_cpus: Iterable[int] | None = None,
    ) -> Child:
        """Start a child; stderr goes to <name>.log, and stdout too unless piped or discarded.

        With `drain_cpus`, stdout is a pipe that a `cat` on those CPUs drains to /dev/null, as a
        container runtime drains a container's stdout: a write blocks when the pipe is full."""
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("wb")
        drain = None
        stdout: int | IO[bytes] = subprocess.PIPE if stdout_pipe else subprocess.DEVNULL if stdout_to_null else log
        if drain_cpus is not None:
            read_end, write_end = os.pipe()
            drain = subprocess.Popen(["cat"], stdin=read_end, stdout=subprocess.DEVNULL)  # noqa: S607
            os.sched_setaffinity(drain.pid, set(drain_cpus))
            os.close(read_end)
            stdout = write_end
        popen = subprocess.Popen(  # noqa: S603 - argv is built by the benchmark itself
            argv,
            env={**os.environ, **(env or {})},
            stdin=stdin,
            stdout=stdout,
            stderr=log,
        )
        if drain is not None:
            os.close(write_end)
        child = Child(name, popen, log_path, port, log, drain)
        self._children.append(child)
        if cpus is not None:
            # Right after the exec the child has one thread; threads it starts later inherit the mask.
            os.sched_setaffinity(popen.pid, set(cpus))
        return child

    def stop(self, child: Child) -> None:
        if child.alive():
            child.popen.send_signal(signal.SIGTERM)
            try:
                child.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.popen.kill()
                child.popen.wait(timeout=10)
        for stream in (child.popen.stdin, child.popen.stdout):
            if stream is not None:
                stream.close()
        if child.log is not None:
            child.log.close()
            child.log = None
        if child.drain is not None:
            child.drain.wait(timeout=10)  # EOF once the child is gone
            child.drain = None
        if child in self._children:
            self._children.remove(child)


def wait_http(child: Child, path: str, timeout: float = 20.0) -> None:
    """Until the child answers HTTP on its port (any status below 500)."""
    assert child.port is not None
    deadline = time.monotonic() + timeout
    while True:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
        try:
            status, _ = http_call(child.port, "GET", path)
            if status < 500:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{child.name} did not come up on port {child.port}:\n{child.log_tail()}")
        time.sleep(0.05)


def http_call(
    port: int, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    """One small HTTP call on 127.0.0.1 (the control API, /metrics); JSON in when a body is given."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        payload = None if body is None else json.dumps(body).encode()
        sent = dict(headers or {})
        if payload is not None:
            sent["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=sent)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
