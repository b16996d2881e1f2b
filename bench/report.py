"""The results table and the targets, as text for the terminal and Markdown for docs/performance.md."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bench.exchange import Flatness, Row, Sample
from bench.relay import RelayResult
from bench.relay_population import PopulationResult
from bench.scale import StateSize


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None
    limit: float
    sense: str  # "<=", ">=" or "<"
    shown: str

    @property
    def verdict(self) -> str:
        if self.value is None or math.isnan(self.value):
            return "MISS"
        passed = {"<=": self.value <= self.limit, ">=": self.value >= self.limit, "<": self.value < self.limit}
        return "PASS" if passed[self.sense] else "MISS"


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def paired(a: Row, b: Row, value: Callable[[Sample], float]) -> float | None:
    """The median over rounds of a/b, each round's two runs taken minutes apart at most: noise from
    other work on the machine comes in bursts, and a burst then hits both sides of a ratio alike."""
    ratios = [value(x) / value(y) for x, y in zip(a.samples, b.samples, strict=False) if value(y) > 0]
    return statistics.median(ratios) if ratios else None


def _cpu(sample: Sample) -> float:
    return sample.cpu / max(1, sample.load.ok)


def targets(
    rows: dict[str, Row], flat: Flatness | None, relay: RelayResult | None, sizes: list[StateSize] | None = None,
    population: PopulationResult | None = None,
) -> list[Target]:
    found: list[Target] = []
    naive, floor, memory, redis = (rows.get(k) for k in ("naive", "floor", "memory", "redis"))
    if floor and memory:
        r = paired(memory, floor, _cpu)
        found.append(Target("CPU per exchange, service (memory) <= 1.3x floor", r, 1.3, "<=", _x(r)))
    if floor and redis:
        r = paired(redis, floor, _cpu)
        found.append(Target("CPU per exchange, service (Redis) <= 1.6x floor", r, 1.6, "<=", _x(r)))
    if naive and memory:
        r = paired(memory, naive, lambda s: s.load.rate)
        found.append(Target("throughput, service (memory) >= 4x naive", r, 4.0, ">=", _x(r)))
    if floor and memory:
        r = paired(memory, floor, lambda s: s.load.p99_ms)
        found.append(Target("p99 latency, service (memory) <= 1.5x floor", r, 1.5, "<=", _x(r)))
    if flat is not None:
        found.append(Target(
            f"RSS after {flat.second_at:,} exchanges <= 1.1x RSS after {flat.first_at:,}", flat.ratio, 1.1, "<=",
            _x(flat.ratio),
        ))
    if sizes:
        cpus = [size.cpu_us for size in sizes]
        spread = max(cpus) / min(cpus)
        found.append(Target(f"memory state: CPU per exchange flat from {sizes[0].size:,} to {sizes[-1].size:,} keys "
                            "(max/min <= 1.25)", spread, 1.25, "<=", _x(spread)))
        for size in sizes:
            found.append(Target(f"memory state: RSS back within 10 % after the windows pass ({size.size:,})",
                                size.reclaimed_ratio, 1.1, "<=", f"{size.reclaimed_ratio:.2f}x of before"))
            found.append(Target(f"memory state: a second burst after the windows pass reuses the memory, "
                                f"RSS <= 1.1x (first burst + users still held) ({size.size:,})",
                                size.refill_ratio, 1.1, "<=", f"{size.refill_ratio:.2f}x"))
    if relay is not None:
        shipped = relay.shipped
        found.append(Target(
            f"relay: {relay.sockets_wanted:,} sockets in one process (as shipped)",
            shipped.opened, relay.sockets_wanted, ">=", f"{shipped.opened:,} opened",
        ))
        added = relay.added_ms("p99_ms")
        found.append(Target(
            "relay: added delivery delay p99 < 2 ms", added, 2.0, "<",
            "not measured" if added is None else f"{added:+.2f} ms",
        ))
    for key in ("plain", "translated") if population is not None else ():
        assert population is not None
        r = population.ratio(key, lambda p: p.kib_per_socket)
        found.append(Target(f"relay: memory per socket, service ({key}) <= 1.2x a bare aiohttp pass-through",
                            r, 1.2, "<=", _x(r)))
    return found


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


HEADERS = ("configuration", "exch/s", "p50 ms", "p99 ms", "CPU µs/exch", "(range)", "RSS MiB", "upstream busy",
           "errors")


def table_cells(rows: list[Row]) -> list[tuple[str, ...]]:
    return [
        (row.label, f"{row.rate:,.0f}", f"{row.p50_ms:.2f}", f"{row.p99_ms:.2f}", f"{row.cpu_us:,.0f}",
         f"{min(row.round_cpu_us()):,.0f}-{max(row.round_cpu_us()):,.0f}",
         f"{row.rss_kib / 1024:.1f}" if row.rss_kib else "-", f"{100 * row.upstream_busy:.0f}%", str(row.errors))
        for row in rows
    ]


def text_table(rows: list[Row]) -> str:
    cells = [HEADERS, *table_cells(rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    lines = []
    for index, cell in enumerate(cells):
        pairs = enumerate(zip(cell, widths, strict=True))
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(cell) + " |" for cell in table_cells(rows)]
    return "\n".join(lines)


def targets_text(found: list[Target], judged: bool) -> str:
    lines = []
    for target in found:
        verdict = target.verdict if judged else "----"
        lines.append(f"  {verdict}  {target.name}: {target.shown}")
    return "\n".join(lines)


def targets_markdown(found: list[Target]) -> str:
    lines = ["| target | this run | verdict |", "|---|---|---|"]
    lines += [f"| {t.name} | {t.shown} | {t.verdict} |" for t in found]
    return "\n".join(lines)
