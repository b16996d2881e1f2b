"""What operators see.

- `logs`: structlog configured once (JSON or console), the access log, redaction;
- `log_bounds`: what one client can write: fields cut and escaped, uncharged refusals sampled per IP;
- `log_writer`: log lines written from a thread of their own, so a slow stdout never blocks the loop;
- `log_once`: conditions logged when they appear, not per request;
- `audit`: the audit log's events;
- `request_id`: X-Request-ID, made per request (a caller's own logged beside it), in every log line
  and Appwrite call;
- `metrics`: Prometheus metrics, labelled by route, never by user input;
- `tracing`, `tracing_config`: OpenTelemetry traces, off unless OTEL_* turns them on.
"""
