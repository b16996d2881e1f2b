"""Keyed hashes of secrets, so a session can be counted, cached and audited but never recovered."""

from __future__ import annotations

import hmac


class Fingerprinter:
    """HMAC-SHA256 under a deployment key: without the key a fingerprint cannot be brute-forced."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def of(self, secret: str) -> str:
        """A full-length fingerprint, for state keys."""
        return hmac.digest(self._key, secret.encode(), "sha256").hex()

    @staticmethod
    def short(fingerprint: str) -> str:
        """A short form for log lines: enough to correlate, too little to matter."""
        return fingerprint[:16]
