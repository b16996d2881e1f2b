"""`python -m bench`: the whole benchmark in one go, on 127.0.0.1 only. See docs/performance.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench.event_rules import frame as rules_frame
from bench.event_rules import measure as measure_rules
from bench.event_rules import rows_text as rules_text
from bench.exchange import (
    Config,
    Flatness,
    Row,
    configurations,
    flatness,
    load_runner,
    measure,
    start_config,
)
from bench.loadgen import LoadGeneratorMissing, run_wrk, wrk_binary
from bench.procs import Child, Children, Cores, raise_open_files_limit, wait_http
from bench.profile import Profile, profile_service
from bench.relay import RelayResult, relay_bench
from bench.relay_population import PopulationResult, Sizes, population_bench
from bench.relay_population_text import population_text
from bench.relay_tls import TlsResult, tls_bench, tls_text
from bench.replicas import Replicas, replicas_bench
from bench.report import markdown_table, paired, targets, targets_markdown, targets_text, text_table
from bench.revocation import RevocationResult, revocation_bench
from bench.scale import StateSize, state_sizes, state_text
from bench.topologies import RedisFootprint, footprint, round_trips, service_child_issued, topologies
from bench.upstream import PROJECT, create_sessions, start_emulator, start_redis, write_sessions

PARTS = ("exchange", "topologies", "connections", "replicas", "state", "flatness", "relay", "revocation", "rules",
         "profile")
STATE_SIZES = "10000,100000,1000000"
DEFAULT_OUT = Path(__file__).with_name("results")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, tiny sizes, no verdicts (for CI)")
    parser.add_argument("--parts", "--only", default=",".join(PARTS),
                        help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per configuration and round")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (medians are reported)")
    parser.add_argument("--concurrency", type=int, default=32, help="open connections of the load generator")
    parser.add_argument("--users", type=int, default=64, help="users (one session each) the load rotates over")
    parser.add_argument("--emulator", choices=("lean", "full"), default="lean",
                        help="lean: the emulator's handlers without its recorder and fault middlewares")
    parser.add_argument("--log-level", default="info", help="LOG_LEVEL of the service rows (shipped default: info)")
    parser.add_argument("--flatness", default="10000,100000", help="RSS is read after these many exchanges")
    parser.add_argument("--connections", default="256,1024", help="more connection counts for floor and memory")
    parser.add_argument("--state-sizes", default=STATE_SIZES, help="distinct sessions+IPs in the memory state")
    parser.add_argument("--relay-sockets", type=int, default=5000, help="relayed sockets, and pages per server")
    parser.add_argument("--relay-events", type=int, default=300)
    # Relay at population scale (bench/relay_population.py); --relay-sockets pages per server.
    parser.add_argument("--relay-fanouts", type=int, default=5, help="events published to every page, one by one")
    # 90: a page past RELAY_MAX_CHANNELS (100) is closed with 1008, and the translated relay refuses
    # a reopen whose upstream URL would pass 8,000 bytes (about 140 of these channels).
    parser.add_argument("--relay-storm-frames", type=int, default=90,
                        help="subscribe frames of the swap storm, each adding a channel")
    parser.add_argument("--relay-large-sockets", type=int, default=40, help="pages the large event goes to")
    parser.add_argument("--relay-large-mib", type=float, default=5.0, help="the large event's payload, MiB")
    parser.add_argument("--relay-tls-sockets", type=int, default=1000,
                        help="pages per server in the ws:// and wss:// upstream rows (bench/relay_tls.py)")
    parser.add_argument("--revocation-sockets", type=int, default=1000,
                        help="one user's relayed sockets over two replicas, closed by one revocation")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--profile-configs", default="memory,redis", help="which service rows to profile")
    parser.add_argument("--sut-cpu", type=int, default=None, help="the CPU for the system under test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where results.json, report.md and logs go")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.rounds, args.users = 1.0, 1, 4
        args.flatness, args.relay_sockets, args.relay_events = "200,1000", 20, 10
        args.relay_fanouts, args.relay_storm_frames, args.relay_large_sockets, args.relay_large_mib = 2, 30, 5, 1.0
        args.relay_tls_sockets = 20
        args.revocation_sockets = 20
        args.connections, args.state_sizes = "64", "1000,2000"
        args.parts = ",".join(p for p in args.parts.split(",") if p != "profile")
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    return args


def machine() -> dict[str, object]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
        "kernel": platform.release(),
    }


def log(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def exchange_rows(
    children: Children, args: argparse.Namespace, cores: Cores, emulator: Child, sessions_file: Path,
    configs: list[Config], helpers: list[Child], redis_ports: dict[str, list[int]] | None = None,
    trips: dict[str, float] | None = None, with_upstream: bool = True,
    redis_url: str = "", use: list[RedisFootprint] | None = None,
) -> list[Row]:
    started = {config.key: start_config(children, config, cores, wait=False) for config in configs}
    for child in started.values():
        wait_http(child, "/livez")
    assert emulator.port is not None
    runners = {
        config.key: load_runner(f"http://127.0.0.1:{started[config.key].port}", sessions_file, "service",
                                args.seconds, args.concurrency, cores, "/v1/realtime/token")
        for config in configs
    }
    runners["upstream"] = load_runner(f"http://127.0.0.1:{emulator.port}", sessions_file, "upstream", args.seconds,
                                      args.concurrency, cores, "/v1/account/jwts")
    rows = {c.key: Row(c.key, c.label, c.target) for c in configs}
    rows["upstream"] = Row("upstream", f"Appwrite emulator alone ({args.emulator}), no service", False)
    processes: dict[str, Child] = {**started, "upstream": emulator}
    if not with_upstream:
        del rows["upstream"], runners["upstream"]
        processes = dict(started)
    for key in rows if not args.smoke else []:
        warm = run_wrk(
            f"http://127.0.0.1:{processes[key].port}", sessions_file=sessions_file, project=PROJECT,
            mode="upstream" if key == "upstream" else "service", seconds=2, concurrency=args.concurrency,
            cpus=cores.rest, path="/v1/account/jwts" if key == "upstream" else "/v1/realtime/token",
        )
        if warm.ok == 0:
            raise RuntimeError(f"{key}: no request succeeded during warm-up:\n{processes[key].log_tail()}")
    keys = list(rows)
    for round_index in range(args.rounds):
        order = keys[round_index % len(keys):] + keys[: round_index % len(keys)]
        for key in order:
            target = processes[key]
            others = [c for k, c in processes.items() if k not in (key, "upstream")] + helpers
            sample = measure(target, others, emulator, runners[key])
            rows[key].samples.append(sample)
            log(f"  round {round_index + 1}/{args.rounds} {key:<13} {sample.load.rate:8,.0f}/s  "
                f"p50 {sample.load.p50_ms:6.2f} ms  p99 {sample.load.p99_ms:7.2f} ms  "
                f"CPU {1e6 * sample.cpu / max(1, sample.load.ok):6.0f} µs/exch  errors {sample.load.errors}  "
                f"other load {100 * sample.other_cpu / sample.wall:3.0f}%")
    for key, child in processes.items():
        rows[key].rss_kib = child.rss()
    for key, ports in (redis_ports or {}).items():
        if trips is not None and key in started:
            trips[key] = round_trips(ports, service_child_issued(started[key]), runners[key])
            log(f"  round trips: {key} {trips[key]:.2f} Redis commands per exchange")
            if key == "redis" and use is not None:
                # Right away, while the run's windows still live (1-second windows here).
                use.append(footprint(redis_url, args.users))
    for child in started.values():
        children.stop(child)
    return [rows[c.key] for c in configs] + ([rows["upstream"]] if with_upstream else [])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        wrk_binary()
    except LoadGeneratorMissing as error:
        log(f"bench: {error}")
        return 2
    cores = Cores.split(args.sut_cpu)
    raise_open_files_limit(8192)  # wrk and the service at 1,024 connections
    out: Path = args.out
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    info = machine()
    log(f"bench: {info['cpus']} CPUs ({info['cpu_model']}), Python {info['python']}; {cores.describe()}")
    rows: list[Row] = []
    flat: Flatness | None = None
    relay: RelayResult | None = None
    population: PopulationResult | None = None
    tls: TlsResult | None = None
    profiles: dict[str, Profile] = {}
    trips: dict[str, float] = {}
    redis_use: RedisFootprint | None = None
    by_connections: dict[int, list[Row]] = {}
    sizes: list[StateSize] = []
    two: Replicas | None = None
    revoked: RevocationResult | None = None
    first, second = (int(v) for v in args.flatness.split(","))
    with Children(logs) as children, topologies(cores.rest, "topologies" in args.parts) as rigs:
        if {"exchange", "connections", "replicas", "flatness", "profile"} & set(args.parts):
            emulator = start_emulator(children, cores.rest, lean=args.emulator == "lean")
            sessions = create_sessions(emulator, args.users)
            sessions_file = write_sessions(sessions, out / "sessions.txt")
            redis_child, redis_url = start_redis(children, cores.rest, logs)
            assert emulator.port is not None
            configs = configurations(emulator.port, redis_url, args.log_level, {t.key: t.url for t in rigs})
            by_key = {c.key: c for c in configs}
            memory_config = by_key["memory"]
            assert redis_child.port is not None
            redis_ports = {"redis": [redis_child.port], **{t.key: t.data_ports for t in rigs}}
            if "exchange" in args.parts:
                log(f"exchange: {args.rounds} round(s) of {args.seconds:g} s per configuration, "
                    f"{args.concurrency} connections, {args.users} sessions")
                used: list[RedisFootprint] = []
                rows = exchange_rows(children, args, cores, emulator, sessions_file, configs, [redis_child],
                                     redis_ports, trips, redis_url=redis_url, use=used)
                redis_use = used[0] if used else None
            if "connections" in args.parts:
                for count in (int(c) for c in args.connections.split(",")):
                    # As shipped the service refuses (503) past UPSTREAM_MAX_CONCURRENCY (64) calls in
                    # flight, where the floor queues: raised to the connection count, both answer all.
                    memory = by_key["memory"]
                    wider = replace(memory, label=f"{memory.label}, UPSTREAM_MAX_CONCURRENCY={count}",
                                    env={**memory.env, "UPSTREAM_MAX_CONCURRENCY": str(count)})
                    pair = [by_key["floor"], wider]
                    log(f"connections: floor and memory at {count} connections")
                    wide = argparse.Namespace(**{**vars(args), "concurrency": count,
                                                 "rounds": max(1, args.rounds // 2)})
                    by_connections[count] = exchange_rows(children, wide, cores, emulator, sessions_file, pair, [],
                                                          with_upstream=False)
            if "replicas" in args.parts:
                log("replicas: one and two service replicas on one standalone Redis")
                two = replicas_bench(children, by_key["redis"], cores, sessions_file, args.seconds, args.concurrency,
                                     redis_child, max(1, args.rounds // 2))
            if "flatness" in args.parts:
                log(f"flatness: RSS of a fresh service (memory state) after {first:,} and {second:,} exchanges")
                flat = flatness(children, memory_config, cores, sessions_file, args.concurrency, first, second, log)
            for key in args.profile_configs.split(",") if "profile" in args.parts else []:
                log(f"profile: py-spy on '{by_key[key].label}' for {args.profile_seconds:g} s under load")
                found_profile = profile_service(children, by_key[key], cores, sessions_file, args.profile_seconds,
                                                args.concurrency, out, log)
                if found_profile is not None:
                    profiles[key] = found_profile
            children.stop(redis_child)
            children.stop(emulator)
        if "state" in args.parts:
            sizes = state_sizes([int(n) for n in args.state_sizes.split(",")], cores, log)
        if "relay" in args.parts:
            log(f"relay: {args.relay_sockets:,} relayed sockets, {args.relay_events} timestamped events")
            relay = relay_bench(children, cores, out, args.relay_sockets, probes=2 if args.smoke else 10,
                                events=args.relay_events, users=4 if args.smoke else 20, log=log)
            scale = Sizes(args.relay_sockets, args.relay_fanouts, args.relay_storm_frames, args.relay_large_sockets,
                          round(args.relay_large_mib * 2**20))
            log(f"relay at population scale: {scale}")
            population = population_bench(children, cores, out, scale, log)
            log(f"relay by upstream scheme: {args.relay_tls_sockets:,} pages per server, ws:// and wss://")
            tls = tls_bench(children, cores, out, args.relay_tls_sockets, log)
        if "revocation" in args.parts:
            log(f"revocation: {args.revocation_sockets:,} sockets of one user on two replicas, one revocation")
            revoked = revocation_bench(children, cores, args.revocation_sockets, max(1, args.rounds // 2), log)
    rules: list[tuple[str, float, float | None]] = []
    if "rules" in args.parts:
        log("rules: what the event rules cost per relayed event")
        rules = measure_rules(2_000 if args.smoke else 20_000, 2 if args.smoke else 5)
    elapsed = time.monotonic() - began
    found = targets({r.key: r for r in rows}, flat, relay, sizes, population)
    row_by_key = {r.key: r for r in rows}
    print(f"\n{info['cpus']} CPUs, {info['cpu_model']}, Python {info['python']}; {cores.describe()}")
    print(f"{args.concurrency} connections; medians of {args.rounds} interleaved round(s) of {args.seconds:g} s; "
          "CPU is the measured process's user+sys time per successful exchange (range: min-max over rounds); "
          "target ratios are medians of per-round ratios\n")
    if rows:
        print(text_table(rows))
        loads = [sample.other_cpu / sample.wall for row in rows for sample in row.samples]
        print(f"\nother processes on the machine (not the benchmark's) used {100 * sum(loads) / len(loads):.0f}% "
              f"of one CPU on average during these runs, {100 * max(loads):.0f}% at most")
    if trips:
        print("\nRedis round trips per exchange (client commands under MONITOR / exchanges issued; a Cluster's "
              "are concurrent, one per slot): " + ", ".join(f"{k} {v:.2f}" for k, v in trips.items()))
    if redis_use is not None:
        print(f"Redis footprint (standalone, right after the run): {redis_use.keys:,} keys, {redis_use.bytes:,} bytes "
              f"for {redis_use.sessions} active sessions = {redis_use.keys_per_session:.1f} keys and "
              f"{redis_use.bytes_per_session:,.0f} bytes per session ({redis_use.per_scope}); "
              f"{redis_use.bytes_per_user:,.0f} bytes per active user with an IP of their own; "
              f"maxmemory per 100k active users: {maxmemory_mib(redis_use):,.0f} MiB")
    for count, wide_rows in by_connections.items():
        print(f"\nat {count} connections:\n" + text_table(wide_rows))
        if len(wide_rows) == 2:
            cpu_x = paired(wide_rows[1], wide_rows[0], lambda s: s.cpu / max(1, s.load.ok))
            p99_x = paired(wide_rows[1], wide_rows[0], lambda s: s.load.p99_ms)
            print(f"memory vs floor at {count} connections (medians of per-round ratios): CPU per exchange "
                  f"{cpu_x or 0:.2f}x, p99 {p99_x or 0:.2f}x")
    if two is not None:
        print("\n" + two.text())
    if sizes:
        print("\n" + state_text(sizes))
    if flat is not None:
        print(f"\nmemory flatness: RSS {flat.first_rss_kib / 1024:.1f} MiB after {flat.first_at:,} exchanges, "
              f"{flat.second_rss_kib / 1024:.1f} MiB after {flat.second_at:,} "
              f"({flat.ratio:.3f}x, {flat.seconds:.0f} s)")
    if relay is not None:
        print(relay_text(relay))
    if population is not None:
        print(population_text(population))
    if tls is not None:
        print(tls_text(tls))
    if revoked is not None:
        print(revoked.text())
    if rules:
        print("\n" + rules_text(rules, len(rules_frame())))
    for key, profile in profiles.items():
        row = row_by_key.get(key)
        print(f"\nprofile of '{key}'" + (f" (µs scaled to its {row.cpu_us:.0f} µs per exchange)" if row else ""))
        print(profile.render(row.cpu_us if row else None))
    judged = not args.smoke
    print("\ntargets" + ("" if judged else " (smoke run: not judged)") + ":")
    print(targets_text(found, judged))
    print(f"\nbench: done in {elapsed:.0f} s")
    (out / "results.json").write_text(json.dumps({
        "machine": info, "pinning": cores.describe(), "smoke": args.smoke, "seconds": args.seconds,
        "rounds": args.rounds, "concurrency": args.concurrency, "emulator": args.emulator,
        "rows": [r.to_json() for r in rows], "flatness": flat.to_json() if flat else None,
        "relay": relay.to_json() if relay else None, "round_trips": trips,
        "relay_population": population.to_json() if population else None,
        "relay_tls": tls.to_json() if tls else None,
        "redis_footprint": redis_use.to_json() if redis_use else None,
        "maxmemory_mib_per_100k_users": round(maxmemory_mib(redis_use)) if redis_use else None,
        "connections": {str(c): [r.to_json() for r in rs] for c, rs in by_connections.items()},
        "state_sizes": [s.to_json() for s in sizes],
        "replicas": two.to_json() if two else None,
        "revocation": revoked.to_json() if revoked else None,
        "event_rules_us_per_event": {name: {"plain": plain, "translating_added": added}
                                     for name, plain, added in rules},
        "profiles": {k: p.to_json() for k, p in profiles.items()},
        "targets": [{"name": t.name, "shown": t.shown, "verdict": t.verdict} for t in found],
        "elapsed_seconds": round(elapsed, 1),
    }, indent=2))
    (out / "report.md").write_text(
        (markdown_table(rows) + "\n\n" if rows else "") + targets_markdown(found) + "\n"
    )
    return 0


def maxmemory_mib(use: RedisFootprint) -> float:
    """100k users' keys at MEMORY USAGE, twice over: allocator fragmentation and the replication and
    client buffers Redis counts against maxmemory, with room for bursts of new sessions."""
    return 2 * 100_000 * use.bytes_per_user / 2**20


def relay_text(relay: RelayResult) -> str:
    lines = [f"\nrelay (open-files soft limit {relay.open_files_limit:,}):"]
    for attempt in relay.attempts:
        line = (f"  {attempt.env_note}: {attempt.opened:,}/{attempt.wanted:,} sockets in {attempt.open_seconds:.1f} s, "
                f"service RSS +{(attempt.rss_after_kib - attempt.rss_before_kib) / 1024:.1f} MiB "
                f"= {attempt.kib_per_socket:.1f} KiB per socket")
        if attempt.failures:
            line += f"; stopped at the first failure: {attempt.failures}"
        lines.append(line)
    delays = relay.measured.delays
    if delays:
        d, r = delays["direct"], delays["relayed"]
        lines.append(f"  event delivery: direct p50 {d['p50_ms']:.2f} / p99 {d['p99_ms']:.2f} ms; relayed p50 "
                     f"{r['p50_ms']:.2f} / p99 {r['p99_ms']:.2f} ms; added p50 {relay.added_ms('p50_ms'):+.2f} / "
                     f"p99 {relay.added_ms('p99_ms'):+.2f} ms ({r['n']} samples; lost {delays['lost']}; "
                     f"background sockets still open {delays['still_open']})")
    return "\n".join(lines)
