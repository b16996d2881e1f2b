"""Running the real command line in child processes, on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until_up(url: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{url} did not come up")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running(
    *args: str, env: Mapping[str, str] | None = None, ready_url: str | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m appwrite_token_exchange ARGS` as a child process, killed at the end whatever happens.

    Its output is piped for the test to read. A pipe nobody reads is full after about 192 KiB (the
    kernel's 64 KiB and asyncio's 128 KiB), and the child's next log line then blocks its whole
    event loop: a test whose children log more (the emulator logs a line per request) reads it
    with `output_read`. That froze the pod-sized relay test near 1,200 sockets."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "appwrite_token_exchange", *args,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        if ready_url:
            await wait_until_up(ready_url)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


OUTPUT_TAIL_BYTES = 4096


@contextlib.asynccontextmanager
async def output_read(**children: asyncio.subprocess.Process) -> AsyncIterator[None]:
    """Read the children's output as it comes, keeping its tail for a failure's message: for a test
    whose children log more than a pipe holds (see `running`)."""
    tails = {f"{name} {kind}": bytearray() for name in children for kind in ("stdout", "stderr")}

    async def drain(stream: asyncio.StreamReader | None, tail: bytearray) -> None:
        while stream is not None and (chunk := await stream.read(65536)):
            tail += chunk
            del tail[:-OUTPUT_TAIL_BYTES]

    tasks = [
        asyncio.create_task(drain(getattr(process, kind), tails[f"{name} {kind}"]))
        for name, process in children.items() for kind in ("stdout", "stderr")
    ]
    try:
        yield
    except Exception as error:
        for name, tail in tails.items():
            error.add_note(f"--- {name} (last {OUTPUT_TAIL_BYTES} bytes) ---\n{tail.decode(errors='replace')}")
        raise
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.contextmanager
def open_files_at_least(wanted: int) -> Iterator[None]:
    """Raise the soft descriptor limit (children inherit it) for tests that hold more sockets than
    the usual default of 1,024: the pod-sized relay (two per page) or a crowd at the edge."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        assert hard == resource.RLIM_INFINITY or hard >= wanted, f"hard RLIMIT_NOFILE {hard} < {wanted}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def peak_rss_bytes(pid: int) -> int:
    """The process's high-water mark of resident memory (what a cgroup limit would have met)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")
