"""The routes that make a sign-out take effect at once.

- `POST /v1/realtime/webhooks/appwrite`: Appwrite's webhook (session deleted, user deleted, blocked or
  its password changed). Signed by Appwrite; each signature is taken once. Appwrite's own answer then
  decides: the user's sockets are re-checked now, on every replica.
- `DELETE /internal/v1/users/{userId}/sockets` and `.../sessions/{sessionId}/sockets`: the app's kick,
  with `Authorization: Bearer <REVOCATION_SECRET>`, on a path the manifests do not route publicly.
  Its word is final: the sockets close now, and the sessions they carried are answered 401.
"""

from __future__ import annotations

import hmac

import orjson
from aiohttp import web

from appwrite_token_exchange.keys import ACCESS_LIMITS, FINGERPRINTER, METRICS, REVOKER, SETTINGS, STATE
from appwrite_token_exchange.observability import audit
from appwrite_token_exchange.problems import ProblemError
from appwrite_token_exchange.revocation.notice import Revocation, is_appwrite_id
from appwrite_token_exchange.revocation.revoker import Outcome
from appwrite_token_exchange.revocation.webhook import (
    EVENTS_HEADER,
    SIGNATURE_HEADER,
    Unreadable,
    signed_by,
    user_to_recheck,
)

# Appwrite sends a user or a session model: a few KiB at most (prefs included).
MAX_WEBHOOK_BYTES = 64 * 1024
# Appwrite never retries a delivery: a signature is remembered this long, and seen again is a replay.
REPLAY_WINDOW_SECONDS = 86_400


async def appwrite_webhook(request: web.Request) -> web.Response:
    app = request.app
    settings, metrics = app[SETTINGS], app[METRICS]
    body = await _read_capped(request, MAX_WEBHOOK_BYTES)
    given = request.headers.get(SIGNATURE_HEADER)
    if not signed_by(settings.webhook_url, body, given, settings.webhook_signature_keys):
        _refuse(request, "signature")
        raise ProblemError("webhook_signature_invalid",
                           f"{SIGNATURE_HEADER} is missing or is not this webhook's signature of its URL and body "
                           "(check APPWRITE_WEBHOOK_URL and APPWRITE_WEBHOOK_SIGNATURE_KEY).")
    assert given is not None
    if not await app[STATE].add_once(f"webhook:{app[FINGERPRINTER].of(given)}", REPLAY_WINDOW_SECONDS):
        _refuse(request, "replayed")
        raise ProblemError("webhook_replayed", "This delivery was already received; Appwrite never sends one twice.")
    try:
        user_id = user_to_recheck(request.headers.get(EVENTS_HEADER), body)
    except Unreadable as error:
        _refuse(request, "malformed")
        raise ProblemError("bad_request", f"The webhook reports a session's end, but {error}.") from None
    if user_id is None:
        metrics.revocations.labels("webhook", "ignored").inc()
        return _json({"action": "ignored"})
    outcome = await app[REVOKER].revoke(Revocation(user_id, force=False), "webhook")
    return _json({"action": "rechecked", "userId": user_id, **outcome.to_json()})


async def revoke_user(request: web.Request) -> web.Response:
    _authorize(request)
    user_id = _appwrite_id(request, "userId")
    outcome = await request.app[REVOKER].revoke(Revocation(user_id, force=True), "internal")
    return _answer({"action": "closed", "userId": user_id}, outcome)


async def revoke_session(request: web.Request) -> web.Response:
    _authorize(request)
    user_id, session_id = _appwrite_id(request, "userId"), _appwrite_id(request, "sessionId")
    limits = request.app[ACCESS_LIMITS]
    fingerprint = await limits.session_fingerprint(session_id)
    if fingerprint is None:
        # Never seen on the token route: which of the user's sockets carry it is unknown, so Appwrite
        # is asked about each of them (the app deletes the session there first).
        revocation = Revocation(user_id, force=False)
    else:
        await limits.revoked(fingerprint)
        revocation = Revocation(user_id, fingerprint, force=True)
    outcome = await request.app[REVOKER].revoke(revocation, "internal")
    action = "closed" if revocation.force else "rechecked"
    return _answer({"action": action, "userId": user_id, "sessionId": session_id}, outcome)


def _authorize(request: web.Request) -> None:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    secrets = request.app[SETTINGS].revocation_secrets
    if scheme.lower() != "bearer" or not any(hmac.compare_digest(given.encode(), s.encode()) for s in secrets):
        _refuse(request, "unauthorized")
        raise ProblemError("revocation_unauthorized", "Send Authorization: Bearer <REVOCATION_SECRET>.",
                           {"WWW-Authenticate": 'Bearer realm="revocation"'})


def _appwrite_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not is_appwrite_id(value):
        _refuse(request, "malformed")
        raise ProblemError("bad_request", f"{name} is not an Appwrite id (1-36 letters, digits, '.', '_' or '-').")
    return value


def _answer(fields: dict[str, object], outcome: Outcome) -> web.Response:
    if outcome.broadcast == "failed":
        raise ProblemError("revocation_not_broadcast",
                           "Closed on this replica, but Redis could not pass it on to the others; retry.",
                           {"Retry-After": "1"}, extra={**fields, **outcome.to_json()})
    return _json({**fields, **outcome.to_json()})


def _refuse(request: web.Request, reason: str) -> None:
    request.app[METRICS].revocation_refusals.labels(reason).inc()
    audit.revocation_refused(reason, path=request.rel_url.path)


async def _read_capped(request: web.Request, limit: int) -> bytes:
    """The body, refused past `limit` (the app's client_max_size is sized for the token route)."""
    if request.content_length is not None and request.content_length > limit:
        raise ProblemError("body_too_large", f"A webhook body is at most {limit} bytes.")
    body = await request.content.read(limit + 1)
    while len(body) <= limit and not request.content.at_eof():
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        raise ProblemError("body_too_large", f"A webhook body is at most {limit} bytes.")
    return body


def _json(body: dict[str, object]) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers={"Cache-Control": "no-store"})
