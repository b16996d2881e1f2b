"""Typed application keys for the emulator, declared once."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from appwrite_token_exchange.emulator.config import EmulatorConfig
    from appwrite_token_exchange.emulator.faults import FaultStore
    from appwrite_token_exchange.emulator.realtime.hub import RealtimeHub
    from appwrite_token_exchange.emulator.recorder import RequestRecorder
    from appwrite_token_exchange.emulator.state import EmulatorState

EMULATOR_CONFIG: web.AppKey[EmulatorConfig] = web.AppKey("emulator_config")
EMULATOR_STATE: web.AppKey[EmulatorState] = web.AppKey("emulator_state")
FAULTS: web.AppKey[FaultStore] = web.AppKey("emulator_faults")
RECORDER: web.AppKey[RequestRecorder] = web.AppKey("emulator_recorder")
REALTIME: web.AppKey[RealtimeHub] = web.AppKey("emulator_realtime")
# Set when the app shuts down, so requests held open on purpose ("hang") let go.
SHUTTING_DOWN: web.AppKey[asyncio.Event] = web.AppKey("emulator_shutting_down")
