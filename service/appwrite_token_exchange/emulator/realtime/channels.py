"""Realtime channel names and URL subscriptions, following Appwrite's Realtime adapter.

`account` is per user: subscribing to it also subscribes to `account.<userId>`, and another user's
`account.<id>` can never be subscribed to. User events are published on both `account` and
`account.<userId>` but only to the role `user:<userId>`, so each user hears only their own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("create", "update", "upsert", "delete")
# What the web SDK sends for a subscription without queries, and what Appwrite echoes back.
SELECT_ALL = json.dumps({"method": "select", "values": ["*"]}, separators=(",", ":"))
_SLOT_KEY = re.compile(r"\[([^\]]*)\]")


def convert_channels(channels: Iterable[str], user_id: str, scope_actions: bool) -> list[str]:
    """The channel names a connection really subscribes to, in Appwrite's order."""
    result: dict[str, None] = dict.fromkeys(channels)
    for name in list(result):
        rest = name[len("account.") :] if name.startswith("account.") else None
        if name == "account":
            if user_id:
                result[f"account.{user_id}"] = None
        elif rest is not None and scope_actions and rest in ACTIONS:
            # Newer servers scope `account.<action>` to the user; guests keep the literal name.
            if user_id:
                del result[name]
                result[f"account.{user_id}.{rest}"] = None
        elif rest is not None:
            del result[name]
    return list(result)


def rebind_account_channels(channels: list[str], old_user_id: str, new_user_id: str) -> list[str]:
    """Account channels of a subscription after an `authentication` frame changed its user."""
    if not new_user_id or old_user_id == new_user_id:
        return channels
    rebound = []
    for name in channels:
        if not name.startswith("account."):
            rebound.append(name)
            continue
        rest = name[len("account.") :]
        if not old_user_id:
            rebound.append(f"account.{new_user_id}.{rest}" if rest in ACTIONS else name)
        elif name == f"account.{old_user_id}":
            rebound.append(f"account.{new_user_id}")
        elif rest.startswith(f"{old_user_id}.") and rest[len(old_user_id) + 1 :] in ACTIONS:
            rebound.append(f"account.{new_user_id}.{rest[len(old_user_id) + 1 :]}")
        else:
            rebound.append(name)
    return rebound


def parse_php_query(items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query parameters the way PHP reads them: `a[0][]=x` nests, dots in names become `_`."""
    parsed: dict[str, Any] = {}
    for key, value in items:
        bracket = key.find("[")
        base = key if bracket <= 0 else key[:bracket]
        base = base.replace(".", "_").replace(" ", "_")
        segments = _SLOT_KEY.findall(key[len(base) :]) if bracket > 0 else []
        if not segments:
            parsed[base] = value
            continue
        node = parsed.setdefault(base, {})
        if not isinstance(node, dict):
            node = parsed[base] = {}
        for index, segment in enumerate(segments):
            last = index == len(segments) - 1
            slot: Any = (max((k for k in node if isinstance(k, int)), default=-1) + 1) if segment == "" else segment
            if isinstance(slot, str) and slot.isdigit():
                slot = int(slot)
            if last:
                node[slot] = value
            else:
                child = node.setdefault(slot, {})
                if not isinstance(child, dict):
                    child = node[slot] = {}
                node = child
    return parsed


def query_channels(parsed: Mapping[str, Any]) -> list[str]:
    """`channels[]=a&channels[]=b` (or a single `channels=a`) as a list."""
    raw = parsed.get("channels")
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, dict):
        return [value for value in raw.values() if isinstance(value, str)]
    return []


@dataclass
class UrlSubscription:
    channels: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)


def url_subscriptions(names: list[str], parsed: Mapping[str, Any]) -> dict[Any, UrlSubscription]:
    """Slot -> subscription from `<channel>[<slot>][]=<query>` parameters (web SDK >= 20)."""
    slots: dict[Any, UrlSubscription] = {}
    for channel in names:
        params = parsed.get(channel.replace(".", "_"))
        if channel == "project" and isinstance(params, str):
            params = None
        if params is None:
            first = slots.setdefault(0, UrlSubscription())
            first.channels.append(channel)
            if not first.queries:
                first.queries = [SELECT_ALL]
            continue
        if not isinstance(params, dict):
            params = {0: params}
        for slot, value in params.items():
            subscription = slots.setdefault(slot, UrlSubscription())
            if channel not in subscription.channels:
                subscription.channels.append(channel)
            if not subscription.queries:
                raw = list(value.values()) if isinstance(value, dict) else [value]
                subscription.queries = [str(query) for query in raw]
    return slots


def php_array(mapping: Mapping[Any, str]) -> list[str] | dict[str, str]:
    """How PHP's json_encode writes an array: a list when its keys are 0..n-1 in order."""
    if list(mapping) == list(range(len(mapping))):
        return list(mapping.values())
    return {str(key): value for key, value in mapping.items()}


# Appwrite's RuntimeQuery::ALLOWED_QUERIES (1.9.0 and newer), in its order.
ALLOWED_QUERIES = (
    "equal",
    "notEqual",
    "lessThan",
    "lessThanEqual",
    "greaterThan",
    "greaterThanEqual",
    "isNull",
    "isNotNull",
    "and",
    "or",
    "select",
)


class UnsupportedQuery(ValueError):
    """A well-formed query whose method Realtime does not evaluate."""


def check_queries(queries: Iterable[Any]) -> list[str]:
    """Queries as strings; ValueError for one that is not an Appwrite query (JSON with a method),
    UnsupportedQuery for a method outside the whitelist (nested `and`/`or` included, searched the
    way Appwrite's convertQueries walks its stack, so the same method is named)."""
    checked = []
    stack: list[Any] = []
    for query in queries:
        try:
            decoded = json.loads(query) if isinstance(query, str) else None
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict) or not isinstance(decoded.get("method"), str):
            raise ValueError(f"Invalid query: {query}")
        checked.append(query)
        stack.append(decoded)
    while stack:
        item = stack.pop()
        method = item.get("method") if isinstance(item, dict) else None
        if method not in ALLOWED_QUERIES:
            raise UnsupportedQuery(
                f"Query method '{method}' is not supported in Realtime queries. Allowed: {', '.join(ALLOWED_QUERIES)}"
            )
        if method in ("and", "or"):
            stack.extend(item.get("values") or [])
    return checked


def queries_match(queries: Iterable[str], payload: dict[str, Any]) -> bool:
    """RuntimeQuery::filter: no queries or a select("*") match everything; otherwise every query
    must hold for the event's payload."""
    decoded = [json.loads(query) for query in queries]
    if not decoded or any(q.get("method") == "select" and q.get("values") == ["*"] for q in decoded):
        return True
    return all(_holds(query, payload) for query in decoded)


def _same(value: Any, target: Any) -> bool:
    return type(value) is type(target) and bool(value == target)


def _holds(query: dict[str, Any], payload: dict[str, Any]) -> bool:
    method, targets = query.get("method"), query.get("values") or []
    if method == "and":
        return all(_holds(sub, payload) for sub in targets)
    if method == "or":
        return any(_holds(sub, payload) for sub in targets)
    attribute = query.get("attribute")
    if attribute not in payload:
        return False
    value = payload[attribute]
    try:
        if method == "equal":
            return any(_same(value, target) for target in targets)
        if method == "notEqual":
            return not any(_same(value, target) for target in targets)
        if method == "lessThan":
            return any(value < target for target in targets)
        if method == "lessThanEqual":
            return any(value <= target for target in targets)
        if method == "greaterThan":
            return any(value > target for target in targets)
        if method == "greaterThanEqual":
            return any(value >= target for target in targets)
    except TypeError:
        return False
    if method == "isNull":
        return value is None
    if method == "isNotNull":
        return value is not None
    return False
