"""Event rules (RELAY_EVENT_RULES_FILE) through the real relay, in front of the emulator playing
every Appwrite server: the plain relay (1.9.5 and newer, which read `subscribe` frames) and the
translating one (1.8.1, 1.9.0) alike keep what a rule removes from every frame the page gets, keep
only what an allow-list names, withhold dropped events, and follow a changed file while the page's
socket stays open. The rules themselves: tests/test_event_rules.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from appwrite_token_exchange.app import create_app
from appwrite_token_exchange.emulator.config import SERVERS
from appwrite_token_exchange.env import SettingsError
from appwrite_token_exchange.keys import EVENT_RULES

from tests.support.service import service_settings
from tests.test_relay_url_channels import frame, publish, sdk_socket, subscribe

PROFILES = "databases.db.collections.profiles.documents"
CREATED = f"{PROFILES}.d1.create"
# Values that must never reach the page once a rule removes their field: looked for in the raw text.
EMAIL = "ada-private@example.com"
STREET = "1 Secret Street"
PROFILE = {"$id": "d1", "name": "Ada", "email": EMAIL, "address": {"street": STREET, "city": "London"},
           "friends": [{"name": "Bob", "email": EMAIL}]}
REMOVE = {"rules": [{"channels": ["databases.*.collections.profiles.documents"],
                     "remove": ["email", "address.street", "friends.email"]}]}
# One plain relay and one translating one, for the tests that need not run against every server.
TWO_RELAYS = ["main", "1.8.1"]
WriteRules = Callable[[dict[str, Any] | str], Awaitable[str]]


@pytest.fixture(params=SERVERS)
async def emulator(request, emulator_factory):  # type: ignore[no-untyped-def]
    return await emulator_factory(mode=request.param)


@pytest.fixture
def rules_file(tmp_path: Path) -> WriteRules:
    """Writes the rules (a dict as JSON, or the text as given) and gives the file's path; from a
    thread, as a file write in the loop would block it."""
    path = tmp_path / "event-rules.json"

    async def write(rules: dict[str, Any] | str) -> str:
        await asyncio.to_thread(path.write_text, rules if isinstance(rules, str) else json.dumps(rules))
        return str(path)

    return write


async def rules_service(service_factory: Any, path: str) -> Any:
    return await service_factory(RELAY_EVENT_RULES_FILE=path)


async def subscribed_page(service: Any, emulator: Any) -> Any:
    ws, _ = await sdk_socket(service, emulator)
    response = await subscribe(ws, "s1", PROFILES)
    assert response["type"] == "response" and response["data"]["success"] is True, response
    return ws


async def raw_frame(ws: Any) -> str:
    message = await asyncio.wait_for(ws.receive(), 3.0)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return str(message.data)


async def publish_profile(emulator: Any, payload: dict[str, Any] | None = None, event: str = CREATED) -> None:
    assert await publish(emulator, channels=[PROFILES], events=[event], payload=payload or PROFILE) == 1


async def test_a_removed_field_is_in_no_frame_the_page_gets(service_factory, emulator, rules_file) -> None:
    service = await rules_service(service_factory, await rules_file(REMOVE))
    ws = await subscribed_page(service, emulator)
    await publish_profile(emulator)
    await publish_profile(emulator, {**PROFILE, "n": 2}, event=f"{PROFILES}.d1.update")
    texts = [await raw_frame(ws), await raw_frame(ws)]
    for text in texts:
        assert EMAIL not in text and STREET not in text
    events = [json.loads(text) for text in texts]
    assert [event["data"]["payload"] for event in events] == [
        {"$id": "d1", "name": "Ada", "address": {"city": "London"}, "friends": [{"name": "Bob"}]},
        {"$id": "d1", "name": "Ada", "address": {"city": "London"}, "friends": [{"name": "Bob"}], "n": 2},
    ]
    # The rest of the event is Appwrite's, routed to the page's subscription as always.
    for event in events:
        assert event["type"] == "event"
        assert PROFILES in event["data"]["channels"] and event["data"]["subscriptions"] == ["s1"]
        assert isinstance(event["data"]["timestamp"], str)
    await ws.close()


@pytest.mark.parametrize("emulator", TWO_RELAYS, indirect=True)
async def test_events_no_rule_matches_arrive_whole(service_factory, emulator, rules_file) -> None:
    service = await rules_service(service_factory, await rules_file(REMOVE))
    ws, user_id = await sdk_socket(service, emulator)
    await subscribe(ws, "s1", "account")
    assert await publish(emulator, userId=user_id, payload=PROFILE) == 1
    assert (await frame(ws))["data"]["payload"] == PROFILE
    await ws.close()


@pytest.mark.parametrize("emulator", TWO_RELAYS, indirect=True)
async def test_an_allow_list_keeps_only_what_it_names(service_factory, emulator, rules_file) -> None:
    allow = {"rules": [{"events": ["databases.*.collections.profiles.documents.*.create"],
                        "allow": ["$id", "address.city", "friends.name"]}]}
    service = await rules_service(service_factory, await rules_file(allow))
    ws = await subscribed_page(service, emulator)
    await publish_profile(emulator)
    assert (await frame(ws))["data"]["payload"] == {"$id": "d1", "address": {"city": "London"},
                                                    "friends": [{"name": "Bob"}]}
    await publish_profile(emulator, event=f"{PROFILES}.d1.update")  # not an event the rule names
    assert (await frame(ws))["data"]["payload"] == PROFILE
    await ws.close()


@pytest.mark.parametrize("emulator", TWO_RELAYS, indirect=True)
@pytest.mark.parametrize("on_drop", ["nothing", "empty"])
async def test_a_dropped_event_is_withheld_or_emptied(service_factory, emulator, rules_file, on_drop) -> None:
    drop = {"rules": [{"events": ["*.delete"], "drop": True, "onDrop": on_drop}]}
    service = await rules_service(service_factory, await rules_file(drop))
    ws = await subscribed_page(service, emulator)
    await publish_profile(emulator, event=f"{PROFILES}.d1.delete")
    await publish_profile(emulator, {"$id": "d2"})
    first = await frame(ws)
    if on_drop == "empty":
        # The page learns that something happened, and nothing of it: it asks its server again.
        assert first["data"]["events"] == [f"{PROFILES}.d1.delete"]
        assert first["data"]["payload"] == {}
        first = await frame(ws)
    assert first["data"]["payload"] == {"$id": "d2"}
    await ws.close()


@pytest.mark.parametrize("emulator", TWO_RELAYS, indirect=True)
async def test_a_changed_file_changes_what_an_open_socket_gets(service_factory, emulator, rules_file) -> None:
    service = await rules_service(service_factory, await rules_file(REMOVE))
    held = service.app[EVENT_RULES]
    ws = await subscribed_page(service, emulator)
    await publish_profile(emulator)
    assert "email" not in (await frame(ws))["data"]["payload"]

    # The watcher's look at the file, called here rather than waited for.
    await rules_file({"rules": [{"channels": [PROFILES], "remove": ["name"]}]})
    assert await held.check() is True
    await publish_profile(emulator)
    payload = (await frame(ws))["data"]["payload"]
    assert payload["email"] == EMAIL and "name" not in payload

    # An invalid version keeps the rules in force, and the socket open.
    await rules_file('{"rules": [{"channels": [], "remove": ["email"]}]}')
    assert await held.check() is False
    await publish_profile(emulator)
    payload = (await frame(ws))["data"]["payload"]
    assert payload["email"] == EMAIL and "name" not in payload
    assert not ws.closed

    metrics = await (await service.get("/metrics")).text()
    assert "token_exchange_relay_event_rules 1.0" in metrics
    assert "token_exchange_relay_event_rules_reload_failures_total 1.0" in metrics
    await ws.close()


@pytest.mark.parametrize("emulator", ["main"], indirect=True)
async def test_without_rules_events_pass_as_appwrite_sent_them(service_factory, emulator) -> None:
    service = await service_factory()
    assert service.app[EVENT_RULES].current is None
    ws = await subscribed_page(service, emulator)
    await publish_profile(emulator)
    assert (await frame(ws))["data"]["payload"] == PROFILE
    metrics = await (await service.get("/metrics")).text()
    assert "token_exchange_relay_event_rules 0.0" in metrics
    await ws.close()


@pytest.mark.parametrize("emulator", ["main"], indirect=True)
@pytest.mark.parametrize(("rules", "problem"), [
    ('{"rules": [{"channels": ["x"], "allow": ["a"], "remove": ["b"]}]}',
     'RELAY_EVENT_RULES_FILE: rule 0: has both "allow" and "remove"; use one per rule'),
    ("{not json", "RELAY_EVENT_RULES_FILE: is not valid JSON"),
    (None, "RELAY_EVENT_RULES_FILE: the file"),
])
async def test_a_bad_file_stops_the_start(emulator, rules_file, tmp_path, rules, problem) -> None:
    path = await rules_file(rules) if rules is not None else str(tmp_path / "missing.json")
    runner = web.AppRunner(create_app(service_settings(emulator, RELAY_EVENT_RULES_FILE=path)))
    # What `serve` meets (and reports as a configuration error, exit 2), before anything is opened.
    with pytest.raises(SettingsError) as refused:
        await runner.setup()
    assert str(refused.value).startswith(problem)
