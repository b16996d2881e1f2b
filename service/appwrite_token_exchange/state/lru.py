"""A mapping with a bound on its entries: the least recently used go first. The memory state (limit
windows and caches) keeps everything in one, so no input can grow it without end."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most `max_entries` entries; reading or writing one makes it the most recently used."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._peak = 0  # most entries held since the table was last rebuilt

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether the key is held; unlike get(), this does not count as a use."""
        return key in self._entries

    def peek(self, key: K) -> V | None:
        """The value, without counting as a use (for a sweep that may drop it)."""
        return self._entries.get(key)

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def set(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        held = len(self._entries)
        if held > self.max_entries:
            self._entries.popitem(last=False)
        elif held > self._peak:
            self._peak = held

    def pop(self, key: K) -> V | None:
        return self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def compact(self) -> None:
        """Rebuilds the table once half of the entries it grew for are gone: a dict never
        shrinks on deletion, so a million expired entries would otherwise keep their table."""
        if self._peak >= _COMPACT_FROM and len(self._entries) * 2 <= self._peak:
            self._entries = OrderedDict(self._entries)
            self._peak = len(self._entries)


# Below this many entries a table is small enough to keep (and rebuilding it often is not worth it).
_COMPACT_FROM = 4096
