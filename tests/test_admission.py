"""One admission question (service/appwrite_token_exchange/state/admission.py), answered alike by memory, one Redis server and a
Redis Cluster (real servers): what is decided, what is counted, in which order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from appwrite_token_exchange.rate_limit import RateLimit
from appwrite_token_exchange.state.admission import AdmissionQuery
from appwrite_token_exchange.state.redis_store import RedisState
from appwrite_token_exchange.state.redis_url import parse_redis_url
from appwrite_token_exchange.state.sliding_window import Check
from appwrite_token_exchange.state.store import State, close_client, redis_client_for

from tests.support.redis_cluster import redis_cluster
from tests.support.redis_server import redis_server

TWO = RateLimit(2, 60)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("cluster", marks=pytest.mark.redis)])
def redis_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "memory":
        yield None
        return
    with (redis_server() if request.param == "redis" else redis_cluster()) as server:
        yield server.url


@pytest.fixture
async def state(redis_url: str | None) -> AsyncIterator[State]:
    if redis_url is None:
        yield State(None, lambda down: None)
        return
    config = parse_redis_url(redis_url)
    client = redis_client_for(config)
    try:
        yield State(RedisState(client, cluster=config.kind == "redis-cluster"), lambda down: None, kind=config.kind)
    finally:
        await close_client(client)


def query(session: str, named_user: str, ip: str = "ip1", limit: RateLimit = TWO) -> AdmissionQuery:
    def user_check(user_id: str | None) -> Check:
        return Check("user", State.key("user", user_id or named_user), limit)

    return AdmissionQuery(
        ip=Check("ip", State.key("ip", ip), limit),
        session=Check("session", State.key("session", f"{{{session}}}"), limit),
        rejected_key=f"invalid:{{{session}}}",
        user_key=f"user:{{{session}}}",
        named_user_id=named_user,
        user_check=user_check,
    )


def allowed(answer: Any) -> list[tuple[str, bool]]:
    return [(decision.scope, decision.allowed) for decision in answer.decisions]


async def test_a_refused_ip_decides_nothing_else_and_counts_nothing(state: State) -> None:
    for session in ("s1", "s2"):
        assert allowed(await state.admit(query(session, "u1"))) == [("ip", True), ("session", True), ("user", True)]
    assert allowed(await state.admit(query("s3", "u1"))) == [("ip", False)]
    # s3's session window was not touched: from another IP it still has its whole allowance (u1's
    # window is full from the first two, so s3 names another user here).
    for _ in range(2):
        assert allowed(await state.admit(query("s3", "u2", ip="ip2")))[1] == ("session", True)
    assert allowed(await state.admit(query("s3", "u2", ip="ip3")))[1] == ("session", False)


async def test_the_named_user_is_reserved_until_a_token_shows_the_user(state: State) -> None:
    """Before any token the cookie's user is charged at admission (a reservation, given back when no
    token comes of it), so first exchanges in flight together cannot pass the limit."""
    answers = [await state.admit(query(f"s{i}", "u1", ip=f"ip{i}")) for i in range(3)]
    assert [allowed(answer)[2] for answer in answers] == [("user", True), ("user", True), ("user", False)]
    assert [answer.reserved is not None for answer in answers] == [True, True, False]
    for answer in answers[:2]:
        assert answer.reserved is not None
        await state.give_back(answer.reserved)
    await state.set_cached("user:{s9}", "u1", 60)
    answers = [await state.admit(query("s9", "u1", ip=f"ipx{i}")) for i in range(3)]
    assert [answer.user_id for answer in answers] == ["u1"] * 3
    assert [allowed(answer)[2] for answer in answers] == [("user", True), ("user", True), ("user", False)]


async def test_a_rejected_session_counts_its_ip_only(state: State) -> None:
    await state.set_cached("invalid:{dead}", "1", 60)
    answer = await state.admit(query("dead", "u1"))
    assert answer.rejected and allowed(answer) == [("ip", True)]
    assert allowed(await state.admit(query("dead", "u1")))[0] == ("ip", True)
    assert allowed(await state.admit(query("dead", "u1"))) == [("ip", False)]


async def test_a_learned_user_other_than_the_named_one_is_charged(state: State) -> None:
    """A cookie may name anyone; once a token showed the session's user, that user pays."""
    await state.set_cached("user:{s1}", "real", 60)
    answers = [await state.admit(query("s1", "victim", ip=f"ip{i}")) for i in range(2)]
    assert [answer.user_id for answer in answers] == ["real"] * 2
    assert [allowed(answer) for answer in answers] == [[("ip", True), ("session", True), ("user", True)]] * 2
    # "real" was charged twice: its window is full; "victim" was never charged.
    assert allowed(await state.admit(query("s2", "real", ip="ipa")))[2] == ("user", False)
    await state.set_cached("user:{s3}", "victim", 60)
    assert [allowed(await state.admit(query("s3", "victim", ip=f"ipb{i}")))[2] for i in range(3)] == [
        ("user", True), ("user", True), ("user", False)]


async def test_a_refused_user_leaves_the_session_uncounted(state: State) -> None:
    await state.set_cached("user:{s1}", "u1", 60)
    await state.set_cached("user:{s2}", "u1", 60)
    for i in range(2):
        assert allowed(await state.admit(query("s1", "u1", ip=f"ip{i}")))[1:] == [("session", True), ("user", True)]
    assert allowed(await state.admit(query("s2", "u1", ip="ip8")))[1:] == [("session", True), ("user", False)]
    # s2 was refused (by its user), so its session window is still empty: a fresh user lets it by twice.
    await state.set_cached("user:{s2}", "u2", 60)
    assert [allowed(await state.admit(query("s2", "u2", ip=f"ipz{i}")))[1] for i in range(3)] == [
        ("session", True), ("session", True), ("session", False)]


async def test_a_given_back_unit_is_free_again_and_giving_back_twice_frees_no_more(state: State) -> None:
    first = await state.admit(query("s1", "u1", ip="ip1"))
    second = await state.admit(query("s2", "u1", ip="ip2"))
    assert allowed(await state.admit(query("s3", "u1", ip="ip3")))[2] == ("user", False)
    assert first.reserved is not None and second.reserved is not None
    await state.give_back(first.reserved)
    answer = await state.admit(query("s4", "u1", ip="ip4"))
    assert allowed(answer)[2] == ("user", True) and answer.reserved is not None
    # The window is full again; a window at zero stays at zero however often it is given back to.
    assert allowed(await state.admit(query("s5", "u1", ip="ip5")))[2] == ("user", False)
    for reservation in (second.reserved, answer.reserved, answer.reserved, answer.reserved):
        await state.give_back(reservation)
    answers = [await state.admit(query(f"t{i}", "u1", ip=f"ipt{i}")) for i in range(3)]
    assert [allowed(answer)[2] for answer in answers] == [("user", True), ("user", True), ("user", False)]


async def test_a_refused_admission_reserves_nothing(state: State) -> None:
    await state.set_cached("user:{s1}", "u1", 60)
    for i in range(2):
        assert (await state.admit(query("s1", "u1", ip=f"ip{i}"))).reserved is not None
    answer = await state.admit(query("s1", "u1", ip="ip9"))
    assert ("session", False) in allowed(answer) and answer.reserved is None
