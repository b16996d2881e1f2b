"""A stdout nobody reads (a container runtime fallen behind) holds up the log writer's thread,
never the event loop; lines keep their order, none is dropped, and the queue is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Iterator

import aiohttp
import pytest
from appwrite_token_exchange.observability.log_writer import BackgroundWriter

from tests.support.processes import free_port, running, wait_until_up

PROJECT = "logproject"
PIPE_BYTES = 64 * 1024  # Linux's default pipe capacity


@contextlib.contextmanager
def unread_pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    try:
        yield read_end, write_end
    finally:
        for fd in (read_end, write_end):
            with contextlib.suppress(OSError):
                os.close(fd)


def _read_lines(read_end: int, count: int) -> list[bytes]:
    data = b""
    while data.count(b"\n") < count:
        chunk = os.read(read_end, 1 << 16)
        if not chunk:
            break
        data += chunk
    return data.splitlines()


def _writes_in_a_thread(writer: BackgroundWriter, lines: list[bytes]) -> threading.Thread:
    thread = threading.Thread(target=lambda: [writer.write(line) for line in lines], daemon=True)
    thread.start()
    return thread


def test_writes_return_while_the_pipe_is_full_and_every_line_arrives_in_order() -> None:
    lines = [b"%05d " % n + b"x" * 1000 + b"\n" for n in range(300)]  # ~300 KiB, the pipe holds 64
    with unread_pipe() as (read_end, write_end):
        writer = BackgroundWriter(os.fdopen(write_end, "wb", closefd=False))
        writing = _writes_in_a_thread(writer, lines)
        writing.join(timeout=5)
        assert not writing.is_alive(), "a write waited for the pipe's reader"
        assert _read_lines(read_end, len(lines)) == [line.rstrip(b"\n") for line in lines]
        writer.close()


@pytest.mark.slow
def test_past_the_bound_a_write_waits_for_room_and_then_goes_on() -> None:
    lines = [b"%05d " % n + b"y" * 1000 + b"\n" for n in range(200)]
    with unread_pipe() as (read_end, write_end):
        writer = BackgroundWriter(os.fdopen(write_end, "wb", closefd=False), max_queued=10)
        writing = _writes_in_a_thread(writer, lines)
        writing.join(timeout=1)
        assert writing.is_alive(), "the queue grew past its bound"
        assert _read_lines(read_end, len(lines)) == [line.rstrip(b"\n") for line in lines]
        writing.join(timeout=5)
        assert not writing.is_alive()
        writer.close()


def test_a_stdout_that_is_gone_never_holds_a_writer_up() -> None:
    class Gone:
        def write(self, data: bytes) -> int:
            raise BrokenPipeError

        def flush(self) -> None:
            pass

    writer = BackgroundWriter(Gone(), max_queued=2)  # type: ignore[arg-type]
    writing = _writes_in_a_thread(writer, [b"line\n"] * 1000)
    writing.join(timeout=5)
    assert not writing.is_alive()
    writer.close()


async def test_the_service_keeps_answering_while_nobody_reads_its_stdout() -> None:
    emulator_port, service_port = free_port(), free_port()
    emulator_url, service_url = f"http://127.0.0.1:{emulator_port}", f"http://127.0.0.1:{service_port}"
    exchanges = 400  # about 150 KB of audit lines: more than twice what the pipe holds
    async with running("emulator", "--port", str(emulator_port), env={"EMULATOR_PROJECT_ID": PROJECT},
                       ready_url=f"{emulator_url}/v1/health/version"):
        with unread_pipe() as (read_end, write_end):
            service = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "appwrite_token_exchange", "serve", stdout=write_end,
                env={**os.environ, "APPWRITE_ENDPOINT": f"{emulator_url}/v1", "APPWRITE_PROJECT_ID": PROJECT,
                     "HOST": "127.0.0.1", "PORT": str(service_port), "LOG_LEVEL": "info", "LOG_FORMAT": "json",
                     "RATE_LIMIT_IP": "off", "RATE_LIMIT_SESSION": "off", "RATE_LIMIT_USER": "off"},
            )
            try:
                await wait_until_up(f"{service_url}/livez")
                timeout = aiohttp.ClientTimeout(total=10)
                async with aiohttp.ClientSession(timeout=timeout) as http:
                    # Several users: Appwrite (and the emulator) caps JWTs per user.
                    cookies = [await _session(http, emulator_url, n) for n in range(exchanges // 80)]
                    statuses = []
                    for n in range(exchanges):
                        headers = {"X-CSRF": "1", "Cookie": f"a_session_{PROJECT}={cookies[n % len(cookies)]}"}
                        async with http.post(f"{service_url}/v1/realtime/token", headers=headers) as response:
                            statuses.append(response.status)
                assert statuses == [200] * exchanges
                # The reader comes back (as a runtime does) and gets every line, in order, by the exit.
                os.close(write_end)  # ours; the child's copy stays open until it exits
                reading = asyncio.create_task(asyncio.to_thread(_read_lines, read_end, 10**6))
                service.terminate()
                await service.wait()
                output = await reading
            finally:
                if service.returncode is None:
                    service.kill()
                    await service.wait()
    issued = [line for line in output if b'"event":"token.issued"' in line]
    assert len(issued) == exchanges
    assert not [cookie for cookie in cookies if cookie.encode() in b"\n".join(output)]


async def _session(http: aiohttp.ClientSession, emulator_url: str, n: int) -> str:
    user = {"email": f"log{n}@example.com", "password": "password-1"}
    async with http.post(f"{emulator_url}/_emulator/users", json=user) as r:
        user_id = (await r.json())["userId"]
    async with http.post(f"{emulator_url}/_emulator/sessions", json={"userId": user_id}) as r:
        return str((await r.json())["secret"])
