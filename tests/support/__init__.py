"""What the tests are built from, kept apart from the tests themselves (no test imports a conftest):

service          the service under test and its emulator: project, JWT secret, cookie name, the
                 `Emulator` handle, `service_settings`, `exchange` (a token request), `LogLines`
helpers          the emulator's control API (faults, recorded requests) and `assert_problem`
contract         `contract_middleware`: every answer a test provokes must match openapi.yaml
emulator_client  for tests/emulator/: its project and keys, `FakeClock`, the `Emu` client
appwrite_checks  for tests/emulator/: Appwrite error bodies, SDK models, JWT segments
processes        `python -m appwrite_token_exchange` as a child process, free loopback ports
redis_binaries   which server binary a Redis rig runs: redis-server, or valkey-server
redis_server     one real Redis or Valkey server on a free port (optionally with TLS)
redis_cluster    a real 3-node Redis Cluster
redis_sentinel   a real Sentinel set: master, replica and three sentinels, with failover
redis_tls        an openssl-made CA and server certificate, and the TLS arguments of the rigs
monitoring       the alert rules and the dashboard as data, their PromQL parsed
websocket        `HANDSHAKE`: the headers of a WebSocket upgrade sent as a plain request
publisher        `Publisher`: numbered Realtime events published back to back during a socket swap
kinds            the markers redis, subprocess and tools: which tests get them, and a check
                 that a test starting a child process carries the right one
"""
