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

    def of_session(self, secret: str) -> str:
        """A session's fingerprint, for its limit, its caches and the audit log.

        Of the decoded secret alone, not of the cookie's spelling (which varies) nor of the user id
        beside it: Appwrite finds the session by the secret's hash, and the id only says in which
        user to look. Appwrite's MariaDB schema collates ids as utf8mb4_general_ci (no case, no
        trailing spaces), so one session may answer to several spellings of its id; not of its secret.
        """
        return self.of(f"session:{secret}")

    @staticmethod
    def short(fingerprint: str) -> str:
        """A short form for log lines: enough to correlate, too little to matter."""
        return fingerprint[:16]
