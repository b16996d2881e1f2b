"""Protecting Appwrite: a hard bound on concurrent calls and a circuit breaker."""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from appwrite_token_exchange.appwrite.client import UpstreamError

SATURATED_RETRY_AFTER = "1"


class CircuitState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class UpstreamGuard:
    """Refuses at once rather than queueing: a growing queue only turns overload into timeouts."""

    def __init__(
        self,
        max_concurrency: int,
        failure_threshold: int,
        cooldown_seconds: float,
        on_state_change: Callable[[CircuitState], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_concurrency
        self._threshold = failure_threshold
        self._cooldown = cooldown_seconds
        self._on_state_change = on_state_change
        self._clock = clock
        self.in_flight = 0
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self.state = CircuitState.CLOSED

    def readiness(self) -> dict[str, object]:
        return {
            "status": "ok" if self.state is CircuitState.CLOSED else "degraded",
            "circuit": self.state.name.lower().replace("_", "-"),
            "in_flight": self.in_flight,
        }

    @asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """Admit one upstream call or raise a 503 problem; record how it went."""
        probe = self._admit()
        self.in_flight += 1
        try:
            yield
        except UpstreamError as error:
            self._record(success=not error.is_upstream_failure, probe=probe)
            raise
        except asyncio.CancelledError:
            # The caller went away; that says nothing about Appwrite's health.
            self._probing = self._probing and not probe
            raise
        except BaseException:
            self._record(success=False, probe=probe)
            raise
        else:
            self._record(success=True, probe=probe)
        finally:
            self.in_flight -= 1

    def _admit(self) -> bool:
        if self.state is CircuitState.OPEN:
            remaining = self._cooldown - (self._clock() - self._opened_at)
            if remaining > 0:
                raise UpstreamError(
                    "upstream_unavailable",
                    "Appwrite is failing; calls are paused for a moment (circuit open).",
                    None,
                    str(max(1, math.ceil(remaining))),
                )
            self._set(CircuitState.HALF_OPEN)
        if self.state is CircuitState.HALF_OPEN:
            if self._probing:
                raise UpstreamError(
                    "upstream_unavailable", "Appwrite is being probed after failures.", None, SATURATED_RETRY_AFTER
                )
            self._probing = True
            return True
        if self.in_flight >= self._max:
            raise UpstreamError(
                "upstream_saturated", "Too many Appwrite calls are in flight.", None, SATURATED_RETRY_AFTER
            )
        return False

    def _record(self, success: bool, probe: bool) -> None:
        if probe:
            self._probing = False
        if success:
            self._failures = 0
            if self.state is not CircuitState.CLOSED:
                self._set(CircuitState.CLOSED)
            return
        self._failures += 1
        if probe or self._failures >= self._threshold:
            self._opened_at = self._clock()
            self._set(CircuitState.OPEN)

    def _set(self, state: CircuitState) -> None:
        if state is not self.state:
            self.state = state
            self._on_state_change(state)
