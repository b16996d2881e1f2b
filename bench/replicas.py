"""Two service replicas on one Redis against one replica: aggregate throughput, CPU per exchange,
and what Redis spends per exchange (which says how many replicas one Redis core can carry).

On a 2-core machine both replicas share the system-under-test core (the other runs Redis, the
emulator and the load generators), so the ratio shows what sharing one Redis costs, not what a
second core would add."""

from __future__ import annotations

import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.exchange import Config, start_config
from bench.loadgen import LoadResult, run_wrk
from bench.procs import Child, Children, Cores
from bench.upstream import PROJECT


@dataclass
class ReplicaRound:
    replicas: int
    rate: float
    cpu_us: float  # services' CPU per exchange
    redis_us: float  # Redis's CPU per exchange


@dataclass
class Replicas:
    rounds: list[ReplicaRound] = field(default_factory=list)

    def _median(self, replicas: int, value: Callable[[ReplicaRound], float]) -> float:
        found = [value(r) for r in self.rounds if r.replicas == replicas]
        return statistics.median(found) if found else 0.0

    @property
    def ratio(self) -> float:
        """Median over rounds of (two replicas' aggregate rate) / (one replica's)."""
        ones = [r.rate for r in self.rounds if r.replicas == 1]
        twos = [r.rate for r in self.rounds if r.replicas == 2]
        pairs = [b / a for a, b in zip(ones, twos, strict=False) if a > 0]
        return statistics.median(pairs) if pairs else 0.0

    def text(self) -> str:
        one, two = (self._median(n, lambda r: r.rate) for n in (1, 2))
        redis_us = self._median(2, lambda r: r.redis_us)
        return (
            f"two replicas on one Redis (both on the measured core): {two:,.0f} exch/s vs one replica's {one:,.0f} "
            f"({self.ratio:.2f}x); service CPU {self._median(1, lambda r: r.cpu_us):.0f} -> "
            f"{self._median(2, lambda r: r.cpu_us):.0f} µs/exch; Redis CPU {redis_us:.0f} µs per exchange "
            f"(one Redis core: about {1e6 / max(1.0, redis_us):,.0f} exch/s)"
        )

    def to_json(self) -> dict[str, object]:
        return {"ratio": round(self.ratio, 3), "rounds": [r.__dict__ for r in self.rounds]}


def replicas_bench(
    children: Children, config: Config, cores: Cores, sessions_file: Path, seconds: float, concurrency: int,
    redis: Child, rounds: int,
) -> Replicas:
    services = [start_config(children, Config(f"{config.key}-replica{i}", config.label, False, config.argv,
                                              config.env), cores) for i in (1, 2)]
    result = Replicas()
    try:
        for _ in range(rounds):
            for count in (1, 2):
                result.rounds.append(_round(services[:count], redis, cores, sessions_file, seconds, concurrency))
    finally:
        for service in services:
            children.stop(service)
    return result


def _round(
    services: list[Child], redis: Child, cores: Cores, sessions_file: Path, seconds: float, concurrency: int
) -> ReplicaRound:
    loads: list[LoadResult] = []

    def load(service: Child) -> None:
        loads.append(run_wrk(f"http://127.0.0.1:{service.port}", sessions_file=sessions_file, project=PROJECT,
                             mode="service", seconds=seconds, concurrency=concurrency, cpus=cores.rest))

    cpu0, redis0 = sum(s.cpu() for s in services), redis.cpu()
    threads = [threading.Thread(target=load, args=(service,)) for service in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ok = max(1, sum(result.ok for result in loads))
    return ReplicaRound(
        replicas=len(services),
        rate=sum(result.rate for result in loads),
        cpu_us=1e6 * (sum(s.cpu() for s in services) - cpu0) / ok,
        redis_us=1e6 * (redis.cpu() - redis0) / ok,
    )
