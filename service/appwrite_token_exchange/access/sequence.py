"""The one admission sequence both routes run (the token route and the relay's handshake), in the
order that keeps refusals cheap and never lets a cross-site page spend a visitor's allowance:

1. CSRF / Origin: header comparisons, nothing parsed (`screen_origin`);
2. the cookie (and the route's own screening, such as the relay's channels) under the IP charge:
   a request refused here still costs its IP;
3. the session's keyed fingerprint (never the secret) for every limit and cache key;
4. `admit`: the IP, session and user limits and the rejected-session memory, one question to the state;
5. the one Appwrite call, through the concurrency bound and the circuit breaker; a session Appwrite
   refuses is remembered, and the user a success names keeps the unit of the user limit reserved in
   step 4 (`ask_appwrite`). Whatever ends the request between the two without a token gives that
   unit back (`holding`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiohttp import web

from appwrite_token_exchange.access.limits import Admission
from appwrite_token_exchange.access.session_cookie import Session, session_from_cookie
from appwrite_token_exchange.appwrite.client import UpstreamError
from appwrite_token_exchange.keys import ACCESS_LIMITS, CLIENT_IP, FINGERPRINTER, SETTINGS, UPSTREAM_GUARD
from appwrite_token_exchange.settings import Settings

T = TypeVar("T")
Screened = TypeVar("Screened", covariant=True)


@dataclass(frozen=True)
class Caller(Generic[Screened]):
    """Who is asking, as far as the request itself says (Appwrite has not been asked yet)."""

    session: Session
    fingerprint: str  # keyed hash of the session secret: the key of its limits and caches
    session_hash: str  # its short form, for the audit log
    screened: Screened  # what the route's own screening returned


async def identify(
    request: web.Request, screen_origin: Callable[[web.Request, Settings], None], screen: Callable[[], Screened]
) -> Caller[Screened]:
    """Steps 1-3: refuse what the headers alone refuse, then read the cookie and screen the rest."""
    app = request.app
    settings = app[SETTINGS]
    screen_origin(request, settings)
    async with app[ACCESS_LIMITS].charging_ip(request[CLIENT_IP]):
        session = session_from_cookie(request, settings.session_cookie_name)
        screened = screen()
    fingerprinter = app[FINGERPRINTER]
    fingerprint = fingerprinter.of_session(session.secret)
    return Caller(session, fingerprint, fingerprinter.short(fingerprint), screened)


async def admit(request: web.Request, caller: Caller[object]) -> Admission:
    """Step 4: the limits, before Appwrite is asked (raises 429 or 401 with their headers)."""
    return await request.app[ACCESS_LIMITS].admit(request[CLIENT_IP], caller.fingerprint, caller.session.user_id)


@asynccontextmanager
async def holding(request: web.Request, admission: Admission) -> AsyncIterator[None]:
    """Between steps 4 and 5: a failure, a refusal or a cancellation inside gives back the unit of
    the user limit the admission reserved (nothing once `issued` has kept it)."""
    try:
        yield
    except BaseException:
        await request.app[ACCESS_LIMITS].give_back(admission)
        raise


async def ask_appwrite(
    request: web.Request, admission: Admission, call: Callable[[], Awaitable[T]], user_of: Callable[[T], str]
) -> T:
    """Step 5: the guarded Appwrite call; what Appwrite answered updates the limits."""
    app = request.app
    limits = app[ACCESS_LIMITS]
    async with holding(request, admission):
        async with app[UPSTREAM_GUARD].call():
            try:
                answer = await call()
            except UpstreamError as error:
                if error.code == "session_invalid":
                    await limits.rejected(admission)
                raise
        await limits.issued(admission, user_of(answer))
    return answer
