"""Event rules on their own (relay/event_rules.py): which events a rule matches, what `remove`,
`allow` and `drop` leave of an event, the file's validation, and its reload. Through the real relay
and the emulator: tests/test_relay_event_rules.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from appwrite_token_exchange.env import SettingsError
from appwrite_token_exchange.relay.event_rules import MAX_FILE_BYTES, EventRules, Rules, parse_rules, read_rules

PROFILES = "databases.db.collections.profiles.documents"
NOTES = "databases.db.collections.notes.documents"


def rules(*items: dict[str, Any]) -> Rules:
    return parse_rules(json.dumps({"rules": list(items)}))


def event(payload: dict[str, Any], channels: tuple[str, ...] = (PROFILES,),
          events: tuple[str, ...] = (f"{PROFILES}.d1.update",)) -> dict[str, Any]:
    return {"events": list(events), "channels": list(channels), "timestamp": "2026-01-01 00:00:00.000",
            "payload": payload, "subscriptions": ["s1"]}


PERSON = {"$id": "d1", "name": "Ada", "email": "ada@example.com",
          "address": {"street": "1 Main St", "city": "London"},
          "friends": [{"name": "Bob", "email": "bob@example.com"}, {"name": "Cy"}, "not an object"]}


# --- which events a rule is for --------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "matched"), [
    ({"channels": [PROFILES]}, True),
    ({"channels": ["databases.*.collections.profiles.documents*"]}, True),
    ({"channels": [NOTES, "account"]}, False),
    ({"events": ["databases.*.collections.profiles.documents.*.update"]}, True),
    ({"events": ["*.create"]}, False),
    ({"channels": [PROFILES], "events": ["*.update"]}, True),  # both given: both must match
    ({"channels": [PROFILES], "events": ["*.create"]}, False),
    ({"channels": [NOTES], "events": ["*.update"]}, False),
    ({"channels": ["DATABASES.*"]}, False),  # case matters, as in RELAY_CHANNELS_ALLOW
])
def test_a_rule_is_for_the_events_its_patterns_match(rule: dict[str, Any], matched: bool) -> None:
    data = event(PERSON)
    shown = rules({**rule, "remove": ["email"]}).apply(data)
    assert shown is not None
    assert ("email" not in shown["payload"]) is matched


def test_an_event_no_rule_matches_is_the_same_object() -> None:
    data = event(PERSON, channels=(NOTES,))
    assert rules({"channels": [PROFILES], "drop": True}).apply(data) is data


def test_an_event_without_channels_or_events_matches_no_pattern() -> None:
    data = {"payload": {"email": "x"}}
    assert rules({"channels": ["*"], "drop": True}).apply(data) is data
    assert rules({"events": ["*"], "drop": True}).apply({"events": "not a list", "payload": {}}) is not None


# --- what is left of an event ------------------------------------------------------------------------


def test_remove_takes_nested_fields_and_fields_of_each_object_in_a_list() -> None:
    shown = rules({"channels": [PROFILES], "remove": ["email", "address.street", "friends.email", "no.such"]}).apply(
        event(PERSON))
    assert shown is not None
    assert shown["payload"] == {"$id": "d1", "name": "Ada", "address": {"city": "London"},
                                "friends": [{"name": "Bob"}, {"name": "Cy"}, "not an object"]}
    # Everything but the payload is Appwrite's, as it sent it; the event given is not changed.
    assert {k: v for k, v in shown.items() if k != "payload"} == {k: v for k, v in event(PERSON).items() if k != "payload"}
    assert PERSON["address"] == {"street": "1 Main St", "city": "London"}


def test_allow_keeps_only_the_paths_named() -> None:
    shown = rules({"channels": [PROFILES], "allow": ["$id", "address.city", "friends.name", "missing"]}).apply(
        event(PERSON))
    assert shown is not None
    # A list keeps its objects, each cut down; what is no object has nothing named in it.
    assert shown["payload"] == {"$id": "d1", "address": {"city": "London"}, "friends": [{"name": "Bob"}, {"name": "Cy"}]}


def test_allow_drops_a_field_that_is_no_object_where_the_path_goes_deeper() -> None:
    shown = rules({"channels": [PROFILES], "allow": ["name.first", "address"]}).apply(event(PERSON))
    assert shown is not None
    assert shown["payload"] == {"address": PERSON["address"]}


def test_a_shorter_path_names_the_whole_field() -> None:
    both = rules({"channels": [PROFILES], "remove": ["address.street", "address"]}).apply(event(PERSON))
    assert both is not None and "address" not in both["payload"]
    kept = rules({"channels": [PROFILES], "allow": ["address", "address.city"]}).apply(event(PERSON))
    assert kept is not None and kept["payload"] == {"address": PERSON["address"]}


def test_every_matching_rule_applies_in_order() -> None:
    shown = rules(
        {"channels": [PROFILES], "remove": ["email"]},
        {"events": ["*.update"], "allow": ["name", "email", "address"]},
        {"channels": ["*"], "remove": ["address.street"]},
    ).apply(event(PERSON))
    assert shown is not None
    assert shown["payload"] == {"name": "Ada", "address": {"city": "London"}}


@pytest.mark.parametrize(("on_drop", "expected"), [(None, None), ("nothing", None), ("empty", {})])
def test_a_drop_wins_over_every_other_rule(on_drop: str | None, expected: dict[str, Any] | None) -> None:
    drop = {"events": ["*.update"], "drop": True} | ({"onDrop": on_drop} if on_drop else {})
    shown = rules({"channels": [PROFILES], "remove": ["email"]}, drop).apply(event(PERSON))
    if expected is None:
        assert shown is None
    else:
        assert shown == {**event(PERSON), "payload": expected}


def test_of_two_drops_nothing_wins_over_empty() -> None:
    assert rules({"channels": [PROFILES], "drop": True, "onDrop": "empty"},
                 {"events": ["*"], "drop": True}).apply(event(PERSON)) is None


# --- frames: only events are read, anything else passes as it came -------------------------------------


REMOVE_EMAIL = rules({"channels": [PROFILES], "remove": ["email"]})


@pytest.mark.parametrize("text", [
    b'{"type":"pong"}', b'{"type":"connected","data":{"channels":[],"user":{"email":"x"}}}', b"not json", b"[1,2]",
    b'{"type":"event","data":"no object"}', b'"event"', b"\xff\xfe",
])
def test_frames_other_than_events_pass_as_they_came(text: bytes) -> None:
    assert REMOVE_EMAIL.apply_frame(text) is text
    assert REMOVE_EMAIL.apply_frame(text.decode("latin-1")) == text.decode("latin-1")


def test_a_frame_too_deep_to_read_is_withheld() -> None:
    """A browser may read what Python's parser refuses as too deep: unchecked, it does not pass."""
    deep = b'{"type":"event","data":{"payload":' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    assert REMOVE_EMAIL.apply_frame(deep) is None


def test_an_event_frame_comes_back_re_encoded_as_the_type_it_came_in() -> None:
    frame = {"type": "event", "data": event(PERSON)}
    as_bytes = REMOVE_EMAIL.apply_frame(json.dumps(frame).encode())
    as_text = REMOVE_EMAIL.apply_frame(json.dumps(frame))
    assert isinstance(as_bytes, bytes) and isinstance(as_text, str)
    assert json.loads(as_bytes) == json.loads(as_text) == {
        "type": "event", "data": {**event(PERSON), "payload": {k: v for k, v in PERSON.items() if k != "email"}}}
    untouched = json.dumps({"type": "event", "data": event(PERSON, channels=(NOTES,))}).encode()
    assert REMOVE_EMAIL.apply_frame(untouched) is untouched  # not re-encoded when no rule matched
    dropped = rules({"channels": [PROFILES], "drop": True})
    assert dropped.apply_frame(json.dumps(frame).encode()) is None


# --- the file --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "problem"), [
    ("{", "is not valid JSON"),
    ('{"rules": {}}', 'must hold one JSON object {"rules": [...]} and nothing else'),
    ('{"rules": [], "extra": 1}', 'must hold one JSON object {"rules": [...]} and nothing else'),
    ('[]', 'must hold one JSON object'),
    ('{"rules": ["x"]}', "rule 0: must be an object"),
    ('{"rules": [{"channels": ["a"], "drop": true}, {"chanels": ["a"], "drop": true}]}',
     "rule 1: unknown key 'chanels' (known: allow, channels, drop, events, onDrop, remove)"),
    ('{"rules": [{"remove": ["email"]}]}', 'rule 0: needs "channels" or "events" (or both)'),
    ('{"rules": [{"channels": "a", "drop": true}]}', 'rule 0: "channels" must be a non-empty list of strings'),
    ('{"rules": [{"channels": [], "drop": true}]}', 'rule 0: "channels" must be a non-empty list of strings'),
    ('{"rules": [{"events": [" "], "drop": true}]}', 'rule 0: "events" holds an empty entry'),
    ('{"rules": [{"events": [1], "drop": true}]}', 'rule 0: "events" must be a non-empty list of strings'),
    ('{"rules": [{"events": ["a"], "allow": ["x"], "remove": ["y"]}]}', 'rule 0: has both "allow" and "remove"'),
    ('{"rules": [{"events": ["a"], "remove": ["a..b"]}]}', "rule 0: \"remove\": 'a..b' is not a dot-separated"),
    ('{"rules": [{"events": ["a"], "allow": [""]}]}', 'rule 0: "allow" holds an empty entry'),
    ('{"rules": [{"events": ["a"], "drop": "yes"}]}', 'rule 0: "drop" must be true or false'),
    ('{"rules": [{"events": ["a"], "drop": true, "onDrop": "later"}]}', "rule 0: \"onDrop\" must be \"nothing\" or"),
    ('{"rules": [{"events": ["a"], "remove": ["x"], "onDrop": "empty"}]}', 'rule 0: "onDrop" is only for a rule'),
    ('{"rules": [{"events": ["a"]}]}', "rule 0: does nothing"),
    ('{"rules": [{"events": ["a"], "drop": true, "remove": ["x"]}]}', 'rule 0: a "drop" rule withholds'),
])
def test_a_bad_file_is_refused_naming_the_variable_the_rule_and_the_problem(text: str, problem: str) -> None:
    with pytest.raises(SettingsError) as refused:
        parse_rules(text)
    assert refused.value.variable == "RELAY_EVENT_RULES_FILE"
    assert str(refused.value).startswith(f"RELAY_EVENT_RULES_FILE: {problem}")


def test_an_empty_list_of_rules_is_valid() -> None:
    assert parse_rules('{"rules": []}').rules == ()


def test_an_unreadable_or_oversized_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(SettingsError, match=r"RELAY_EVENT_RULES_FILE: the file .*missing\.json' cannot be read"):
        read_rules(str(missing))
    with pytest.raises(SettingsError, match="cannot be read"):
        read_rules(str(tmp_path))  # a directory
    large = tmp_path / "large.json"
    large.write_bytes(b" " * (MAX_FILE_BYTES + 1))
    with pytest.raises(SettingsError, match="is larger than"):
        read_rules(str(large))


# --- reload ----------------------------------------------------------------------------------------------


class Counted:
    def __init__(self) -> None:
        self.loaded: list[int] = []
        self.failed = 0

    def fail(self) -> None:
        self.failed += 1


async def write(path: Path, text: str) -> None:
    await asyncio.to_thread(path.write_text, text)


async def test_a_changed_file_replaces_the_rules_and_a_bad_one_keeps_them(tmp_path: Path, logs: Any) -> None:
    path = tmp_path / "rules.json"
    await write(path, json.dumps({"rules": [{"channels": [PROFILES], "remove": ["email"]}]}))
    counted = Counted()
    held = EventRules(str(path), on_loaded=counted.loaded.append, on_failed=counted.fail)
    await asyncio.to_thread(held.load)
    first = held.current
    assert first is not None and counted.loaded == [1]
    assert await held.check() is False  # unchanged
    assert held.current is first

    # The same size, written at once: told apart by content, not by its times.
    await write(path, json.dumps({"rules": [{"channels": [PROFILES], "remove": ["names"]}]}))
    assert await held.check() is True
    assert held.current is not first and counted.loaded == [1, 1]
    second = held.current
    assert [line["rules"] for line in logs.events("relay.event_rules_loaded")] == [1]

    await write(path, '{"rules": [{"channels": ["x"]}]}')
    assert await held.check() is False
    assert await held.check() is False  # the same bad file: logged once
    assert held.current is second and counted.failed == 1
    [error] = logs.events("relay.event_rules_invalid")
    assert error["problem"] == 'RELAY_EVENT_RULES_FILE: rule 0: does nothing: give "remove", "allow" or "drop": true'
    assert error["kept_rules"] == 1 and error["level"] == "error" and error["logger"] == "service.relay"

    await asyncio.to_thread(path.unlink)
    assert await held.check() is False
    assert await held.check() is False
    assert held.current is second and counted.failed == 2
    assert "cannot be read" in logs.events("relay.event_rules_invalid")[-1]["problem"]

    await write(path, json.dumps({"rules": [{"events": ["*"], "drop": True}, {"events": ["a"], "drop": True}]}))
    assert await held.check() is True
    assert held.current is not None and len(held.current.rules) == 2 and counted.loaded[-1] == 2


async def test_without_a_file_there_are_no_rules_and_nothing_to_check() -> None:
    held = EventRules("")
    held.load()
    assert held.current is None
    assert await held.check() is False


def test_the_benchmark_measures_every_row() -> None:
    """bench/event_rules.py runs (a few events per row); its figures are printed, never judged."""
    from bench.event_rules import RULE_FILES, frame, measure, rows_text

    rows = measure(number=5, repeat=1)
    assert [name for name, _, _ in rows] == list(RULE_FILES)
    assert 1000 <= len(frame()) <= 2000  # a realistic document, as the rows say
    assert all(plain > 0 for _, plain, _ in rows)
    assert "no rules" in rows_text(rows, len(frame()))
