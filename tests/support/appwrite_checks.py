"""Assertions the emulator tests share: Appwrite error bodies, SDK models, JWT segments."""

from __future__ import annotations

import base64
import json
from typing import Any

from appwrite.exception import AppwriteException
from pydantic import BaseModel


def segment(token: str, index: int) -> bytes:
    part = token.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def claims(token: str) -> dict[str, Any]:
    return dict(json.loads(segment(token, 1)))


def validate(model: type[BaseModel], body: dict[str, Any]) -> Any:
    """Parse with the SDK's model, after checking no required field was left to its defaults
    (the SDK's models fill in missing fields, so validation alone would prove little)."""
    required = [field.alias for field in model.model_fields.values() if field.is_required()]
    missing = [alias for alias in required if alias not in body]
    assert not missing, f"{model.__name__} fields missing: {missing}"
    return model.model_validate(body)


async def assert_error(response: Any, status: int, type_: str, version: str = "1.9.6") -> dict[str, Any]:
    """An Appwrite error body, readable the way the SDK's client reads it."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json"
    body = json.loads(text)
    assert list(body) == ["message", "code", "type", "version"]
    assert body["code"] == status
    assert body["type"] == type_
    assert body["version"] == version
    assert isinstance(body["message"], str) and body["message"]
    assert response.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    # What appwrite.client.Client.call raises for such an answer.
    error = AppwriteException(body["message"], response.status, body.get("type"), text)
    assert (error.code, error.type) == (status, type_)
    return dict(body)
