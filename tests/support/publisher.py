"""A publisher that keeps Realtime events coming, numbered, while a test swaps the relay's
upstream socket: what was sent, and how many upstream sockets each event reached."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import pytest
from appwrite_token_exchange.relay import translate as relay_translate

# Publishing through the emulator takes milliseconds; a wait this long means the publisher stalled.
WAIT_SECONDS = 10.0


class Publisher:
    """`async with Publisher(publish):` publishes {"n": 0}, {"n": 1}, ... back to back until the block
    ends; `publish` sends one payload and returns how many sockets it was delivered to."""

    def __init__(self, publish: Callable[[dict[str, Any]], Awaitable[int]]) -> None:
        self._publish = publish
        # delivered[n]: how many upstream sockets event n reached (2 while the old and the new are open).
        self.delivered: list[int] = []
        self._stop = asyncio.Event()
        self._more = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def sent(self) -> int:
        return len(self.delivered)

    async def _run(self) -> None:
        while not self._stop.is_set():
            self.delivered.append(await self._publish({"n": self.sent}))
            self._more.set()

    async def published(self, count: int) -> None:
        """Return once `count` more events than now have been published (waits on the publisher,
        not on the clock)."""
        assert self._task is not None, "use the publisher as `async with`"
        target = self.sent + count
        async with asyncio.timeout(WAIT_SECONDS):
            while self.sent < target:
                if self._task.done():
                    self._task.result()  # the publisher's own failure, if it failed
                    raise AssertionError("the publisher stopped")
                self._more.clear()
                more = asyncio.ensure_future(self._more.wait())
                await asyncio.wait({more, self._task}, return_when=asyncio.FIRST_COMPLETED)
                more.cancel()

    async def __aenter__(self) -> Publisher:
        self._task = asyncio.create_task(self._run())
        await self.published(1)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        assert self._task is not None
        if kind is None:
            await self._task
        else:
            self._task.cancel()


def hold_the_swap(monkeypatch: pytest.MonkeyPatch, publisher: Publisher, events: int = 3) -> None:
    """The relay's next upstream socket is held open, not yet switched to, until `events` more
    events are published: those reach the old socket and the new one."""
    real = relay_translate.connect_upstream

    async def connect_while_publishing(*args: Any) -> Any:
        new = await real(*args)
        await publisher.published(events)
        return new

    monkeypatch.setattr(relay_translate, "connect_upstream", connect_while_publishing)


async def events_until_answer(receive: Callable[[], Awaitable[dict[str, Any]]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The events the page reads before the relay's answer to its frame, and the answer."""
    events = []
    while (received := await receive())["type"] == "event":
        events.append(received)
    return events, received
