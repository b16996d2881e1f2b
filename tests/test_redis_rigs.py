"""The Redis rigs themselves (tests/support/redis_cluster.py, tests/support/redis_sentinel.py), with plain redis-py
clients and no service: each is the topology it claims to be, and what a Sentinel failover loses
of a counter written during it, which is where the documented tolerance comes from."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.exceptions import MovedError
from redis.sentinel import Sentinel

from tests.support.redis_cluster import RedisCluster, redis_cluster
from tests.support.redis_sentinel import RedisSentinelSet, redis_sentinel


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    with redis_cluster() as nodes:
        yield nodes


@pytest.fixture
def sentinel() -> Iterator[RedisSentinelSet]:
    with redis_sentinel() as sentinels:
        yield sentinels


def test_the_cluster_spreads_slots_over_three_masters(cluster: RedisCluster) -> None:
    client = cluster.client()
    try:
        masters = {node.port for node in client.get_primaries()}
        assert masters == set(cluster.ports)
        for i in range(30):
            client.set(f"rig:{i}", i)
        owners = {client.get_node_from_key(f"rig:{i}").port for i in range(30)}
        assert owners == set(cluster.ports)
        assert [int(client.get(f"rig:{i}") or -1) for i in range(30)] == list(range(30))
    finally:
        client.close()
    # A non-cluster client on one node is redirected for keys it does not own: the failure a
    # service would meet with a plain redis:// URL pointing at a cluster node.
    plain = redis.Redis(port=cluster.ports[0])
    try:
        with pytest.raises(MovedError):
            for i in range(30):
                plain.get(f"rig:{i}")
    finally:
        plain.close()


def _sentinel_master(sentinels: RedisSentinelSet) -> redis.Redis:
    client = Sentinel([("127.0.0.1", port) for port in sentinels.sentinel_ports], socket_timeout=0.5)
    return client.master_for(sentinels.master_name, socket_timeout=0.5, socket_connect_timeout=0.5)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["planned", "master_killed"])
def test_a_counter_across_a_sentinel_failover(sentinel: RedisSentinelSet, kind: str) -> None:
    """INCRs one at a time through a Sentinel client while the failover runs, each retried after
    a pause until it is acknowledged (bounded). Written to the new master: everything acknowledged
    there. Lost: counts the old master acknowledged after its last replication, at most the one in
    flight when it was killed. A planned failover loses every count the old master took between the
    promotion and its own demotion: the client keeps its connection until the demoted master
    refuses a write (measured here: about 10 s of writes, hundreds of counts)."""
    master = _sentinel_master(sentinel)
    acknowledged = 0
    for _ in range(10):
        master.incr("rig:count")
        acknowledged += 1
    move = sentinel.failover if kind == "planned" else sentinel.kill_master
    outcome: list[int] = []
    mover = threading.Thread(target=lambda: outcome.append(move()))
    mover.start()
    errors = 0
    for _ in range(2_000):
        moving = mover.is_alive()
        try:
            master.incr("rig:count")
            acknowledged += 1
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
            errors += 1
            time.sleep(0.05)
            continue
        if not moving:
            break
        time.sleep(0.02)
    else:
        raise AssertionError("no write was acknowledged after the failover")
    mover.join(timeout=60)
    assert outcome and outcome[0] in sentinel.data_ports
    final = int(master.get("rig:count") or 0)
    master.close()
    lost = acknowledged - final
    assert lost >= 0
    assert final >= 10, "counts replicated before the failover were lost"
    if kind == "master_killed":
        assert lost <= 1, (acknowledged, final)
    print(f"{kind}: acknowledged {acknowledged}, on the new master {final}, lost {lost}, errors {errors}")
