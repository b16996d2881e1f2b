#!/usr/bin/env bash
# Property-based contract test: schemathesis generates requests from openapi.yaml and sends them
# to the live service (the `demo`: the service in front of the Appwrite emulator, on 127.0.0.1
# only). Every answer must be documented, match its schema and headers, and none may be a 5xx.
#
#   bash tools/contract/schemathesis.sh                    # defaults below
#   MAX_EXAMPLES=50 SEED=1234 bash tools/contract/schemathesis.sh
#
# Environment: PYTHON (default: the active venv's, else the repo's .venv, else python3),
# MAX_EXAMPLES (per operation, default 150), SEED (default: random; schemathesis prints it),
# TIME_LIMIT (seconds for the whole run, default 420), REPORT_DIR (JUnit + HAR reports; default none).
set -euo pipefail

# shellcheck source=tools/contract/python.sh
source "$(dirname "$0")/python.sh"
py="$PYTHON"
max_examples="${MAX_EXAMPLES:-150}"
time_limit="${TIME_LIMIT:-420}"

if ! "$py" -c "import schemathesis" 2>/dev/null; then
  echo "schemathesis.sh: schemathesis is not installed for $py; run: scripts/install-python" >&2
  exit 1
fi

work="$(mktemp -d)"
demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
    kill -TERM "$demo_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$demo_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Two free loopback ports (the OS picks them; nothing else is touched).
read -r port emulator_port < <("$py" - <<'EOF'
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))
for s in sockets:
    s.close()
EOF
)
base="http://127.0.0.1:$port"

# The sign-out routes serve too: the webhook with a key of this run's (schemathesis cannot sign,
# so it meets the refusals), the internal kick with a secret schemathesis sends.
revocation_secret="$("$py" -c 'import secrets; print(secrets.token_urlsafe(24))')"
webhook_key="$("$py" -c 'import secrets; print(secrets.token_urlsafe(24))')"
APPWRITE_WEBHOOK_SIGNATURE_KEY="$webhook_key" \
APPWRITE_WEBHOOK_URL="$base/v1/realtime/webhooks/appwrite" REVOCATION_SECRET="$revocation_secret" \
LOG_LEVEL=error "$py" -m appwrite_token_exchange demo --port "$port" --emulator-port "$emulator_port" >"$work/demo.out" 2>"$work/demo.err" &
demo_pid=$!

# Ready once the demo printed its cookie and /livez answers.
cookie=""
for _ in $(seq 150); do
  if ! kill -0 "$demo_pid" 2>/dev/null; then
    echo "schemathesis.sh: the demo exited early:" >&2
    cat "$work/demo.out" "$work/demo.err" >&2
    exit 1
  fi
  cookie="$(sed -n "s/.*--cookie '\([^']*\)'.*/\1/p" "$work/demo.out" | head -n 1)"
  if [ -n "$cookie" ] && "$py" -c "import urllib.request; urllib.request.urlopen('$base/livez', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
if [ -z "$cookie" ]; then
  echo "schemathesis.sh: the demo did not become ready in 15 s:" >&2
  cat "$work/demo.out" "$work/demo.err" >&2
  exit 1
fi

# Half of the generated Origin headers are the service's own (allowed) origin, so the CORS
# grant and the token are exercised as well as the refusals.
cat >"$work/schemathesis.toml" <<EOF
# Nothing persists between runs, and nothing lands in the work tree (see also
# HYPOTHESIS_STORAGE_DIRECTORY below).
[cache]
enabled = false

[generation]
database = "none"

[dictionaries.allowed-origins]
values = ["$base"]

[parameters]
"header.Origin" = { dictionary = "allowed-origins", probability = 0.5 }

# Most generated preflights are refusals by design (a foreign Origin: 403; no
# Access-Control-Request-Method: 405), which schemathesis would otherwise warn about.
[[operations]]
include-operation-id = "preflightRealtimeToken"
warnings = false

# schemathesis cannot sign a delivery: every one it sends is refused (401), by design.
[[operations]]
include-operation-id = "receiveAppwriteWebhook"
warnings = false

# The coverage phase's negative path parameters crash inside Hypothesis on this Python (SystemError
# "AST constructor recursion depth mismatch" while it describes a filter); the examples and fuzzing
# phases still test these routes, and tests/test_revocation.py every refusal.
[[operations]]
include-path-regex = "^/internal/"

[operations.phases.coverage]
enabled = false
EOF

extra_args=()
if [ -n "${SEED:-}" ]; then
  extra_args+=(--seed "$SEED")
fi
if [ -n "${REPORT_DIR:-}" ]; then
  extra_args+=(--report junit,har --report-dir "$REPORT_DIR")
fi

echo "schemathesis: $base, up to $max_examples cases per operation, at most ${time_limit}s"
status=0
# The WebSocket relay is left out: schemathesis speaks plain HTTP, and a real upgrade would hold
# the connection open (its refusals are checked by tests/test_contract.py instead).
HYPOTHESIS_STORAGE_DIRECTORY="$work/hypothesis" \
  timeout --signal=INT --kill-after=15 "$time_limit" \
  "$py" -c "from schemathesis.cli import schemathesis; schemathesis()" \
  --config-file "$work/schemathesis.toml" --no-color \
  run openapi.yaml \
  --url "$base" \
  --header "Cookie: $cookie" \
  --header "Authorization: Bearer $revocation_secret" \
  --exclude-operation-id connectRealtime \
  --phases examples,coverage,fuzzing \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,missing_required_header \
  --max-examples "$max_examples" \
  "${extra_args[@]}" \
  --workers 2 \
  --request-timeout 5 \
  --max-redirects 0 \
  || status=$?

if [ "$status" -eq 124 ] || [ "$status" -eq 130 ]; then
  echo "schemathesis.sh: the run did not finish within ${time_limit}s" >&2
fi
if [ -s "$work/demo.err" ] && grep -q "Traceback" "$work/demo.err"; then
  echo "schemathesis.sh: the service logged a traceback:" >&2
  cat "$work/demo.err" >&2
  status=1
fi
exit "$status"
