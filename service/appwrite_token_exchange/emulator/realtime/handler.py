"""`GET /v1/realtime`: the WebSocket handshake and the frame loop, as Appwrite's Realtime server.

The upgrade is always accepted; a refused handshake is an `error` frame followed by the server
dropping the TCP connection without a close frame (Appwrite's Swoole adapter ignores the close
code it is given), so clients see an abnormal closure (1006) right after the error.
"""

from __future__ import annotations

from typing import Any

from aiohttp import WSMsgType, web

from appwrite_token_exchange.emulator.auth import client_ip, identify
from appwrite_token_exchange.emulator.config import EmulatorConfig
from appwrite_token_exchange.emulator.credentials import unique_id
from appwrite_token_exchange.emulator.errors import AppwriteError
from appwrite_token_exchange.emulator.keys import EMULATOR_CONFIG, EMULATOR_STATE, REALTIME
from appwrite_token_exchange.emulator.models import account_model
from appwrite_token_exchange.emulator.realtime.channels import (
    check_queries,
    convert_channels,
    parse_php_query,
    php_array,
    query_channels,
    url_subscriptions,
)
from appwrite_token_exchange.emulator.realtime.hub import RealtimeConnection, Subscription
from appwrite_token_exchange.emulator.realtime.messages import (
    POLICY_VIOLATION,
    TOO_MANY_MESSAGES,
    RealtimeError,
    handle,
    parse,
)
from appwrite_token_exchange.emulator.realtime.origin import origin_refusal
from appwrite_token_exchange.emulator.realtime.wire import encode
from appwrite_token_exchange.emulator.state import EmulatorState

WINDOW_SECONDS = 60
MAX_FRAME_BYTES = 64_000


async def realtime(request: web.Request) -> web.StreamResponse:
    config = request.app[EMULATOR_CONFIG]
    state = request.app[EMULATOR_STATE]
    hub = request.app[REALTIME]
    # Appwrite's Realtime server takes frames of at most 64 kB (Swoole's package_max_length).
    socket = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES)
    if not socket.can_prepare(request).ok:
        raise AppwriteError("general_bad_request", "Realtime is only served over WebSocket.")
    connection = RealtimeConnection(
        id=unique_id(state.now()),
        project=request.query.get("project", ""),
        ip=client_ip(request),
        forwarded_for=request.headers.get("X-Forwarded-For"),
        origin=request.headers.get("Origin"),
        opened_at=state.now(),
    )
    hub.attempted(connection)
    await socket.prepare(request)
    try:
        welcome = _handshake(request, connection, state, config)
    except RealtimeError as error:
        connection.error = error.frame()["data"]
        hub.closed(connection)
        await socket.send_str(encode(error.frame()))
        _drop(request)
        return socket

    hub.opened(connection, socket)
    try:
        await socket.send_str(encode(welcome))
        async for frame in socket:
            if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            try:
                _count_message(connection, state, config)
                reply = handle(parse(frame.data), connection, state, config)
            except RealtimeError as error:
                await socket.send_str(encode(error.frame()))
                if error.code == POLICY_VIOLATION:
                    _drop(request)
                    break
                continue
            await socket.send_str(encode(reply))
    finally:
        hub.closed(connection)
    return socket


def _drop(request: web.Request) -> None:
    """Close the TCP connection after what was already written, with no close frame."""
    if request.transport is not None:
        request.transport.close()


def _count_message(connection: RealtimeConnection, state: EmulatorState, config: EmulatorConfig) -> None:
    limit = config.realtime_message_limit
    if limit and not state.limiter.hit(("realtime-message", connection.id), limit, WINDOW_SECONDS).allowed:
        raise RealtimeError(TOO_MANY_MESSAGES, "Too many messages.")


def _handshake(
    request: web.Request,
    connection: RealtimeConnection,
    state: EmulatorState,
    config: EmulatorConfig,
) -> dict[str, Any]:
    """The `connected` frame for an accepted socket; RealtimeError for a refused one."""
    if connection.project != config.project_id:
        raise RealtimeError(POLICY_VIOLATION, "Missing or unknown project ID")

    # Appwrite reads the header first and, on servers with PR #12664 only, falls back to ?jwt=.
    if "X-Appwrite-JWT" in request.headers or not config.realtime_reads_jwt_query:
        token = request.headers.get("X-Appwrite-JWT", "")
    else:
        token = request.query.get("jwt", "")
    try:
        caller = identify(state, request.cookies, request.headers, token)
    except AppwriteError as error:
        raise RealtimeError(error.status, error.message) from None

    limit = config.realtime_connect_limit
    if limit:
        key = ("realtime-connect", connection.ip, request.path)
        if not state.limiter.hit(key, limit, WINDOW_SECONDS).allowed:
            raise RealtimeError(TOO_MANY_MESSAGES, "Too many requests")

    # The Origin check (CSRF): only sockets that send an Origin; Appwrite's own host always passes.
    if connection.origin:
        # Allowed besides the project's platforms: the host the socket was opened on (1.8.1's
        # "Current Host"; 1.9+'s `_APP_DOMAIN`) and, on self-hosted servers, `localhost` (the
        # default `_APP_DOMAIN`). Appwrite Cloud's own domain is never a client's.
        hostnames = [*request.app[REALTIME].platforms, request.url.host or ""]
        if config.origin_allows_localhost:
            hostnames.append("localhost")
        refusal = origin_refusal(
            connection.origin,
            hostnames,
            config.project_id,
            loopback_aliases=config.origin_loopback_aliases,
            tauri=config.origin_tauri_scheme,
        )
        if refusal is not None:
            raise RealtimeError(POLICY_VIOLATION, refusal)

    connection.set_user(caller.user)
    user = account_model(caller.user) if caller.user is not None else None
    parsed = parse_php_query(request.query.items())
    names = convert_channels(query_channels(parsed), connection.user_id or "", config.account_action_channels)
    if not names and config.realtime_requires_url_channels:
        raise RealtimeError(POLICY_VIOLATION, "Missing channels")

    if not config.realtime_subscription_ids:
        connection.channels = names
        return {"type": "connected", "data": {"channels": names, "user": user}}

    mapping: dict[Any, str] = {}
    for slot, wanted in url_subscriptions(names, parsed).items():
        try:
            queries = check_queries(wanted.queries) if config.realtime_subscription_ids else wanted.queries
        except ValueError as error:
            raise RealtimeError(POLICY_VIOLATION, str(error)) from None
        subscription = Subscription(unique_id(state.now()), wanted.channels, queries)
        connection.subscriptions[subscription.id] = subscription
        mapping[slot] = subscription.id
    return {
        "type": "connected",
        "data": {"channels": names, "subscriptions": php_array(mapping), "user": user},
    }
