#!/usr/bin/env bash
# The OpenAPI contract, outside pytest: openapi.yaml is valid and lints clean, the live service
# keeps it under property-based testing, and a browser example type-checks against TypeScript
# types generated from it. (The response-by-response check of every test and the generated
# Python client run inside pytest: tests/contract.py, tests/test_contract.py,
# tests/test_generated_client.py.)
#
# Needs Python 3.11 with the dev set (scripts/install-python, or `pip install -e '.[dev]'`), Node 20
# and npm. The npm tools install from the committed lock file with `npm ci`.
set -euo pipefail

# shellcheck source=tools/contract/python.sh
source "$(dirname "$0")/python.sh"
py="$PYTHON"
# Redocly: no usage reports, no update checks (this machine reaches only package registries).
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1

started=$SECONDS
step() {
  echo
  echo "== contract: $1 ($((SECONDS - started))s)"
}

step "npm ci (tools/contract)"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

step "openapi-spec-validator"
"$py" -m openapi_spec_validator openapi.yaml

step "redocly lint (recommended-strict)"
(cd "$here" && node_modules/.bin/redocly lint --config redocly.yaml --format=stylish ../../openapi.yaml)

step "schemathesis against the live demo service"
bash "$here/schemathesis.sh"

step "openapi-typescript types + tsc --noEmit example.ts"
rm -rf "$here/generated"
(
  cd "$here"
  node_modules/.bin/openapi-typescript ../../openapi.yaml --redocly openapi-typescript.redocly.yaml \
    --output generated/openapi.d.ts
  node_modules/.bin/tsc --noEmit -p tsconfig.json
)

echo
echo "== contract: all checks passed in $((SECONDS - started))s"
