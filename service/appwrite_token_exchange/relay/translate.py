"""The relay in front of Appwrite servers that take Realtime channels only in the handshake URL.

Servers 1.8.x and 1.9.0 refuse a socket whose URL names no channels ("Missing channels") and read
no `subscribe` frames, while web SDK >= 25 opens with `?project=` only and subscribes by frame.
For those servers the relay speaks the newer protocol to the page and the older one upstream:

- the page gets a `connected` frame with its user at once (taken from an upstream socket opened on
  `account`, the one channel every signed-in user has, so the user model is Appwrite's own);
- a `subscribe` frame is answered by the relay (`response`, `success`, the subscriptions), and
  when it adds channels the upstream socket does not carry, a new upstream socket is opened with
  every channel of the page in its URL (checked by the channel policy, built by upstream_url);
- subscribe frames that need new channels are served by one reopen: the relay waits briefly
  (MERGE_SECONDS) and, when the socket or its client IP has reopened too often
  (RELAY_RECONNECTS_PER_SOCKET, RELAY_RECONNECTS_PER_IP), until it may reopen again; every subscribe
  frame that arrives meanwhile joins that reopen, and each is answered, in order, once it holds.
  A page's subscriptions and channels are capped (relay_subscriptions); past a cap the socket is
  closed with 1008;
- `unsubscribe` is answered by the relay and only stops routing: the upstream socket keeps the
  channel until the next reopen, which costs nothing the page can see and saves a reconnect
  (Appwrite allows 128 connects per minute per client IP);
- each event carries the ids of the page's subscriptions whose channels it was sent on, so the
  SDK hands it to the right callbacks; an event for none of them is dropped.

The swap, and what it can lose. The new upstream socket is opened while the old one is still read;
once Appwrite has sent the new socket's `connected` frame (it registers a socket's channels before
sending that frame), the old socket gets a last ping and is read up to its pong, then closed, and
the new one is read from then on (what it received meanwhile waits in its buffer). Appwrite answers
a socket's frames in order, so every event it wrote to the old socket before the new one was
registered comes before that pong; closing at once would throw away whatever the old socket still
held unread. Events published in between reach both sockets and are passed on once: fingerprints
(an event without its `subscriptions`) are kept from the moment the swap starts. One task reads
both sockets in turn, as the plain relay reads its one: a socket costs no more tasks translated.
What can still be lost:
- events on the *added* channels published before the new socket's handshake; the page has not
  been told its subscription holds yet (the `response` is sent after the swap), as with a server
  that applies a subscribe frame when it reads it;
- if the old socket dies during the swap (Appwrite restarts, the network drops), events between its
  last frame and the new socket's handshake; when the current socket dies outside a swap, the
  page's socket is closed as with the plain relay and the SDK reconnects and resubscribes;
- two distinct events identical in every field (events, channels, timestamp to the millisecond,
  payload) that arrive during one swap are passed on once.
Queries cannot be translated: 1.8.x has none, so a subscription with queries is refused rather
than delivered unfiltered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
from collections import OrderedDict
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from appwrite_token_exchange.appwrite.version import AppwriteVersion, at_least
from appwrite_token_exchange.keys import ACCESS_LIMITS, CLIENT_IP, SETTINGS
from appwrite_token_exchange.problems import ProblemError
from appwrite_token_exchange.relay.policy import FORMAT_INVALID, POLICY_VIOLATION, Handshake, screen_frame, upstream_url
from appwrite_token_exchange.relay.pump import Relay, SocketEnded
from appwrite_token_exchange.relay.subscriptions import subscription_id_of
from appwrite_token_exchange.relay.upstream import Upstream, connect_upstream, too_large
from appwrite_token_exchange.settings import Settings

# The upstream socket before the page subscribes: every signed-in user may listen on `account`,
# and its `connected` frame carries the user the page is told about.
BOOTSTRAP_CHANNELS = ("account",)
# The first server version that reads `subscribe` frames and accepts a URL without channels (tag
# 1.9.5: message-based subscribe; there are no tags 1.9.1-1.9.4). Older ones are translated, and so
# is a version that cannot be read: translation works against every server.
FIRST_FRAME_SUBSCRIBING_RELEASE = (1, 9, 5)
# A version answer is trusted this long, so an upgraded Appwrite is noticed without a restart (an
# older answer still serves while it is asked again).
VERSION_CACHE_SECONDS = 300.0
# After a failed probe, sockets are translated without asking again for this long: a hanging
# /v1/health/version must not hold up every handshake.
VERSION_FAILURE_SECONDS = 30.0
# The upstream URL carries every channel of the page; HTTP servers refuse a request line much
# longer than 8 KiB (aiohttp's and nginx's default), so a reopen that would need more is refused.
MAX_URL_BYTES = 8000
# How long a subscribe frame that needs new channels waits for others to join its reopen: the SDK
# sends one frame per `subscribe()` call, and a page often makes several in a row.
MERGE_SECONDS = 0.05
# A socket whose client IP stays over RELAY_RECONNECTS_PER_IP this many waits in a row (each up to
# the window) is closed with 1013 instead: its page reconnects and subscribes afresh.
MAX_IP_WAITS = 10
# Fingerprints of events kept during a swap (more than a swap's worth of events on any socket).
_MAX_MARKS = 4096
# The clock and the wait of the reopen limits (tests put a fake clock in their place).
_clock = time.monotonic
_pause = asyncio.sleep
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,35}")


def needs_channels_in_url(version: str | None) -> bool:
    """Whether a server of this version refuses sockets without channels in the URL; an unknown or
    unreadable version is treated as one that does (the translation works everywhere)."""
    return not at_least(version, FIRST_FRAME_SUBSCRIBING_RELEASE)


class UrlChannels:
    """APPWRITE_REALTIME_CHANNELS_IN_URL: `yes`, `no`, or (`auto`) what Appwrite's version says.

    The version is asked of `GET /v1/health/version` when a page first needs the answer, not at
    start (Appwrite may be down then), and again after VERSION_CACHE_SECONDS while the older answer
    still serves. A failed probe is remembered for VERSION_FAILURE_SECONDS: those sockets are
    translated (which works against every server) without waiting for Appwrite again.
    """

    def __init__(self, settings: Settings, version: AppwriteVersion) -> None:
        self._settings = settings
        self._version = version

    async def needed(self, http: aiohttp.ClientSession) -> bool:
        mode = self._settings.relay_channels_in_url
        if mode != "auto":
            return mode == "yes"
        version = await self._version.get(
            http, max_age=VERSION_CACHE_SECONDS, wait_seconds=self._settings.upstream_timeout_seconds,
            failure_ttl=VERSION_FAILURE_SECONDS, stale_ok=True,
        )
        return needs_channels_in_url(version)


class TranslatingRelay(Relay):
    """A relayed socket whose page subscribes by frame and whose server reads channels from the URL."""

    __slots__ = ("_channels", "_drained", "_draining", "_draining_pings", "_greeted", "_marks", "_other", "_pings",
                 "_reopened", "_request")

    def __init__(
        self,
        request: web.Request,
        client: web.WebSocketResponse,
        upstream: Upstream,
        session: str,
        fields: dict[str, object],
    ) -> None:
        super().__init__(request, client, upstream, session, fields)
        self._request = request
        self._channels: tuple[str, ...] = BOOTSTRAP_CHANNELS
        # When this socket last reopened upstream, oldest first (RELAY_RECONNECTS_PER_SOCKET).
        self._reopened: list[float] = []
        # Events read during a swap, by fingerprint -> the socket they were read on.
        self._marks: OrderedDict[str, Upstream] | None = None
        self._greeted = False
        # Pings the page sent on the current upstream socket, and on the one being drained, whose
        # pongs have not come back yet (the pong after them on the drained one is the relay's).
        self._pings = 0
        self._draining_pings = 0
        # The old socket of a swap, read until the pong to the relay's own last ping, and that pong.
        self._draining: Upstream | None = None
        self._drained: asyncio.Future[None] | None = None
        # A swap's second upstream socket while it is open (the new one, then the old one), so
        # none outlives the page's socket.
        self._other: Upstream | None = None

    # --- upstream -> page ------------------------------------------------------------------------

    async def _to_client(self) -> None:
        """Read the current upstream socket to its end; if a swap replaced it meanwhile, go on with
        the new one. End when the current one ends, or when an event was lost."""
        while True:
            upstream = self._upstream
            async for message in upstream:
                if message.type is WSMsgType.TEXT:
                    await self._from_upstream(upstream, message.data)
                    self._budget.passed_on(upstream, message.data)
                elif too_large(message) or self._budget.cut(upstream):
                    # Over RELAY_MAX_EVENT_BYTES on either socket: the event is lost, and the page told.
                    self._upstream_ended(upstream)
                    return
                del message  # else the last event stays alive until the next one (see Relay.run)
            if upstream is self._upstream:
                self._upstream_ended(upstream)
                return

    async def _from_upstream(self, upstream: Upstream, text: bytes) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            await self._send_client_text(text)
            return
        kind = frame.get("type")
        if kind == "connected":
            # Only the first socket's greeting reaches the page; later ones are the relay's own.
            if not self._greeted:
                self._greeted = True
                user = frame.get("data", {}).get("user") if isinstance(frame.get("data"), dict) else None
                await self._send_client_text(
                    json.dumps({"type": "connected", "data": {"channels": [], "subscriptions": [], "user": user}})
                )
            return
        if kind == "pong":
            if upstream is not self._draining:
                self._pings = max(0, self._pings - 1)
            elif self._draining_pings:
                self._draining_pings -= 1
            else:
                if self._drained is not None and not self._drained.done():
                    self._drained.set_result(None)
                return
        if kind != "event" or not isinstance(frame.get("data"), dict):
            await self._send_client_text(text)
            return
        data: dict[str, Any] = frame["data"]
        channels = data.get("channels")
        channels = channels if isinstance(channels, list) else []
        ids = self.subscriptions.ids_for(channels)
        if not ids:
            return
        if self._marks is not None and self._seen_on_other_socket(upstream, data):
            return
        await self._send_client_text(json.dumps({"type": "event", "data": {**data, "subscriptions": ids}}))

    def _seen_on_other_socket(self, upstream: Upstream, data: dict[str, Any]) -> bool:
        assert self._marks is not None
        rest = {key: value for key, value in data.items() if key != "subscriptions"}
        mark = hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()
        seen_on = self._marks.get(mark)
        if seen_on is not None and seen_on is not upstream:
            del self._marks[mark]
            return True
        self._marks[mark] = upstream
        while len(self._marks) > _MAX_MARKS:
            self._marks.popitem(last=False)
        return False

    # --- page -> upstream ------------------------------------------------------------------------

    async def _forward(self, text: str, frame: dict[str, Any]) -> None:
        """Subscriptions are the relay's to answer; other frames go to the current upstream socket."""
        if frame["type"] == "subscribe":
            await self._subscribe(frame.get("data"))
        elif frame["type"] == "unsubscribe":
            await self._send_client_text(self._unsubscribe(frame.get("data")))
        else:
            if frame["type"] == "ping":
                self._pings += 1
            await super()._forward(text, frame)

    async def _subscribe(self, items: Any) -> None:
        parsed = _subscribe_items(items)
        if isinstance(parsed, str):
            await self._send_client_text(_error(FORMAT_INVALID, parsed))
            return
        before = self.subscriptions.copy()
        self._hold_to_caps(self.subscriptions.add_all(parsed))
        if set(self.subscriptions.channels) <= set(self._channels):
            await self._send_client_text(_answer(parsed))
            return
        batch, held = await self._join_while_waiting([parsed])
        refusal = await self._swap(self.subscriptions.channels)
        if refusal is not None:
            self._subscriptions = before
        for joined in batch:
            await self._send_client_text(refusal or _answer(joined))
        if held is not None and held.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            await self._take(held)  # the frame that ended the joining, as the pump would have

    async def _join_while_waiting(
        self, batch: list[list[tuple[str, list[str]]]]
    ) -> tuple[list[list[tuple[str, list[str]]]], aiohttp.WSMessage | None]:
        """Wait until this socket may reopen upstream; subscribe frames the page sends meanwhile join
        the batch. The first other frame ends the joining and is returned, to be taken after it."""
        allowed = asyncio.create_task(self._reopen_allowed())
        held: aiohttp.WSMessage | None = None
        try:
            while held is None:
                receiving = asyncio.ensure_future(self._client.receive())
                await asyncio.wait({allowed, receiving}, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    receiving.cancel()  # aiohttp's receive() gives a cancelled read back untouched
                    await asyncio.gather(receiving, return_exceptions=True)
                    break
                message = receiving.result()
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    # No reopen for a page that left.
                    raise SocketEnded(self._end("client_closed", WSCloseCode.OK))
                joined = self._joinable(message)
                if joined is None:
                    held = message
                else:
                    self._hold_to_caps(self.subscriptions.add_all(joined))
                    batch.append(joined)
            await allowed
        finally:
            allowed.cancel()
        return batch, held

    def _joinable(self, message: aiohttp.WSMessage) -> list[tuple[str, list[str]]] | None:
        """The items of a well-formed subscribe frame the policy lets through, else None."""
        if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None
        verdict = screen_frame(message.data, self._patterns)
        if verdict.frame is None or verdict.frame.get("type") != "subscribe":
            return None
        parsed = _subscribe_items(verdict.frame.get("data"))
        return None if isinstance(parsed, str) else parsed

    async def _reopen_allowed(self) -> None:
        """Until this socket and its client IP may open one more upstream socket (then counted)."""
        await asyncio.sleep(MERGE_SECONDS)
        policy = self._app[SETTINGS].relay_reconnects_per_socket
        if policy is not None:
            while len(self._reopened) >= policy.limit:
                wait = self._reopened[0] + policy.window_seconds - _clock()
                if wait > 0:
                    await _pause(wait)
                del self._reopened[0]
            self._reopened.append(_clock())
        limits = self._app[ACCESS_LIMITS]
        for _ in range(MAX_IP_WAITS):
            wait = await limits.reconnect_wait(self._request[CLIENT_IP])
            if not wait:
                return
            await _pause(wait)
        raise SocketEnded(self._end("reconnects_exhausted", WSCloseCode.TRY_AGAIN_LATER))

    def _unsubscribe(self, items: Any) -> str:
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and isinstance(item.get("subscriptionId"), str) and item["subscriptionId"]
            for item in items
        ):
            return _error(FORMAT_INVALID, "items: Each unsubscribe payload must include a non-empty subscriptionId.")
        removed = [
            {"subscriptionId": item["subscriptionId"], "removed": self.subscriptions.remove(item["subscriptionId"])}
            for item in items
        ]
        return json.dumps(
            {"type": "response", "data": {"to": "unsubscribe", "success": True, "subscriptions": removed}}
        )

    async def _swap(self, channels: tuple[str, ...]) -> str | None:
        """Open the upstream socket for `channels`, switch to it, close the old one; None when done,
        else the error frame for the page (the old socket then stays)."""
        settings = self._app[SETTINGS]
        if len(upstream_url(settings.appwrite_endpoint, settings.project_id, Handshake(channels, ()))) > MAX_URL_BYTES:
            return _error(POLICY_VIOLATION, "These channels do not fit in one socket's URL on this Appwrite server.")
        self._marks = OrderedDict()
        try:
            try:
                new = self._other = await connect_upstream(self._request, self._session, Handshake(channels, ()))
            except ProblemError as problem:
                return _error(WSCloseCode.INTERNAL_ERROR, f"Appwrite Realtime could not be reopened: {problem.detail}")
            try:
                async with asyncio.timeout(self._app[SETTINGS].upstream_timeout_seconds):
                    first = await new.receive()
            except TimeoutError:
                first = None
            greeting = _json(first.data) if first is not None and first.type is WSMsgType.TEXT else None
            if not isinstance(greeting, dict) or greeting.get("type") != "connected":
                await self._close_upstream(new)
                if isinstance(greeting, dict) and greeting.get("type") == "error":
                    return json.dumps(greeting)
                return _error(WSCloseCode.INTERNAL_ERROR, "Appwrite Realtime did not accept the new channels.")
            # The reader goes on with `new` once `old` is closed (it is reading `old` now).
            old = self._other = self._upstream
            self._upstream, self._channels = new, channels
            self._draining_pings, self._pings = self._pings, 0
            await self._drain(old)
            await self._close_upstream(old)
            return None
        finally:
            # Copies of the old socket's last events may still be on their way on the new one.
            asyncio.get_running_loop().call_later(2.0, self._forget_marks, self._marks)

    async def _close_upstream(self, upstream: Upstream) -> None:
        if upstream is self._other:
            self._other = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(upstream.close(), 2.0)

    async def _close(self, code: int, reason: str) -> None:
        # A swap cut short (the page left, a drain) may leave a second upstream socket open.
        if self._other is not None:
            await self._close_upstream(self._other)
        await super()._close(code, reason)

    async def _drain(self, old: Upstream) -> None:
        """Read the old socket up to the answer to a ping sent now. Closing it at once would throw
        away what it holds unread, among which events published before the new socket was
        registered; Appwrite answers frames in order, so all of those come before that pong."""
        self._draining = old
        self._drained = drained = asyncio.get_running_loop().create_future()
        try:
            await old.send_str(json.dumps({"type": "ping"}))
            async with asyncio.timeout(self._app[SETTINGS].upstream_timeout_seconds):
                await drained
        except (TimeoutError, ConnectionError, RuntimeError):
            pass  # the old socket is gone or silent: what it still held is lost (see the docstring)
        finally:
            self._draining = self._drained = None

    def _forget_marks(self, marks: object) -> None:
        if self._marks is marks:
            self._marks = None


def _subscribe_items(items: Any) -> list[tuple[str, list[str]]] | str:
    """(id, channels) of each item of a subscribe frame, or why it is refused."""
    if not isinstance(items, list):
        return "items: Payload is not valid."
    parsed = []
    for item in items:
        if not isinstance(item, dict):
            return "items: Each subscribe payload must be an object."
        subscription_id = subscription_id_of(item)
        if not isinstance(subscription_id, str) or not _ID.fullmatch(subscription_id):
            return "items: subscriptionId is not a valid id."
        channels = item.get("channels")
        if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
            return "items: channels must be a non-empty list of strings."
        if item.get("queries"):
            return "items: this Appwrite server reads channels only from the socket URL and cannot apply queries."
        parsed.append((subscription_id, channels))
    return parsed


def _answer(items: list[tuple[str, list[str]]]) -> str:
    answered = [{"subscriptionId": sid, "channels": channels, "queries": []} for sid, channels in items]
    return json.dumps({"type": "response", "data": {"to": "subscribe", "success": True, "subscriptions": answered}})


def _json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _error(code: int, message: str) -> str:
    return json.dumps({"type": "error", "data": {"code": int(code), "message": message}})
