"""Event rules (RELAY_EVENT_RULES_FILE): which fields of a Realtime event's payload reach the page.

Appwrite's permissions decide who sees a document, not which of its fields: a rule removes fields
(`remove`), keeps only some (`allow`), or withholds the event (`drop`), for the events whose
channels and/or event names match its patterns (fnmatch, as RELAY_CHANNELS_ALLOW):

    {"rules": [
      {"channels": ["databases.*.collections.profiles.documents"], "remove": ["email", "address.street"]},
      {"channels": ["databases.*.collections.notes.documents*"], "allow": ["$id", "title", "owner.name"]},
      {"events": ["users.*.sessions.*"], "drop": true, "onDrop": "empty"}
    ]}

A rule needs `channels` or `events` (with both, both must match); a pattern list matches when any
pattern matches any of the event's names. Appwrite lists every channel an event was published on
in each frame (`documents`, `databases.<db>.collections.<c>.documents`, the document's own, ...),
so a rule on one of them holds whichever of them the page subscribed to.

A path is field names joined by dots; through a list it applies to each object in the list. Every
matching rule applies, in file order; a matching `drop` wins over them all, and when several drop
rules match the page gets nothing if any of them says `"onDrop": "nothing"` (the default) rather
than the event with an empty payload (`"empty"`: the page knows to refetch through its server).

JSON rather than YAML: reading YAML would make PyYAML a runtime dependency for one small file.

The file is read when the service starts (a bad one stops it, as any bad setting does) and then
watched (`watch_rules`): a valid new version replaces the rules while sockets stay open (each event
reads the rules in force), an invalid one keeps the old rules and is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from appwrite_token_exchange.env import SettingsError
from appwrite_token_exchange.keys import EVENT_RULES, METRICS, SETTINGS

VARIABLE = "RELAY_EVENT_RULES_FILE"
# How often the file is read again (in a worker thread) to see whether it changed.
CHECK_SECONDS = 2.0
# A rules file is a handful of lines; anything this large is a wrong path, not rules.
MAX_FILE_BYTES = 1024 * 1024
_RULE_KEYS = frozenset({"channels", "events", "remove", "allow", "drop", "onDrop"})
_ON_DROP = ("nothing", "empty")
# A field-path tree: field name -> None (the whole field) or the tree of paths below it.
Tree = dict[str, "Tree | None"]
# What `Rules.apply` returns for an event the page must not get at all.
DROPPED = None

_log = structlog.get_logger(logger_name="service.relay")


@dataclass(frozen=True)
class Rule:
    channels: re.Pattern[str] | None  # any of the rule's channel patterns; None: any channel
    events: re.Pattern[str] | None
    remove: Tree | None
    allow: Tree | None
    drop: bool
    empty_on_drop: bool

    def matches(self, channels: list[Any], events: list[Any]) -> bool:
        return _any_match(self.channels, channels) and _any_match(self.events, events)


@dataclass(frozen=True)
class Rules:
    """A validated rules file."""

    rules: tuple[Rule, ...]

    def apply(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """An event frame's `data` as the page may get it: `data` itself when no rule matches, a new
        dict when one changes the payload, DROPPED (None) when the page gets nothing."""
        channels, events = data.get("channels"), data.get("events")
        matching = [rule for rule in self.rules
                    if rule.matches(channels if isinstance(channels, list) else [],
                                    events if isinstance(events, list) else [])]
        if not matching:
            return data
        dropping = [rule for rule in matching if rule.drop]
        if dropping:
            return {**data, "payload": {}} if all(rule.empty_on_drop for rule in dropping) else DROPPED
        payload = data.get("payload")
        for rule in matching:
            if rule.remove is not None:
                payload = without(payload, rule.remove)
            if rule.allow is not None:
                payload = only(payload, rule.allow)
                if payload is None:  # not an object: nothing in it was allowed
                    payload = {}
        return {**data, "payload": payload}

    def apply_frame(self, text: str | bytes) -> str | bytes | None:
        """A frame from Appwrite as the page may get it: `text` itself unless a rule changes it, the
        re-encoded frame (str or bytes, as `text`) when one does, None when the page gets nothing.
        Frames that are not JSON objects, and all but events, are passed on untouched."""
        try:
            frame = json.loads(text)
        except ValueError:  # not JSON, so no event to the page either
            return text
        except RecursionError:
            # JSON nested deeper than Python reads, which a browser may still read: it could be an
            # event no rule was checked against, so the page does not get it.
            return None
        if not isinstance(frame, dict) or frame.get("type") != "event" or not isinstance(frame.get("data"), dict):
            return text
        data = self.apply(frame["data"])
        if data is frame["data"]:
            return text
        if data is DROPPED:
            return None
        encoded = json.dumps({**frame, "data": data}, separators=(",", ":"))
        return encoded.encode() if isinstance(text, bytes) else encoded


def _any_match(pattern: re.Pattern[str] | None, names: list[Any]) -> bool:
    return pattern is None or any(isinstance(name, str) and pattern.match(name) for name in names)


def without(value: Any, tree: Tree) -> Any:
    """`value` with the fields of `tree` removed (shared where untouched, never changed in place)."""
    if isinstance(value, list):
        return [without(item, tree) for item in value]
    if not isinstance(value, dict):
        return value
    kept = dict(value)
    for name, below in tree.items():
        if name in kept:
            if below is None:
                del kept[name]
            else:
                kept[name] = without(kept[name], below)
    return kept


def only(value: Any, tree: Tree) -> Any:
    """Only the fields of `tree` of `value`; None for a value that is no object (nothing named in it
    can be kept), list items that are none are left out too."""
    if isinstance(value, list):
        return [kept for kept in (only(item, tree) for item in value) if kept is not None]
    if not isinstance(value, dict):
        return None
    kept = {}
    for name, below in tree.items():
        if name in value:
            inner = value[name] if below is None else only(value[name], below)
            if inner is not None or below is None:
                kept[name] = inner
    return kept


# --- reading and checking the file ---------------------------------------------------------------


def parse_rules(text: str | bytes) -> Rules:
    """Rules from a file's text; SettingsError naming RELAY_EVENT_RULES_FILE, the rule and the problem."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise SettingsError(VARIABLE, f"is not valid JSON ({error})") from None
    if not isinstance(document, dict) or set(document) != {"rules"} or not isinstance(document["rules"], list):
        raise SettingsError(VARIABLE, 'must hold one JSON object {"rules": [...]} and nothing else')
    return Rules(tuple(_rule(index, item) for index, item in enumerate(document["rules"])))


def _rule(index: int, item: Any) -> Rule:
    def wrong(problem: str) -> SettingsError:
        return SettingsError(VARIABLE, f"rule {index}: {problem}")

    if not isinstance(item, dict):
        raise wrong("must be an object")
    unknown = sorted(set(item) - _RULE_KEYS)
    if unknown:
        raise wrong(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_RULE_KEYS))})")
    if "channels" not in item and "events" not in item:
        raise wrong('needs "channels" or "events" (or both) to say which events it is for')
    if "allow" in item and "remove" in item:
        raise wrong('has both "allow" and "remove"; use one per rule')
    drop = item.get("drop", False)
    if not isinstance(drop, bool):
        raise wrong('"drop" must be true or false')
    on_drop = item.get("onDrop", "nothing")
    if on_drop not in _ON_DROP:
        raise wrong(f'"onDrop" must be "nothing" or "empty", got {on_drop!r}')
    if "onDrop" in item and not drop:
        raise wrong('"onDrop" is only for a rule with "drop": true')
    if not drop and "allow" not in item and "remove" not in item:
        raise wrong('does nothing: give "remove", "allow" or "drop": true')
    if drop and ("allow" in item or "remove" in item):
        raise wrong('a "drop" rule withholds the whole event; "allow" or "remove" beside it would never apply')
    return Rule(
        channels=_patterns(item, "channels", wrong),
        events=_patterns(item, "events", wrong),
        remove=_paths(item, "remove", wrong),
        allow=_paths(item, "allow", wrong),
        drop=drop,
        empty_on_drop=on_drop == "empty",
    )


def _strings(item: dict[str, Any], key: str, wrong: Callable[[str], SettingsError]) -> list[str] | None:
    if key not in item:
        return None
    values = item[key]
    if not isinstance(values, list) or not values or not all(isinstance(value, str) for value in values):
        raise wrong(f'"{key}" must be a non-empty list of strings')
    if not all(value.strip() for value in values):
        raise wrong(f'"{key}" holds an empty entry')
    return values


def _patterns(item: dict[str, Any], key: str, wrong: Callable[[str], SettingsError]) -> re.Pattern[str] | None:
    """The rule's patterns as one regular expression (fnmatch's translation of each)."""
    patterns = _strings(item, key, wrong)
    if patterns is None:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns))


def _paths(item: dict[str, Any], key: str, wrong: Callable[[str], SettingsError]) -> Tree | None:
    paths = _strings(item, key, wrong)
    if paths is None:
        return None
    tree: Tree = {}
    for path in paths:
        names = path.split(".")
        if not all(names):
            raise wrong(f'"{key}": {path!r} is not a dot-separated field path')
        node: Tree | None = tree
        for depth, name in enumerate(names):
            if node is None:
                break  # a shorter path already names the whole field
            if depth == len(names) - 1:
                node[name] = None
            else:
                node = node.setdefault(name, {})
    return tree


def read_file(path: str) -> bytes:
    """The rules file's bytes (blocking: at start before the loop runs, or in a thread)."""
    try:
        with Path(path).open("rb") as file:
            text = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise SettingsError(VARIABLE, f"the file {path!r} cannot be read ({error.strerror or type(error).__name__})"
                            ) from None
    if len(text) > MAX_FILE_BYTES:
        raise SettingsError(VARIABLE, f"the file {path!r} is larger than {MAX_FILE_BYTES} bytes")
    return text


def read_rules(path: str) -> Rules:
    """The rules in the file at `path`, or SettingsError (blocking, as `read_file`)."""
    return parse_rules(read_file(path))


# --- the rules in force, and the file watched ----------------------------------------------------


class EventRules:
    """The rules relays apply now (`current`, None without a rules file: the relay then never
    decodes what it passes on), and the file they come from, re-read when it changes."""

    def __init__(self, path: str, on_loaded: Callable[[int], None] = lambda count: None,
                 on_failed: Callable[[], None] = lambda: None) -> None:
        self.path = path
        self.current: Rules | None = None
        # What the file held when last read, or why it could not be read: a change is a difference
        # in content, not in times (a file rewritten within one tick of the kernel's file clock, at
        # the same size, keeps its mtime), and an unreadable file is reported once, not every look.
        self._seen: bytes | str | None = None
        self._on_loaded = on_loaded
        self._on_failed = on_failed

    def load(self) -> None:
        """At start: the rules, or SettingsError (blocking, as `read_file`)."""
        if self.path:
            self._seen = read_file(self.path)
            self._use(parse_rules(self._seen))

    async def check(self) -> bool:
        """One look at the file: when it changed, its new rules replace the old ones if they are
        valid (one info line), else the old ones stay (one error line per change). True if replaced."""
        if not self.path:
            return False
        changed = await asyncio.to_thread(_reread, self.path, self._seen)
        if changed is None:
            return False
        self._seen, outcome = changed
        if isinstance(outcome, SettingsError):
            self._on_failed()
            _log.error("relay.event_rules_invalid", problem=str(outcome), kept_rules=self.count)
            return False
        self._use(outcome)
        _log.info("relay.event_rules_loaded", rules=self.count)
        return True

    def _use(self, rules: Rules) -> None:
        self.current = rules  # one assignment: each event sees the old rules or the new, never a mix
        self._on_loaded(len(rules.rules))

    @property
    def count(self) -> int:
        return len(self.current.rules) if self.current is not None else 0


def _reread(path: str, seen: bytes | str | None) -> tuple[bytes | str, Rules | SettingsError] | None:
    """The file's content (or why it cannot be read) and its rules (or why they are refused); None
    when it is what `seen` says it was. Run in a thread: a file read, and a parse of up to 1 MiB."""
    try:
        text = read_file(path)
    except SettingsError as error:
        return None if str(error) == seen else (str(error), error)
    if text == seen:
        return None
    try:
        return text, parse_rules(text)
    except SettingsError as error:
        return text, error


async def watch_rules(app: web.Application) -> AsyncIterator[None]:
    """The app's event rules: read at start (a bad file stops the service, as a bad setting does),
    then looked at every CHECK_SECONDS until shutdown."""
    metrics = app[METRICS]
    rules = app[EVENT_RULES] = EventRules(app[SETTINGS].relay_event_rules_file,
                                          on_loaded=metrics.event_rules.set, on_failed=metrics.event_rules_failed.inc)
    if not rules.path:
        yield
        return
    await asyncio.to_thread(rules.load)
    _log.info("relay.event_rules_loaded", rules=rules.count)
    watcher = asyncio.create_task(_watch(rules), name="event-rules-watch")
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _watch(rules: EventRules) -> None:
    while True:
        await asyncio.sleep(CHECK_SECONDS)
        try:
            await rules.check()
        except Exception:  # a bug here must not end the watching (the relay goes on with its rules)
            _log.exception("relay.event_rules_check_failed")
