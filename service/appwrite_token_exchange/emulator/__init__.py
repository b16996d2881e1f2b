"""An in-process Appwrite stand-in: the REST routes and Realtime socket the token service uses,
with the wire behaviour of Appwrite Cloud, self-hosted 2.x, 1.9.x or 1.5-1.8, plus a control API for
tests and the demo. Real Appwrite needs Docker; this needs only aiohttp."""

from appwrite_token_exchange.emulator.app import create_emulator_app
from appwrite_token_exchange.emulator.config import EmulatorConfig
from appwrite_token_exchange.emulator.keys import EMULATOR_STATE
from appwrite_token_exchange.emulator.state import EmulatorSession, EmulatorState, EmulatorUser

__all__ = [
    "EMULATOR_STATE",
    "EmulatorConfig",
    "EmulatorSession",
    "EmulatorState",
    "EmulatorUser",
    "create_emulator_app",
]
