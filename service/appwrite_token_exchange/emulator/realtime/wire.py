"""Realtime frames on the wire: JSON the way PHP's json_encode writes it."""

from __future__ import annotations

import json
from typing import Any


def encode(frame: dict[str, Any]) -> str:
    """Compact, with `/` escaped as `\\/`, byte for byte what Appwrite's Realtime server sends."""
    return json.dumps(frame, separators=(",", ":")).replace("/", "\\/")
