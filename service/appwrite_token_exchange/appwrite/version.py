"""Appwrite's version (`GET /v1/health/version`): asked when needed, kept, and shared by /readyz
and the relay, so each caller says how old an answer it accepts instead of keeping its own copy;
and what a version string means.

Appwrite spells its versions as released (`1.9.6`, `2.2.0`), as a release candidate of one
(`1.9.5-rc.1`: older than `1.9.5`, as in SemVer), or as a build of its Cloud line (`cl-1.9.6-...`:
the Cloud build of that version). `at_least` reads all three.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable

import aiohttp

from appwrite_token_exchange.appwrite.client import probe_version

Release = tuple[int, int, int]
_VERSION = re.compile(r"(?P<cloud>cl-)?(?P<release>\d+\.\d+\.\d+)(?P<suffix>-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")


def at_least(version: str | None, release: Release) -> bool | None:
    """Whether Appwrite `version` is `release` or newer; None when `version` is not one Appwrite
    spells (or unknown). A release candidate is older than its release; a Cloud build is its release."""
    found = _VERSION.fullmatch((version or "").strip())
    if found is None:
        return None
    major, minor, patch = (int(part) for part in found["release"].split("."))
    candidate = found["suffix"] is not None and found["cloud"] is None
    return (major, minor, patch) > release or ((major, minor, patch) == release and not candidate)


class AppwriteVersion:
    """The last version Appwrite told and when; one probe in flight at a time, whoever asks."""

    def __init__(self, endpoint: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._endpoint = endpoint
        self._clock = clock
        self._version: str | None = None
        self._told_at = -math.inf
        self._failed_at = -math.inf
        self._probe: asyncio.Task[str | None] | None = None

    async def get(
        self, http: aiohttp.ClientSession, *, max_age: float, wait_seconds: float, failure_ttl: float = 0.0,
        stale_ok: bool = False,
    ) -> str | None:
        """The version, if Appwrite told it within `max_age` seconds; else asked now (at most
        `wait_seconds`). None when it cannot be read, and, for `failure_ttl` seconds after a
        failed probe, without asking again. With `stale_ok`, an older answer is returned at once
        while the probe runs, so no caller waits on Appwrite once it has answered."""
        now = self._clock()
        if self._version is not None and now - self._told_at < max_age:
            return self._version
        if now - self._failed_at < failure_ttl:
            return None
        if self._probe is None:
            self._probe = asyncio.create_task(self._ask(http, wait_seconds))
            self._probe.add_done_callback(self._forget_probe)
        if stale_ok and self._version is not None:
            return self._version
        try:
            # A caller with a shorter timeout than the probe in flight stops waiting, not the probe.
            return await asyncio.wait_for(asyncio.shield(self._probe), wait_seconds)
        except TimeoutError:
            return None

    async def _ask(self, http: aiohttp.ClientSession, seconds: float) -> str | None:
        version = await probe_version(http, self._endpoint, seconds)
        if version is None:
            self._failed_at = self._clock()
        else:
            self._version, self._told_at = version, self._clock()
        return version

    def _forget_probe(self, _: asyncio.Task[str | None]) -> None:
        self._probe = None
