"""What a revocation names, as it travels between replicas: ids and a keyed hash, never a secret."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# Appwrite's ids (UID validator): at most 36 characters, letters, digits, '.', '_' and '-'.
_APPWRITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,35}$")


def is_appwrite_id(value: object) -> bool:
    return isinstance(value, str) and _APPWRITE_ID.match(value) is not None


@dataclass(frozen=True)
class Revocation:
    """End the sockets of `user_id` (only the session `fingerprint`'s, if given).

    `force`: close them now (the app said so: its word is final). Otherwise ask Appwrite now and close
    the ones it refuses (a webhook: Appwrite's own state decides, so a replayed or out-of-date
    webhook can cost a re-check, never a wrongful sign-out)."""

    user_id: str
    fingerprint: str | None = None
    force: bool = True

    def to_message(self, origin: str) -> bytes:
        return json.dumps(
            {"origin": origin, "userId": self.user_id, "fingerprint": self.fingerprint, "force": self.force}
        ).encode()

    @classmethod
    def from_message(cls, data: bytes | str) -> tuple[str, Revocation] | None:
        """(the publishing replica, the revocation), or None for anything else on the channel."""
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):
            return None
        if not isinstance(message, dict):
            return None
        origin, user_id, fingerprint, force = (message.get(key) for key in ("origin", "userId", "fingerprint", "force"))
        if not isinstance(origin, str) or not is_appwrite_id(user_id) or not isinstance(force, bool):
            return None
        if fingerprint is not None and not isinstance(fingerprint, str):
            return None
        return origin, cls(str(user_id), fingerprint, force)
