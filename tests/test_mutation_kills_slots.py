"""The relay's slot counts and refusals, word for word: each test fails on a mutant of
relay/slots.py that test_relay_policy.py let through (scripts/mutation; the equivalent ones are in
tests/mutation/equivalent.txt)."""

from __future__ import annotations

import pytest
from appwrite_token_exchange.problems import ProblemError
from appwrite_token_exchange.relay.slots import RelaySlots


def test_a_full_replica_says_so_and_when_to_retry() -> None:
    slots = RelaySlots(total=1, per_ip=5, per_session=5, per_user=5)
    slots.reserve("ip-a", "session-a")
    with pytest.raises(ProblemError) as refused:
        slots.reserve("ip-b", "session-b")
    assert (refused.value.code, refused.value.detail) == ("relay_full", "This replica relays as many sockets as it may.")
    assert refused.value.headers == {"Retry-After": "5"}


@pytest.mark.parametrize(("scope", "caller"), [("ip", "client IP"), ("session", "session"), ("user", "user")])
def test_a_callers_full_share_is_refused_naming_the_cap(scope: str, caller: str) -> None:
    slots = RelaySlots(total=10, per_ip=2, per_session=2, per_user=2)
    for n in range(2):
        slot = slots.reserve("ip" if scope == "ip" else f"ip-{n}", "s" if scope == "session" else f"s-{n}")
        slot.claim_user("u" if scope == "user" else f"u-{n}")
    with pytest.raises(ProblemError) as refused:
        slot = slots.reserve("ip" if scope == "ip" else "ip-x", "s" if scope == "session" else "s-x")
        slot.claim_user("u")
    assert refused.value.code == "too_many_sockets"
    assert refused.value.detail == (
        f"This {caller} already holds 2 relayed sockets on this replica, the most it may; close one first."
    )
    assert refused.value.headers == {"Retry-After": "5"}
    assert refused.value.extra == {"scope": scope}


def test_giving_a_slot_back_frees_exactly_one_of_each_count() -> None:
    slots = RelaySlots(total=10, per_ip=5, per_session=5, per_user=5)
    first, second = slots.reserve("ip", "s"), slots.reserve("ip", "s")
    first.claim_user("u")
    second.claim_user("u")
    first.release()
    assert (slots.open, slots.held("ip", "ip"), slots.held("session", "s"), slots.held("user", "u")) == (1, 1, 1, 1)
    first.release()  # twice is once
    assert slots.open == 1
    second.release()
    assert (slots.open, slots.held("ip", "ip"), slots.held("user", "u")) == (0, 0, 0)


def test_a_slot_given_back_cannot_claim_a_user() -> None:
    slots = RelaySlots(total=10, per_ip=5, per_session=5, per_user=5)
    with slots.reserve("ip", "s") as slot:
        assert slots.open == 1
    assert slots.open == 0
    with pytest.raises(RuntimeError, match=r"^this relay slot was already given back$"):
        slot.claim_user("u")
    assert slots.held("user", "u") == 0
