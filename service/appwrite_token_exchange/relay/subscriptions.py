"""A page's subscriptions on one relayed socket: capped, and indexed by channel.

Each subscription and each channel is state the relay keeps for the socket's life and consults for
every event, so a page may hold at most RELAY_MAX_SUBSCRIPTIONS and RELAY_MAX_CHANNELS; a frame
that would go past either is refused whole (the socket is then closed with 1008). Routing an event
looks up only its own channels, never the whole set. The translation also keeps each subscription's
queries (the page's own JSON strings), which it writes into the upstream URL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
TOO_MANY_CHANNELS = "too_many_channels"
# A subscription's channels and its queries.
Held = tuple[tuple[str, ...], tuple[str, ...]]


class Subscriptions:
    __slots__ = ("_by_channel", "_by_id", "_max_channels", "_max_subscriptions", "_order")  # one per socket, for hours

    def __init__(self, max_subscriptions: int, max_channels: int) -> None:
        self._max_subscriptions = max_subscriptions
        self._max_channels = max_channels
        self._order = 0
        # id -> (its place in subscription order, its channels, its queries)
        self._by_id: dict[str, tuple[int, tuple[str, ...], tuple[str, ...]]] = {}
        # channel -> the ids subscribed to it, in the order they came (a tuple, not a set: most
        # channels have one or two, and a socket keeps them for hours)
        self._by_channel: dict[str, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def channels(self) -> tuple[str, ...]:
        """Every channel some subscription holds, in the order they were first asked for."""
        return tuple(self._by_channel)

    def add_all(
        self, items: list[tuple[str, list[str]]], queries: Mapping[str, tuple[str, ...]] | None = None
    ) -> str | None:
        """Add every (id, channels) of one frame, or none of them: the cap it would pass, else None.
        As Appwrite does, a known id gains the new channels rather than losing its old ones, and
        (when `queries` is given: id -> its queries) takes the frame's queries in place of its own."""
        ids = {subscription_id for subscription_id, _ in items} - self._by_id.keys()
        if len(self._by_id) + len(ids) > self._max_subscriptions:
            return TOO_MANY_SUBSCRIPTIONS
        added = {channel for _, channels in items for channel in channels} - self._by_channel.keys()
        if len(self._by_channel) + len(added) > self._max_channels:
            return TOO_MANY_CHANNELS
        for subscription_id, channels in items:
            self._add(subscription_id, channels, None if queries is None else queries.get(subscription_id, ()))
        return None

    def _add(self, subscription_id: str, channels: list[str], queries: tuple[str, ...] | None) -> None:
        place, known, held = self._by_id.get(subscription_id, (self._order, (), ()))
        self._order += subscription_id not in self._by_id
        merged = tuple(dict.fromkeys((*known, *channels)))
        self._by_id[subscription_id] = (place, merged, held if queries is None else queries)
        for channel in merged[len(known):]:
            self._by_channel[channel] = (*self._by_channel.get(channel, ()), subscription_id)

    def remove(self, subscription_id: str) -> bool:
        found = self._by_id.pop(subscription_id, None)
        if found is None:
            return False
        for channel in found[1]:
            holders = tuple(held for held in self._by_channel[channel] if held != subscription_id)
            if holders:
                self._by_channel[channel] = holders
            else:
                del self._by_channel[channel]
        return True

    def ids_for(self, channels: Iterable[object]) -> list[str]:
        """The subscriptions an event on these channels is for, in subscription order."""
        found: dict[str, None] = {}
        for channel in channels:
            if isinstance(channel, str) and channel in self._by_channel:
                for subscription_id in self._by_channel[channel]:
                    found[subscription_id] = None
        if len(found) < 2:
            return list(found)
        return sorted(found, key=lambda subscription_id: self._by_id[subscription_id][0])

    def queries_of(self, subscription_id: str) -> tuple[str, ...]:
        found = self._by_id.get(subscription_id)
        return () if found is None else found[2]

    def held(self) -> dict[str, Held]:
        """Every subscription's channels and queries, in subscription order."""
        ordered = sorted(self._by_id.items(), key=lambda entry: entry[1][0])
        return {subscription_id: (channels, queries) for subscription_id, (_, channels, queries) in ordered}

    def known(self, ids: Iterable[str]) -> list[str]:
        """Those of `ids` the page still holds, each once, in subscription order."""
        found = [subscription_id for subscription_id in dict.fromkeys(ids) if subscription_id in self._by_id]
        return sorted(found, key=lambda subscription_id: self._by_id[subscription_id][0])

    def copy(self) -> Subscriptions:
        twin = Subscriptions(self._max_subscriptions, self._max_channels)
        twin._order = self._order
        twin._by_id = dict(self._by_id)
        twin._by_channel = dict(self._by_channel)
        return twin


def subscription_id_of(item: dict[str, Any]) -> object:
    """The item's id, or (as Appwrite makes one up when a page gives none) one stable per item."""
    given = item.get("subscriptionId")
    if given is not None:
        return given
    return hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:20]
