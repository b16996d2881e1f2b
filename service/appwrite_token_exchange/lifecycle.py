"""Process lifecycle flags that readiness and long-lived sockets need to see."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Lifecycle:
    draining: bool = False
    # Called once when SIGTERM starts the drain (the relay closes its sockets from here).
    on_drain: list[Callable[[], None]] = field(default_factory=list)

    def start_drain(self) -> None:
        if self.draining:
            return
        self.draining = True
        for callback in self.on_drain:
            callback()
