"""Rate limit policies as configured: 'N/second|minute|hour' or 'off'."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PERIODS = {"second": 1, "minute": 60, "hour": 3600}
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour)\s*$")


@dataclass(frozen=True)
class RateLimit:
    limit: int
    window_seconds: int

    def __str__(self) -> str:
        return f"{self.limit};w={self.window_seconds}"


def parse_rate_limit(spec: str) -> RateLimit | None:
    """Parse a limit spec; None means the limit is off."""
    if spec.strip().lower() == "off":
        return None
    match = _SPEC.match(spec.lower())
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"must look like 60/minute (N/second|minute|hour) or off, got {spec!r}")
    return RateLimit(int(match.group(1)), _PERIODS[match.group(2)])
