"""Appwrite token exchange: an httpOnly session cookie in, a short-lived Realtime credential out.

The map of the package (each subpackage's docstring is the map of its room):

- `cli`, `app`: the command line (`token-exchange serve | check-config | demo | emulator`) and the
  app factory that builds everything `serve` runs; `check_config` is the pre-flight check.
- `settings`, `env`, `rate_limit`: every setting declared once, read from the environment at start.
- `exchange`: the token route, `POST /v1/realtime/token`; `relay/`: the WebSocket relay route.
- `access/`: who may call and how often (CSRF/Origin/CORS, client IP, cookie, limits, and the one
  admission sequence both routes run).
- `appwrite/`: talking to Appwrite (the client, token claims, the circuit breaker, its version).
- `state/`: the shared state behind the limits (memory, or Redis in its three topologies).
- `edge/`: HTTP itself (the bounded server, middlewares, request ids, health).
- `observability/`: logs, the audit log, metrics and traces.
- `keys`, `paths`, `problems`, `lifecycle`: app state keys, public paths, problem+json answers, drain.
- `emulator/`, `demo/`: the Appwrite emulator and the demo site; only the CLI's `demo` and
  `emulator` commands load them.
"""

# The only place the version is written: pyproject.toml reads it (setuptools' attr:), and
# scripts/release and tests/test_release.py hold clients/js/package.json, the image tag and the
# release tag to it.
__version__ = "0.1.0"
