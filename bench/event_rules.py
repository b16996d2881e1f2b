"""What event rules (RELAY_EVENT_RULES_FILE) cost the relay per event, in one process, no network:
`python -m bench.event_rules`.

Each row times exactly what a pump does for one event frame from Appwrite, on a realistic document
(an Appwrite document of about 1.5 KB with nested objects and a list):
- plain relay (1.9.5 and newer): without rules the frame is passed as Appwrite sent it, so the cost is
  the look-up of the rules in force; with rules the frame is decoded, matched, and, when a rule
  changes it, re-encoded (`Rules.apply_frame`);
- translating relay (1.8.x, 1.9.0): it decodes and re-encodes every event anyway, so what rules add
  is `Rules.apply` on the decoded event.
The figures are this machine's; no test judges them.
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable
from typing import Any

from aiohttp import web
from appwrite_token_exchange.keys import EVENT_RULES
from appwrite_token_exchange.relay.event_rules import EventRules, Rules, parse_rules

CHANNEL = "databases.shop.collections.profiles.documents"
RULE_FILES: dict[str, dict[str, Any] | None] = {
    "no rules": None,
    "a rule for other events": {"rules": [{"channels": ["databases.*.collections.orders.documents"],
                                           "remove": ["email"]}]},
    "remove 3 fields": {"rules": [{"channels": ["databases.*.collections.profiles.documents"],
                                   "remove": ["email", "address.street", "orders.card"]}]},
    "allow 5 fields": {"rules": [{"channels": ["databases.*.collections.profiles.documents"],
                                  "allow": ["$id", "$updatedAt", "name", "address.city", "orders.total"]}]},
    "drop": {"rules": [{"events": ["databases.*.collections.profiles.documents.*.delete"], "drop": True}]},
}


def document() -> dict[str, Any]:
    """An Appwrite document as an event carries it: system fields, text, a nested object, a list."""
    return {
        "$id": "66f1c2a9000b3c4d5e6f", "$sequence": 1042, "$collectionId": "profiles", "$databaseId": "shop",
        "$createdAt": "2026-11-30T10:12:44.512+00:00", "$updatedAt": "2026-12-01T08:01:02.003+00:00",
        "$permissions": ['read("user:66f1c2a9000b")', 'update("user:66f1c2a9000b")', 'read("team:support")'],
        "name": "Ada Lovelace", "email": "ada.lovelace@example.com", "phone": "+44 20 7946 0958",
        "bio": "Mathematician and writer, chiefly known for her work on the Analytical Engine. " * 3,
        "address": {"street": "12 St James's Square", "city": "London", "postcode": "SW1Y 4JH", "country": "GB"},
        "preferences": {"newsletter": True, "language": "en-GB", "theme": "dark", "timezone": "Europe/London"},
        "orders": [{"id": f"ord_{n:04d}", "total": 19.99 + n, "currency": "GBP", "card": "visa-4242"}
                   for n in range(4)],
        "tags": ["vip", "beta", "early-adopter"], "loginCount": 318, "verified": True,
    }


def frame(event: str = "update") -> bytes:
    """The event frame as the plain relay reads it (aiohttp gives a text frame's bytes undecoded)."""
    data = {"events": [f"{CHANNEL}.66f1c2a9000b3c4d5e6f.{event}", f"{CHANNEL}.*.{event}"],
            "channels": ["documents", CHANNEL, f"{CHANNEL}.66f1c2a9000b3c4d5e6f"],
            "timestamp": "2026-12-01 08:01:02.003", "payload": document(), "subscriptions": ["s1"]}
    return json.dumps({"type": "event", "data": data}, separators=(",", ":")).encode()


def _app_with(rules: Rules | None) -> web.Application:
    app = web.Application()
    held = EventRules("")
    held.current = rules
    app[EVENT_RULES] = held
    return app


def plain_pump(rules: Rules | None, text: bytes) -> Callable[[], object]:
    """What Relay._pass_on does with a frame before sending it."""
    app = _app_with(rules)

    def once() -> object:
        current = app[EVENT_RULES].current
        return text if current is None else current.apply_frame(text)

    return once


def translating_extra(rules: Rules | None, text: bytes) -> Callable[[], object] | None:
    """What TranslatingRelay._from_upstream does beyond its own decode and encode."""
    if rules is None:
        return None
    data = json.loads(text)["data"]
    return lambda: rules.apply(data)


def microseconds(call: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def measure(number: int = 20_000, repeat: int = 5) -> list[tuple[str, float, float | None]]:
    """(rules, plain relay µs/event, translating relay's added µs/event) per rule file."""
    rows = []
    for name, rules_file in RULE_FILES.items():
        rules = parse_rules(json.dumps(rules_file)) if rules_file is not None else None
        text = frame("delete" if name == "drop" else "update")
        extra = translating_extra(rules, text)
        rows.append((name, microseconds(plain_pump(rules, text), number, repeat),
                     microseconds(extra, number, repeat) if extra is not None else None))
    return rows


def rows_text(rows: list[tuple[str, float, float | None]], size: int) -> str:
    lines = [f"event rules: cost per event on a {size}-byte event frame (best of the repeats)",
             f"  {'rules':<26} {'plain relay µs':>15} {'translating relay +µs':>22}"]
    for name, plain, extra in rows:
        added = "-" if extra is None else f"{extra:.2f}"  # no rules: nothing added to what it does anyway
        lines.append(f"  {name:<26} {plain:>15.2f} {added:>22}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.event_rules", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=20_000, help="events per timing")
    parser.add_argument("--repeat", type=int, default=5, help="timings per row (the best is shown)")
    args = parser.parse_args(argv)
    print(rows_text(measure(args.number, args.repeat), len(frame())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
