"""The audit trail: one structured event per exchange or relay, never holding a secret."""

from __future__ import annotations

from typing import Any

import structlog

_log = structlog.get_logger(logger_name="audit")


def token_issued(**fields: Any) -> None:
    _log.info("token.issued", outcome="issued", **fields)


def token_denied(code: str, **fields: Any) -> None:
    _log.warning("token.denied", outcome=code, **fields)


def relay_opened(**fields: Any) -> None:
    _log.info("relay.opened", **fields)


def relay_closed(**fields: Any) -> None:
    _log.info("relay.closed", **fields)


def revocation(**fields: Any) -> None:
    _log.info("revocation", **fields)


def revocation_refused(reason: str, **fields: Any) -> None:
    _log.warning("revocation.refused", reason=reason, **fields)
