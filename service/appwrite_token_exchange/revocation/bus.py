"""Revocations passed to every replica through Redis pub/sub (when REDIS_URL is set).

Pub/sub, not a stream: a revocation matters only to the sockets open now, and a replica that was
cut off from Redis meanwhile still closes them at its next session re-check
(RELAY_REVALIDATE_SECONDS). Messages carry ids and keyed hashes, never a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from typing import Any

import structlog
from redis.exceptions import RedisClusterException, RedisError

from appwrite_token_exchange.revocation.notice import Revocation

CHANNEL = "rtx:revocations"
# Between reconnects while Redis is gone; a ping this often finds a silently dead connection.
_RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
_PING_SECONDS = 10.0
_log = structlog.get_logger(logger_name="revocation")


class RevocationBus:
    """Publishes this replica's revocations and hands the others' to `deliver`."""

    def __init__(self, client: Any, deliver: Callable[[Revocation], None]) -> None:
        self._client = client
        self._deliver = deliver
        self.origin = secrets.token_hex(8)  # this replica: its own messages are already applied
        self.listening = False
        # Set while subscribed / while not (after a first subscription): what tests wait on.
        self.listened = asyncio.Event()
        self.lost = asyncio.Event()

    async def publish(self, revocation: Revocation) -> int:
        """The replicas' subscribers reached (this one included); raises when Redis cannot take it."""
        return int(await self._client.publish(CHANNEL, revocation.to_message(self.origin)))

    def readiness(self) -> dict[str, object]:
        return {"status": "ok" if self.listening else "degraded", "channel": CHANNEL, "subscribed": self.listening}

    async def listen_forever(self) -> None:
        attempt = 0
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                if attempt:
                    _log.warning("revocation.bus_recovered", after_attempts=attempt)
                attempt = 0
                self.listening = True
                self.lost.clear()
                self.listened.set()
                while True:
                    message = await pubsub.get_message(timeout=_PING_SECONDS)
                    if message is None:
                        await pubsub.ping()
                    elif message.get("type") == "message":
                        self._take(message.get("data"))
            except (RedisError, RedisClusterException, OSError, TimeoutError) as error:
                if self.listening or attempt == 0:  # once per outage
                    _log.warning("revocation.bus_unavailable", error=type(error).__name__,
                                 effect="sockets revoked on other replicas close at their next re-check")
                self.listening = False
                self.listened.clear()
                self.lost.set()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(_RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)])
            attempt += 1

    def _take(self, data: object) -> None:
        if not isinstance(data, (bytes, str)):
            return
        read = Revocation.from_message(data)
        if read is not None and read[0] != self.origin:
            self._deliver(read[1])
