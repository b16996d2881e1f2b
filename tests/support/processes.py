"""Running the real command line in child processes, on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping

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
    """`python -m appwrite_token_exchange ARGS` as a child process, killed at the end whatever happens."""
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
