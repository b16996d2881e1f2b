"""The relay policy's small parts: the URL slot a subscription's queries go in, how a refusal shows
the page's channels, and every subscription of a frame being screened. Each test fails on a mutant
of relay/policy.py that test_relay_policy.py let through (scripts/mutation; the equivalent ones are
in tests/mutation/equivalent.txt)."""

from __future__ import annotations

import json

import pytest
from appwrite_token_exchange.relay.php_query import PhpKey
from appwrite_token_exchange.relay.policy import (
    POLICY_VIOLATION,
    Handshake,
    screen_frame,
    shown,
    slot_key,
    upstream_url,
)


def test_a_channels_queries_go_under_its_name_with_dots_as_underscores() -> None:
    assert slot_key("databases.db.collections.c.documents", 3) == PhpKey("databases_db_collections_c_documents", ("3", None))


@pytest.mark.parametrize("channel", ["project", "channels", "jwt", "a b", "a[b", "a\x00b"])
def test_no_slot_where_appwrite_reads_the_name_itself_or_php_stores_it_elsewhere(channel: str) -> None:
    assert slot_key(channel, 0) is None


def test_a_refusal_shows_each_channel_up_to_its_length_limit() -> None:
    exactly = "c" * 100
    assert shown([exactly]) == exactly
    assert shown(["c" * 101]) == "c" * 100 + "…"


def test_a_refusal_counts_the_channels_it_leaves_out() -> None:
    names = [f"c{n}" for n in range(6)]
    assert shown(names[:5]) == "c0, c1, c2, c3, c4"
    assert shown(names) == "c0, c1, c2, c3, c4 and 1 more"


def test_every_subscription_of_a_frame_is_screened() -> None:
    # The refused channel in the first subscription, an allowed one in the last.
    frame = {"type": "subscribe", "data": [{"channels": ["files"]}, {"channels": ["account"]}]}
    verdict = screen_frame(json.dumps(frame), ("account",))
    assert verdict.reply is not None and verdict.forward is None
    error = json.loads(verdict.reply)["data"]
    assert (error["code"], error["message"]) == (POLICY_VIOLATION, "Channel not allowed: files")


def test_a_plain_http_endpoint_is_reached_over_plain_ws() -> None:
    handshake = Handshake(channels=("account",), queries=())
    assert upstream_url("http://appwrite:80/v1", "p1", handshake) == (
        "ws://appwrite:80/v1/realtime?project=p1&channels[]=account"
    )
