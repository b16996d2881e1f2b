"""The population-scale relay figures (bench/relay_population.py) as text for the terminal."""

from __future__ import annotations

import statistics

from appwrite_token_exchange import capacity

from bench.relay_population import MIB, POD_MEMORY, POD_MEMORY_BYTES, LargeEvent, PopulationResult, Storm

# What a page's close code says about a large event (the service's relay/pump.py).
CLOSE_MEANINGS = {"1013": "over RELAY_MAX_BYTES_IN_FLIGHT", "1009": "over RELAY_MAX_EVENT_BYTES"}


def population_text(result: PopulationResult) -> str:
    lines = [f"\nrelay at population scale ({result.sizes.sockets:,} pages per server; the floor is "
             "bench/relay_floor_app.py: accept, ws_connect upstream as the service does, pump both ways, on uvloop):"]
    lines += _memory(result) + _fan_out(result)
    storm = result.populations["translated"].storm
    if storm is not None:
        lines += _storm(storm)
    if result.large is not None:
        lines += _large(result.large)
    return "\n".join(lines + _pod(result))


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _memory(result: PopulationResult) -> list[str]:
    lines = ["  memory per relayed socket (the server's RSS after opening its pages, minus before):"]
    for key, found in result.populations.items():
        grown = (found.rss_after_kib - found.rss_before_kib) / 1024
        line = (f"    {found.label:<34} {found.opened:>6,}/{found.wanted:,} pages in {found.open_seconds:5.1f} s  "
                f"+{grown:6.1f} MiB  {found.kib_per_socket:5.1f} KiB/socket")
        if key != "floor":
            line += f"  {_x(result.ratio(key, lambda p: p.kib_per_socket))} the floor (target <= 1.20x)"
        if found.failures:
            line += f"; stopped at the first failure: {found.failures}"
        lines.append(line)
    return lines


def _fan_out(result: PopulationResult) -> list[str]:
    lines = [f"  fan-out, one event to every page at once ({result.sizes.fanouts} events; the median over events "
             "of the time from the publish call to the last page; the emulator writes the pages one at a time):"]
    for key, found in result.populations.items():
        if not found.fanouts:
            continue
        p50 = statistics.median(run["p50_ms"] for run in found.fanouts)
        publish = statistics.median(run["publish_ms"] for run in found.fanouts)
        last = found.last_page_ms
        line = (f"    {found.label:<34} last page {last or 0:7.1f} ms"
                + ("" if key == "floor" else f" ({_x(result.ratio(key, lambda p: p.last_page_ms))} the floor)")
                + f"; median page {p50:.1f} ms; the publish call returned after {publish:.1f} ms")
        pauses = found.gc_pauses
        line += (f"; {len(pauses)} full GC(s) in the server meanwhile"
                 + (f", longest {1000 * max(pauses):.0f} ms" if pauses else ""))
        if found.missed:
            line += f"; {found.missed} page-events missing after the timeout"
        lines.append(line)
    return lines


def _storm(storm: Storm) -> list[str]:
    return [
        f"  swap storm (translated; one more page sends {storm.frames} subscribe frames, each adding a channel, in "
        f"{storm.sent_seconds:.3f} s; RELAY_MAX_CHANNELS (100), RELAY_RECONNECTS_PER_SOCKET (6/minute) and "
        "_PER_IP (30/minute) at their defaults):",
        f"    {storm.responses}/{storm.frames} answered ({storm.errors} errors), the last {storm.seconds:.2f} s after "
        f"the first frame; upstream connects the emulator saw: {storm.connects} (the page's first socket and "
        f"{storm.connects - 1} reopen(s))" + ("" if storm.close_code is None else f"; page closed {storm.close_code}"),
    ]


def _large(large: LargeEvent) -> list[str]:
    closes = {code: n for code, n in large.closes.items() if n}
    shown = [f"closed {code} ({CLOSE_MEANINGS[code]}) {closes.pop(code, 0)}" for code in CLOSE_MEANINGS]
    if closes:
        shown.append(f"other closes {closes}")
    return [
        f"  large event ({large.pages} pages of {large.pages} users, one {large.event_bytes / MIB:.1f} MiB event "
        f"published to each at once; CONTAINER_MEMORY_LIMIT={POD_MEMORY}, so RELAY_MAX_BYTES_IN_FLIGHT = "
        f"{large.budget_bytes / MIB:.1f} MiB):",
        f"    got it {large.received}, " + ", ".join(shown) + f", neither {large.silent} ({large.seconds:.1f} s)",
        f"    service RSS {large.rss_before_kib / 1024:.1f} MiB before, peak (VmHWM) {large.peak_after_kib / 1024:.1f} "
        f"MiB (+{(large.peak_after_kib - large.rss_before_kib) / 1024:.1f}; VmHWM before the event "
        f"{large.peak_before_kib / 1024:.1f}), {large.rss_after_kib / 1024:.1f} MiB after",
    ]


def _pod(result: PopulationResult) -> list[str]:
    pod, base = result.pod, result.populations["plain"].rss_before_kib
    sockets = pod.max_sockets
    budget = pod.max_bytes_in_flight * capacity.IN_FLIGHT_COPIES / MIB
    predicted = {key: (base + sockets * result.populations[key].kib_per_socket) / 1024
                 for key in ("plain", "translated")}
    return [
        f"  shipped pod ({pod.limit.source}, {POD_MEMORY} limit, caps left to auto) with a {pod.upstream_scheme}:// "
        f"upstream, as measured here (wss:// below): plan() gives RELAY_MAX_SOCKETS "
        f"{sockets:,} and RELAY_MAX_BYTES_IN_FLIGHT {pod.max_bytes_in_flight / MIB:.1f} MiB (it assumes a "
        f"{capacity.BASE_BYTES / MIB:.0f} MiB process and {pod.socket_bytes / 1024:.0f} KiB per socket)",
        f"    predicted RSS at {sockets:,} sockets = base {base / 1024:.1f} MiB (the plain run's, before its pages) + "
        f"{sockets:,} x measured KiB/socket: {predicted['plain']:.1f} MiB plain, {predicted['translated']:.1f} MiB "
        f"translated, of {POD_MEMORY_BYTES / MIB:.0f} MiB; with the byte budget full ({capacity.IN_FLIGHT_COPIES} "
        f"copies of each byte) +{budget:.1f} MiB: {predicted['plain'] + budget:.1f} / "
        f"{predicted['translated'] + budget:.1f} MiB",
    ]
