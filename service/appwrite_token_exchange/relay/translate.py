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
  SDK hands it to the right callbacks; an event for none of them is dropped;
- queries go only to a server whose version was read as 1.9.0 or newer (UrlChannels): 1.9.0 applies
  per-channel queries given in the URL (`<channel with _ for .>[<slot>][]=<query>`, one server
  subscription per slot, `Realtime::constructSubscriptions`). Once any subscription has queries, the
  upstream URL gives every page subscription a slot of its own, from 1 (a query-less one
  `select("*")`), and adding or changing one reopens upstream even on channels already carried.
  Events from a socket with slots go to the page subscriptions whose slots the server says they
  matched (the event's `subscriptions`, mapped through that socket's `connected` frame); events from
  a socket without slots are routed by channel, to subscriptions without queries only. On 1.8.x, or
  when the version is unknown (never read in the `yes` mode, or unreadable), a subscription with
  queries is refused: the page would get events its queries exclude.

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
An event read on both sockets goes, on its second copy, to the subscriptions the first copy did not
reach (a new or changed subscription with queries is served only by the new socket).
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
from appwrite_token_exchange.keys import ACCESS_LIMITS, CLIENT_IP, EVENT_RULES, RELAY_URL_CHANNELS, SETTINGS
from appwrite_token_exchange.problems import ProblemError
from appwrite_token_exchange.relay.php_query import PhpKey
from appwrite_token_exchange.relay.policy import (
    FORMAT_INVALID,
    POLICY_VIOLATION,
    Handshake,
    screen_frame,
    slot_key,
    upstream_url,
)
from appwrite_token_exchange.relay.pump import Relay, SocketEnded
from appwrite_token_exchange.relay.subscriptions import Held, subscription_id_of
from appwrite_token_exchange.relay.upstream import Upstream, connect_upstream, too_large
from appwrite_token_exchange.settings import Settings

# The upstream socket before the page subscribes: every signed-in user may listen on `account`,
# and its `connected` frame carries the user the page is told about.
BOOTSTRAP_CHANNELS = ("account",)
# The first server version that reads `subscribe` frames and accepts a URL without channels (tag
# 1.9.5: message-based subscribe; there are no tags 1.9.1-1.9.4). Older ones are translated, and so
# is a version that cannot be read: translation works against every server.
FIRST_FRAME_SUBSCRIBING_RELEASE = (1, 9, 5)
# The first server version that applies per-channel queries given in the socket URL (tag 1.9.0:
# `Realtime::constructSubscriptions`); 1.8.x reads only `channels[]` and filters by nothing else.
FIRST_URL_QUERIES_RELEASE = (1, 9, 0)
# The query a subscription without queries is given in a URL with slots, as the web SDK sends it:
# Appwrite would otherwise put that subscription's channels into no slot of their own.
SELECT_ALL = json.dumps({"method": "select", "values": ["*"]}, separators=(",", ":"))
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
# One item of a subscribe frame: its id, channels and queries.
_Item = tuple[str, list[str], tuple[str, ...]]


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
        self._seen: str | None = None  # what the last probe (or cached answer) said

    def applies_queries(self) -> bool | None:
        """Whether Appwrite, as its version last read says, applies queries given in the socket URL
        (1.9.0 and newer); None when that is not known: never read (the `yes` and `no` modes do not
        ask), or unreadable."""
        return at_least(self._seen, FIRST_URL_QUERIES_RELEASE)

    async def needed(self, http: aiohttp.ClientSession) -> bool:
        mode = self._settings.relay_channels_in_url
        if mode != "auto":
            return mode == "yes"
        version = await self._version.get(
            http, max_age=VERSION_CACHE_SECONDS, wait_seconds=self._settings.upstream_timeout_seconds,
            failure_ttl=VERSION_FAILURE_SECONDS, stale_ok=True,
        )
        self._seen = version
        return needs_channels_in_url(version)


class _Slots:
    """What an upstream socket opened with query slots serves: each page subscription's channels and
    queries as written into its URL, and the server's subscription id of each -> the page's id."""

    __slots__ = ("held", "routes")

    def __init__(self, held: dict[str, Held], routes: dict[str, str]) -> None:
        self.held = held
        self.routes = routes


class TranslatingRelay(Relay):
    """A relayed socket whose page subscribes by frame and whose server reads channels from the URL."""

    __slots__ = ("_channels", "_drained", "_draining", "_draining_pings", "_greeted", "_marks", "_other", "_pings",
                 "_reopened", "_request", "_slots")

    def __init__(
        self,
        request: web.Request,
        client: web.WebSocketResponse,
        upstream: Upstream,
        session: str,
        fields: dict[str, object],
        fingerprint: str = "",
    ) -> None:
        super().__init__(request, client, upstream, session, fields, fingerprint)
        self._request = request
        self._channels: tuple[str, ...] = BOOTSTRAP_CHANNELS
        # When this socket last reopened upstream, oldest first (RELAY_RECONNECTS_PER_SOCKET).
        self._reopened: list[float] = []
        # Events read during a swap, by fingerprint -> the socket they were read on and the ids they
        # were passed on for.
        self._marks: OrderedDict[str, tuple[Upstream, list[str]]] | None = None
        # The upstream sockets opened with query slots (at most two: a swap's), and what each serves;
        # a socket not here was opened with channels only and is routed by channel.
        self._slots: dict[Upstream, _Slots] = {}
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
        ids = self._routed(upstream, data)
        if ids and self._marks is not None:
            ids = self._not_yet_sent(upstream, data, ids)
        if not ids:
            return
        rules = self._app[EVENT_RULES].current
        shown = data if rules is None else rules.apply(data)
        if shown is None:
            return  # an event the rules withhold from the page
        await self._send_client_text(json.dumps({"type": "event", "data": {**shown, "subscriptions": ids}}))

    def _routed(self, upstream: Upstream, data: dict[str, Any]) -> list[str]:
        """The page's subscriptions an event read on `upstream` is for. A socket with query slots
        names the server subscriptions (slots) the event matched; a socket without is routed by
        channel, and only to subscriptions without queries (it applies none)."""
        subscriptions = self.subscriptions
        slots = self._slots.get(upstream)
        if slots is None:
            channels = data.get("channels")
            found = subscriptions.ids_for(channels if isinstance(channels, list) else [])
            return [subscription_id for subscription_id in found if not subscriptions.queries_of(subscription_id)]
        matched = data.get("subscriptions")
        mapped = [slots.routes[server_id] for server_id in (matched if isinstance(matched, list) else [])
                  if isinstance(server_id, str) and server_id in slots.routes]
        # A subscription whose queries changed since this socket opened is served by the next one.
        return [subscription_id for subscription_id in subscriptions.known(mapped)
                if slots.held[subscription_id][1] == subscriptions.queries_of(subscription_id)]

    def _not_yet_sent(self, upstream: Upstream, data: dict[str, Any], ids: list[str]) -> list[str]:
        """During a swap: the ids an event has not yet been passed on for. Its copy on the other
        socket went to the subscriptions that socket serves; the new socket may serve more."""
        assert self._marks is not None
        rest = {key: value for key, value in data.items() if key != "subscriptions"}
        mark = hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()
        seen = self._marks.get(mark)
        if seen is not None and seen[0] is not upstream:
            del self._marks[mark]
            return [subscription_id for subscription_id in ids if subscription_id not in seen[1]]
        self._marks[mark] = (upstream, ids)
        while len(self._marks) > _MAX_MARKS:
            self._marks.popitem(last=False)
        return ids

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
        parsed = self._parse(items)
        if isinstance(parsed, str):
            await self._send_client_text(_error(FORMAT_INVALID, parsed))
            return
        before = self.subscriptions.copy()
        self._add(parsed)
        if self._serves(self._upstream):
            await self._send_client_text(_answer(parsed))
            return
        batch, held = await self._join_while_waiting([parsed])
        refusal = await self._swap()
        if refusal is not None:
            self._subscriptions = before
        for joined in batch:
            await self._send_client_text(refusal or _answer(joined))
        if held is not None and held.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            await self._take(held)  # the frame that ended the joining, as the pump would have

    def _parse(self, items: Any) -> list[_Item] | str:
        """The items of a subscribe frame, or why they are refused: queries only go to a server
        known to apply them; elsewhere the page would get events its queries exclude."""
        parsed = _subscribe_items(items)
        if isinstance(parsed, str) or not any(queries for _, _, queries in parsed):
            return parsed
        applies = self._app[RELAY_URL_CHANNELS].applies_queries()
        if applies is None:
            return ("items: the relay could not tell whether this Appwrite server applies Realtime queries, so "
                    "it refuses a subscription with queries rather than risk passing on unfiltered events.")
        if not applies:
            return ("items: this Appwrite server (older than 1.9.0) cannot filter Realtime events by query, so "
                    "a subscription with queries would get every event of its channels; it is refused.")
        return parsed

    def _add(self, items: list[_Item]) -> None:
        pairs = [(subscription_id, channels) for subscription_id, channels, _ in items]
        self._hold_to_caps(self.subscriptions.add_all(pairs, {sid: queries for sid, _, queries in items}))

    def _serves(self, upstream: Upstream) -> bool:
        """Whether `upstream` carries every subscription of the page as it now stands."""
        subscriptions = self.subscriptions
        if not set(subscriptions.channels) <= set(self._channels):
            return False
        held = subscriptions.held()
        slots = self._slots.get(upstream)
        if slots is None:
            return not any(queries for _, queries in held.values())
        return all(slots.held.get(subscription_id) == entry for subscription_id, entry in held.items())

    async def _join_while_waiting(
        self, batch: list[list[_Item]]
    ) -> tuple[list[list[_Item]], aiohttp.WSMessage | None]:
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
                    self._add(joined)
                    batch.append(joined)
            await allowed
        finally:
            allowed.cancel()
        return batch, held

    def _joinable(self, message: aiohttp.WSMessage) -> list[_Item] | None:
        """The items of a well-formed subscribe frame the policy lets through, else None."""
        if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None
        verdict = screen_frame(message.data, self._patterns)
        if verdict.frame is None or verdict.frame.get("type") != "subscribe":
            return None
        parsed = self._parse(verdict.frame.get("data"))
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

    def _handshake(self) -> tuple[Handshake, dict[str, Held] | None] | str:
        """The upstream handshake for the page's subscriptions, and what its slots serve (None when
        it has none), or the error frame for the page. Without queries anywhere, channels only; else
        one slot per subscription, from 1 (slot 0 is where Appwrite puts channels that name no slot,
        `account.<id>` among them), each channel naming its subscription's slot and queries."""
        channels = self.subscriptions.channels
        held = self.subscriptions.held()
        if not any(queries for _, queries in held.values()):
            return Handshake(channels, ()), None
        pairs: list[tuple[PhpKey, str]] = []
        named: dict[str, str] = {}  # the parameter each channel's queries go in -> that channel
        for slot, (channels_held, queries) in enumerate(held.values(), start=1):
            for channel in channels_held:
                key = slot_key(channel, slot)
                if key is None or named.setdefault(key.name, channel) != channel:
                    # Appwrite would read this channel's queries under another name, or another
                    # channel's under this one: the subscriptions would mix.
                    return _error(POLICY_VIOLATION, f"The channel {channel!r} cannot carry queries in a socket URL.")
                pairs += [(key, query) for query in queries or (SELECT_ALL,)]
        return Handshake(channels, tuple(pairs)), held

    async def _swap(self) -> str | None:
        """Open the upstream socket for the page's subscriptions, switch to it, close the old one;
        None when done, else the error frame for the page (the old socket then stays)."""
        settings = self._app[SETTINGS]
        wanted = self._handshake()
        if isinstance(wanted, str):
            return wanted
        handshake, held = wanted
        if len(upstream_url(settings.appwrite_endpoint, settings.project_id, handshake)) > MAX_URL_BYTES:
            return _error(POLICY_VIOLATION, "These channels do not fit in one socket's URL on this Appwrite server.")
        self._marks = OrderedDict()
        try:
            try:
                new = self._other = await connect_upstream(self._request, self._session, handshake)
            except ProblemError as problem:
                return _error(WSCloseCode.INTERNAL_ERROR, f"Appwrite Realtime could not be reopened: {problem.detail}")
            try:
                async with asyncio.timeout(self._app[SETTINGS].upstream_timeout_seconds):
                    first = await new.receive()
            except TimeoutError:
                first = None
            greeting = _json(first.data) if first is not None and first.type is WSMsgType.TEXT else None
            routes = None if held is None or not isinstance(greeting, dict) else _routes(greeting, list(held))
            if not isinstance(greeting, dict) or greeting.get("type") != "connected" or routes == {}:
                await self._close_upstream(new)
                if isinstance(greeting, dict) and greeting.get("type") == "error":
                    return json.dumps(greeting)
                return _error(WSCloseCode.INTERNAL_ERROR, "Appwrite Realtime did not accept the new channels.")
            if held is not None and routes is not None:
                self._slots[new] = _Slots(held, routes)
            # The reader goes on with `new` once `old` is closed (it is reading `old` now).
            old = self._other = self._upstream
            self._upstream, self._channels = new, handshake.channels
            self._draining_pings, self._pings = self._pings, 0
            await self._drain(old)
            await self._close_upstream(old)
            self._slots.pop(old, None)
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


def _routes(greeting: dict[str, Any], ids: list[str]) -> dict[str, str]:
    """Server subscription id -> page subscription id, from a `connected` frame's slot -> server id
    (a JSON list when the slots are 0..n, else an object), for the slots from 1 the relay asked
    for (`ids` in slot order); empty unless every one of them is there."""
    data = greeting.get("data")
    given = data.get("subscriptions") if isinstance(data, dict) else None
    by_slot = {str(slot): server_id for slot, server_id in enumerate(given)} if isinstance(given, list) else given
    if not isinstance(by_slot, dict):
        return {}
    routes = {}
    for slot, subscription_id in enumerate(ids, start=1):
        server_id = by_slot.get(str(slot))
        if not isinstance(server_id, str):
            return {}
        routes[server_id] = subscription_id
    return routes


def _subscribe_items(items: Any) -> list[_Item] | str:
    """(id, channels, queries) of each item of a subscribe frame, or why it is refused."""
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
        queries = item.get("queries") or []
        if not isinstance(queries, list) or not all(isinstance(query, str) and query for query in queries):
            return "items: queries must be a list of query strings."
        parsed.append((subscription_id, channels, tuple(queries)))
    return parsed


def _answer(items: list[_Item]) -> str:
    answered = [
        {"subscriptionId": sid, "channels": channels, "queries": list(queries)} for sid, channels, queries in items
    ]
    return json.dumps({"type": "response", "data": {"to": "subscribe", "success": True, "subscriptions": answered}})


def _json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _error(code: int, message: str) -> str:
    return json.dumps({"type": "error", "data": {"code": int(code), "message": message}})
