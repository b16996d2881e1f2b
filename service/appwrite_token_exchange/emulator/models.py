"""Appwrite's response models (Account, Session, Target) rendered from the emulator's state.

Field names and order follow Appwrite's `src/Appwrite/Utopia/Response/Model/*.php`; the Python
SDK's pydantic models in `appwrite.models` parse them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from appwrite_token_exchange.emulator.state import EmulatorSession, EmulatorUser


def iso(timestamp: float) -> str:
    """Appwrite's DateTime::formatTz: milliseconds and an explicit +00:00 offset."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds")


def target_model(user: EmulatorUser) -> dict[str, Any]:
    return {
        "$id": user.target_id,
        "$createdAt": iso(user.created_at),
        "$updatedAt": iso(user.created_at),
        "name": "",
        "userId": user.id,
        "providerId": None,
        "providerType": "email",
        "identifier": user.email,
        "expired": False,
    }


def account_model(user: EmulatorUser) -> dict[str, Any]:
    return {
        "$id": user.id,
        "$createdAt": iso(user.created_at),
        "$updatedAt": iso(user.updated_at),
        "name": user.name,
        "registration": iso(user.created_at),
        "status": user.status,
        "labels": list(user.labels),
        "passwordUpdate": iso(user.created_at),
        "email": user.email,
        "phone": "",
        "emailVerification": user.email_verification,
        "phoneVerification": False,
        "mfa": user.mfa,
        "prefs": dict(user.prefs),
        "targets": [target_model(user)],
        "accessedAt": iso(user.updated_at),
    }


def session_model(session: EmulatorSession, *, current: bool, secret: str = "") -> dict[str, Any]:
    """`secret` is the session value for API-key callers and "" for everyone else."""
    return {
        "$id": session.id,
        "$createdAt": iso(session.created_at),
        "$updatedAt": iso(session.created_at),
        "userId": session.user_id,
        "expire": iso(session.expire),
        "provider": session.provider,
        "providerUid": session.provider_uid,
        "providerAccessToken": "",
        "providerAccessTokenExpiry": "",
        "providerRefreshToken": "",
        "ip": session.ip,
        "osCode": "",
        "osName": "",
        "osVersion": "",
        "clientType": "",
        "clientCode": "",
        "clientName": "",
        "clientVersion": "",
        "clientEngine": "",
        "clientEngineVersion": "",
        "deviceName": "",
        "deviceBrand": "",
        "deviceModel": "",
        "countryCode": "--",
        "countryName": "Unknown",
        "current": current,
        "factors": list(session.factors),
        "secret": secret,
        "mfaUpdatedAt": "",
    }
