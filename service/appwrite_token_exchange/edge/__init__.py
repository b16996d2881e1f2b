"""HTTP itself, before any route runs.

- `http_server`: the bounded server (header bytes, read timeouts, the drain on SIGTERM);
- `middlewares`: the request context (request id, client IP, CORS, problem answers);
- `health`: /livez and /readyz.
"""
