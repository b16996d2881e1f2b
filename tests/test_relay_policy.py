"""The relay's policy pieces on their own: PHP's query parsing, the rebuilt upstream URL, the frame
screen and the socket slots (issue 11, items 2 and 5)."""

from __future__ import annotations

import asyncio
import json

import pytest
from appwrite_token_exchange.problems import ProblemError
from appwrite_token_exchange.relay.php_query import PhpKey, encode_query, parse_key, parse_query, php_urldecode
from appwrite_token_exchange.relay.policy import Handshake, Verdict, read_handshake, screen_frame, shown, upstream_url
from appwrite_token_exchange.relay.slots import RelaySlots

# -- PHP's reading of a query string ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("channels", PhpKey("channels")),
        ("channels[]", PhpKey("channels", (None,))),
        ("channels[0]", PhpKey("channels", ("0",))),
        ("channels[x]", PhpKey("channels", ("x",))),
        ("  channels[]", PhpKey("channels", (None,))),
        ("channels[ ]", PhpKey("channels", (None,))),
        ("channels[\t]", PhpKey("channels", (None,))),
        ("channels[ 0]", PhpKey("channels", (" 0",))),
        ("channels[0]junk", PhpKey("channels", ("0",))),
        ("channels[0]junk[1]", PhpKey("channels", ("0",))),
        ("channels\0junk[]", PhpKey("channels")),
        ("channels[0][1]", PhpKey("channels", ("0", "1"))),
        ("channels[0][1", PhpKey("channels", ("0",))),
        ("channels[][1", PhpKey("channels", (None,))),
        ("channels[a[b]", PhpKey("channels", ("a[b",))),
        ("channels[abc", PhpKey("channels_abc")),
        ("channels[a.b c[d", PhpKey("channels_a_b_c_d")),
        ("a.b c[0][]", PhpKey("a_b_c", ("0", None))),
        ("channels]", PhpKey("channels]")),
        ("\tchannels", PhpKey("\tchannels")),
    ],
)
def test_keys_are_read_as_php_registers_them(name: str, key: PhpKey) -> None:
    assert parse_key(name) == key


@pytest.mark.parametrize("name", ["", "   ", "[]", "[0]=", " [x]", "\0channels"])
def test_keys_php_drops(name: str) -> None:
    assert parse_key(name) is None


def test_a_query_is_decoded_as_php_urldecode_does() -> None:
    pairs = parse_query("+channels[]=a+b&&channels%5B0%5D=%E2%82%AC&x=%zz&=lost&flag&%63hannels=%FF")
    assert pairs == [
        (PhpKey("channels", (None,)), "a b"),
        (PhpKey("channels", ("0",)), "€"),
        (PhpKey("x"), "%zz"),
        (PhpKey("flag"), ""),
        (PhpKey("channels"), php_urldecode("%FF")),
    ]


def test_what_is_written_back_reads_back_the_same() -> None:
    pairs = parse_query("channels[]=%FF%00x&a%5Bb[c]=1&a[%20%200][]=2&a[x[y]=%26%3D%2B&k.e%20y[z]=v&channels[%20]=q")
    assert parse_query(encode_query(pairs)) == pairs
    assert PhpKey("channels", (None,)).spelled() == "channels[]"


# -- the handshake: every spelling checked, only the checked forwarded ----------------------------


def test_the_handshake_takes_every_spelling_of_channels_once() -> None:
    handshake = read_handshake("channels=a&channels[]=b&channels[0]=a&%63hannels[x][y]=c&project=p&jwt=t")
    assert handshake.channels == ("a", "b", "c")
    assert handshake.queries == ()


def test_the_handshake_keeps_only_its_channels_own_queries() -> None:
    handshake = read_handshake(
        "channels[]=a.b&channels[]=jwt&a.b[0][]=q1&a_b[1][]=q2&c[0][]=q3&jwt[0][]=q4&project[0][]=q5"
    )
    assert handshake.queries == ((PhpKey("a_b", ("0", None)), "q1"), (PhpKey("a_b", ("1", None)), "q2"))


def test_the_upstream_url_is_rebuilt_in_one_spelling() -> None:
    handshake = Handshake(("account", "a b&c"), ((PhpKey("account", ("0", None)), '{"method":"select"}'),))
    assert upstream_url("https://aw.example.com/v1", "p1", handshake) == (
        "wss://aw.example.com/v1/realtime?project=p1&channels[]=account&channels[]=a%20b%26c"
        "&account[0][]=%7B%22method%22%3A%22select%22%7D"
    )


def test_refusals_show_a_bounded_part_of_the_page_input() -> None:
    assert shown(["a", "b"]) == "a, b"
    many = shown([str(n) * 500 for n in range(9)])
    assert many.endswith(" and 4 more")
    assert len(many) < 600


# -- frames: text and binary alike, re-encoded, shapes Appwrite might read otherwise refused --------

POLICY = ("account", "account.*")


def _subscribe(channels: object) -> dict[str, object]:
    return {"type": "subscribe", "data": [{"subscriptionId": "s1", "channels": channels, "queries": []}]}


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_frames_are_screened_alike_whatever_their_opcode(binary: bool) -> None:
    def screen(frame: object) -> Verdict:
        text = json.dumps(frame)
        return screen_frame(text.encode() if binary else text, POLICY)

    assert screen({"type": "ping"}) == Verdict(forward='{"type":"ping"}')
    assert screen({"type": "authentication", "data": {"session": "x"}}) == Verdict()
    refused = screen(_subscribe(["account", "files"])).reply
    assert refused is not None
    assert json.loads(refused) == {"type": "error", "data": {"code": 1008, "message": "Channel not allowed: files"}}
    allowed = screen(_subscribe(["account"])).forward
    assert allowed is not None and json.loads(allowed) == _subscribe(["account"])


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{}",
        "not json",
        "[]",
        '"ping"',
        '{"data": 1}',
        '{"type": true, "data": {"session": "x"}}',
        '{"type": ["authentication"]}',
        '{"type": "ping", "n": NaN}',
        '{"type": "ping", "s": "\\ud800"}',
        "[" * 100_000 + "]" * 100_000,
        json.dumps({"type": "subscribe", "data": {"0": {"channels": ["files"]}}}),
        json.dumps(_subscribe({"0": "files"})),
        json.dumps(_subscribe("files")),
        json.dumps(_subscribe([["files"]])),
        json.dumps({"type": "subscribe", "data": [{"subscriptionId": "s1"}]}),
        json.dumps({"type": "subscribe", "data": ["files"]}),
    ],
    ids=lambda raw: str(raw)[:40],
)
def test_frames_that_might_read_otherwise_on_the_server_are_refused(raw: str | bytes) -> None:
    reply = screen_frame(raw, POLICY).reply
    assert reply is not None
    error = json.loads(reply)
    assert error["type"] == "error" and error["data"]["code"] == 1003


def test_what_goes_upstream_is_what_was_read() -> None:
    # Duplicate keys: Python and PHP both keep the last, and only that one is sent on.
    assert screen_frame('{"type":"ping","type":"authentication"}', POLICY) == Verdict()
    assert screen_frame('{"type":"authentication","type":"ping"}', POLICY) == Verdict(forward='{"type":"ping"}')
    # Re-encoded compactly, without escaping: about the page's size, never much more.
    assert screen_frame('{ "type" : "ping", "x": "\\u00e9" }', POLICY).forward == '{"type":"ping","x":"é"}'


def test_without_a_policy_subscribe_frames_pass_as_read() -> None:
    odd = {"type": "subscribe", "data": {"0": {"channels": "anything"}}}
    assert screen_frame(json.dumps(odd), ()) == Verdict(forward=json.dumps(odd, separators=(",", ":")))
    assert screen_frame(json.dumps({"type": "authentication"}), ()) == Verdict()


# -- socket slots -----------------------------------------------------------------------------------


def _refusal(action: object) -> tuple[str, object]:
    assert callable(action)
    with pytest.raises(ProblemError) as refused:
        action()
    return refused.value.code, refused.value.extra.get("scope")


def test_each_cap_refuses_with_its_own_answer() -> None:
    slots = RelaySlots(total=4, per_ip=2, per_session=1, per_user=1)
    first = slots.reserve("ip1", "s1")
    first.claim_user("u1")
    assert _refusal(lambda: slots.reserve("ip1", "s1")) == ("too_many_sockets", "session")
    second = slots.reserve("ip1", "s2")
    assert _refusal(lambda: second.claim_user("u1")) == ("too_many_sockets", "user")
    assert _refusal(lambda: slots.reserve("ip1", "s3")) == ("too_many_sockets", "ip")
    second.release()
    slots.reserve("ip2", "s2")
    slots.reserve("ip3", "s3")
    slots.reserve("ip4", "s4")
    assert _refusal(lambda: slots.reserve("ip5", "s5")) == ("relay_full", None)


def test_a_slot_is_given_back_once_and_its_keys_forgotten() -> None:
    slots = RelaySlots(total=10, per_ip=10, per_session=10, per_user=10)
    with slots.reserve("ip", "s") as slot:
        slot.claim_user("u")
        assert (slots.open, slots.held("ip", "ip"), slots.held("user", "u")) == (1, 1, 1)
    slot.release()
    assert slots.open == 0
    assert slots._held == {"ip": {}, "session": {}, "user": {}}
    with pytest.raises(RuntimeError):
        slot.claim_user("u")


async def test_a_cancelled_handshake_gives_its_slot_back() -> None:
    slots = RelaySlots(total=1, per_ip=1, per_session=1, per_user=1)
    started = asyncio.Event()

    async def handshake() -> None:
        with slots.reserve("ip", "s"):
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(handshake())
    await started.wait()
    assert _refusal(lambda: slots.reserve("ip", "s"))[0] == "too_many_sockets"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slots.open == 0
    slots.reserve("ip", "s")
