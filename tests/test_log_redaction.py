"""The log's backstop: a field named like a secret never renders its value, whoever logs it and
at whatever level, in both renderers (issue 29: switching the backstop off passed every test)."""

from __future__ import annotations

import io
import json

import pytest
import structlog
from appwrite_token_exchange.observability.logs import configure_logging

SECRET = "s3cr3t-value-that-must-not-appear"
SECRET_FIELDS = ("jwt", "session", "secret", "cookie", "cookies", "authorization", "password", "token", "api_key", "key")


@pytest.mark.parametrize("field", SECRET_FIELDS)
@pytest.mark.parametrize("renderer", ["json", "console"])
def test_a_secret_field_is_redacted(field: str, renderer: str) -> None:
    stream = io.StringIO()
    configure_logging("debug", renderer, stream, cache_loggers=False)
    structlog.get_logger(logger_name="audit").warning("token.issued", request_id="r1", **{field: SECRET})
    text = stream.getvalue()
    assert SECRET not in text
    assert "[redacted]" in text
    if renderer == "json":
        (line,) = [json.loads(row) for row in text.splitlines() if row.strip()]
        assert line[field] == "[redacted]"
        assert line["request_id"] == "r1"  # the rest of the line is kept


def test_fields_that_merely_contain_a_secret_name_are_kept() -> None:
    """Redaction is by exact field name: `session_fingerprint` is the keyed hash the audit log is for."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream, cache_loggers=False)
    structlog.get_logger(logger_name="audit").info("token.issued", session_fingerprint="abc123")
    assert json.loads(stream.getvalue())["session_fingerprint"] == "abc123"
