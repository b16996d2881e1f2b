"""Conditions logged once when they appear in a process, not on every request that meets them, and
logged again only after they were seen to end (a setting fixed, a Redis that answers again)."""

from __future__ import annotations


class LogOnce:
    """The conditions seen and not yet cleared, each with what to tell an operator about it."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def first(self, condition: str, detail: str = "") -> bool:
        """True the first time `condition` is seen (since it was last cleared): log it then."""
        if condition in self._seen:
            return False
        self._seen[condition] = detail
        return True

    def clear(self, condition: str) -> bool:
        """The condition ended; True if it had been seen (log that it cleared)."""
        return self._seen.pop(condition, None) is not None

    def seen(self) -> dict[str, str]:
        return dict(self._seen)
