"""Process lifecycle flags that readiness and long-lived sockets need to see."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Lifecycle:
    draining: bool = False
    # Set when SIGTERM starts the drain; relayed sockets wait on it to close themselves.
    drain_started: asyncio.Event = field(default_factory=asyncio.Event)

    def start_drain(self) -> None:
        self.draining = True
        self.drain_started.set()
