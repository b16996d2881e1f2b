"""Redis calls as spans: RedisState with one CLIENT span per state operation, used only when
tracing is on (the plain RedisState serves otherwise, at no cost). Attributes name the operation
and the server, never a key or a value (keys are fingerprints of sessions)."""

from __future__ import annotations

from typing import Any

from appwrite_token_exchange.observability.tracing import Tracer
from appwrite_token_exchange.state.admission import AdmissionAnswer, AdmissionQuery, Reservation
from appwrite_token_exchange.state.redis_store import RedisState
from appwrite_token_exchange.state.redis_url import RedisConfig
from appwrite_token_exchange.state.sliding_window import Check, Decision


class TracedRedisState(RedisState):
    def __init__(self, client: Any, config: RedisConfig, tracing: Tracer) -> None:
        super().__init__(client, cluster=config.kind == "redis-cluster")
        self._tracing = tracing
        host, port = config.hosts[0] if config.hosts else ("localhost", 0)
        self._attributes: dict[str, str | int] = {
            "db.system.name": "redis", "server.address": host, "server.port": port, "db.namespace": str(config.db),
        }
        cache_set = self.cache.set

        async def traced_set(*args: Any, **kwargs: Any) -> Any:
            with self._span("cache.set", "SET"):
                return await cache_set(*args, **kwargs)

        self.cache.set = traced_set

    def _span(self, operation: str, command: str) -> Any:
        return self._tracing.client_span(f"redis {operation}", {**self._attributes, "db.operation.name": command})

    async def admit(self, query: AdmissionQuery) -> AdmissionAnswer:
        with self._span("admit", "EVALSHA"):
            return await super().admit(query)

    async def hit(self, checks: list[Check]) -> list[Decision]:
        with self._span("hit", "EVALSHA"):
            return await super().hit(checks)

    async def add(self, check: Check) -> None:
        with self._span("add", "EVALSHA"):
            await super().add(check)

    async def give_back(self, reservation: Reservation) -> None:
        with self._span("give_back", "EVALSHA"):
            await super().give_back(reservation)

    async def ping(self) -> None:
        with self._span("ping", "PING"):
            await super().ping()

    async def get_cached(self, keys: list[str]) -> list[object]:
        with self._span("get_cached", "MGET"):
            return await super().get_cached(keys)

    async def add_once(self, key: str, ttl: int) -> bool:
        with self._span("add_once", "SET"):
            return await super().add_once(key, ttl)
