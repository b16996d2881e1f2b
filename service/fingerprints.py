"""Keyed hashes of secrets, so a session can be counted, cached and audited but never recovered."""

from __future__ import annotations

import hashlib
import hmac


class Fingerprinter:
    """HMAC-SHA256 under a deployment key: without the key a fingerprint cannot be brute-forced."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def of(self, secret: str) -> str:
        """A full-length fingerprint, for state keys."""
        return hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def short(fingerprint: str) -> str:
        """A short form for log lines: enough to correlate, too little to matter."""
        return fingerprint[:16]
