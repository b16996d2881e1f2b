#!/usr/bin/env bash
# CI check of the deployment files: deploy/Dockerfile, .dockerignore, deploy/k8s/ and
# docs/deploy.md. Runs offline against Kubernetes and without Docker:
#
#   1. lints deploy/Dockerfile (hadolint) and the shell scripts (shellcheck);
#   2. runs the Dockerfile's builder stage on the host (deploy/checks/emulate_build.py):
#      the build context as .dockerignore leaves it, the same COPY lines and the same
#      RUN line (deploy/build-venv.sh) into a fresh venv; then starts the image's CMD,
#      runs its HEALTHCHECK, asks /readyz and /metrics, and checks the SIGTERM drain;
#   3. renders every overlay, and every overlay with every routing component (the Ingress
#      ones in deploy/k8s/ingress/, the Gateway API HTTPRoute ones in deploy/k8s/gateway/)
#      and with the monitoring component (deploy/k8s/components/monitoring), with kustomize
#      (kubectl kustomize);
#   4. validates each rendering: custom resources (HTTPRoute, ServiceMonitor, PrometheusRule) against the JSON schemas
#      vendored in deploy/checks/schemas/ (deploy/checks/validate_crds.py, jsonschema), and
#      everything else against the Kubernetes JSON schemas in strict mode
#      (kubernetes-validate), for the oldest and newest Kubernetes versions we target;
#   5. checks that the manifests agree with each other, with the image and with the
#      service's settings parser (deploy/checks/manifest_policy.py);
#   6. checks that docs/deploy.md names only files that exist, every setting of the
#      ConfigMap, and only metrics that /metrics really serves.
#
# Usage: bash deploy/check.sh            (from anywhere; about a minute, most of it pip)
#
# Needs: bash, and Python 3.11 with venv and pip (the Dockerfile's Python; override with
# PYTHON=...). Debian packages, on a bare bookworm: python3 python3-venv python3-pip.
# Everything else comes from PyPI, locked with hashes in locks/deploy-check.txt (the ranges:
# deploy/requirements-check.txt; scripts/update-locks moves the lock) and installed
# into a temporary venv; set DEPLOY_CHECK_TOOLS=<dir> to keep that venv between runs.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3.11}"
# Kubernetes versions the manifests must validate against ("" = the validator's newest).
k8s_versions=("1.30" "")

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'check.sh: FAILED: %s\n' "$*" >&2; exit 1; }
started=$SECONDS

command -v "$python" >/dev/null || fail "$python not found (set PYTHON to a Python 3.11)"
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || fail "$python is not Python 3.11, the image's Python (deploy/Dockerfile)"

# ---- tools ------------------------------------------------------------------------------
step "tools (locks/deploy-check.txt)"
tools="${DEPLOY_CHECK_TOOLS:-$work/tools}"
if [[ ! -x "$tools/bin/python" ]]; then
    "$python" -m venv "$tools"
fi
if ! "$tools/bin/python" -m pip install --quiet --disable-pip-version-check \
        --require-hashes -r "$repo/locks/deploy-check.txt" >"$work/pip-tools.log" 2>&1; then
    cat "$work/pip-tools.log" >&2
    fail "the check tools did not install (pip install --require-hashes -r locks/deploy-check.txt)"
fi
export PATH="$tools/bin:$PATH"
for tool in python kubectl kubernetes-validate hadolint shellcheck; do
    command -v "$tool" >/dev/null || fail "$tool is missing from the tools venv"
done
printf '%s\n' "$(kubectl version --client 2>/dev/null | tr '\n' ' ')" "$(hadolint --version)" \
    "kubernetes-validate $(kubernetes-validate --version)" "$(shellcheck --version | sed -n 2p)" \
    "jsonschema $(python -c 'from importlib.metadata import version; print(version("jsonschema"))')"

# ---- lint -------------------------------------------------------------------------------
step "lint: hadolint deploy/Dockerfile, shellcheck"
hadolint --no-color --failure-threshold info "$repo/deploy/Dockerfile" || fail "hadolint deploy/Dockerfile"
shellcheck "$repo/deploy/check.sh" "$repo/deploy/build-venv.sh" || fail "shellcheck"
echo "ok"

# ---- the image, emulated --------------------------------------------------------------
step "emulated docker build (builder stage on the host) and smoke test of the image's CMD"
build_log="$work/build.log"
if ! python "$repo/deploy/checks/emulate_build.py" --repo "$repo" --dockerfile deploy/Dockerfile \
        --work "$work/build" --python "$(command -v "$python")" --summary "$work/image.json" \
        --smoke --metrics-out "$work/metrics.txt" >"$build_log" 2>&1 < /dev/null; then
    tail -n 40 "$build_log" >&2
    fail "the image build or its smoke test (full log above, last 40 lines)"
fi
grep -E '^  (FROM|runtime|smoke)|^    (RUN|HEALTHCHECK|/readyz|/metrics|SIGTERM|read-only)' "$build_log"
venv_python="$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["venv_python"])' "$work/image.json")"

# ---- render -----------------------------------------------------------------------------
step "render with kustomize"
k8s="$repo/deploy/k8s"
renders=()        # "file|profile|component", component = none or <kind>/<topology>
render() {        # render DIR OUT
    kubectl kustomize "$1" >"$2" 2>"$2.err" || { cat "$2.err" >&2; fail "kustomize could not render ${1#"$repo"/}"; }
    [[ -s "$2" ]] || fail "kustomize rendered nothing for ${1#"$repo"/}"
}
mapfile -t overlays < <(cd "$k8s/overlays" && find . -mindepth 2 -maxdepth 2 -name kustomization.yaml -printf '%h\n' | sed 's|^\./||' | sort)
# Routing components: Ingress (deploy/k8s/ingress/*) and Gateway API HTTPRoute (deploy/k8s/gateway/*).
mapfile -t components < <(cd "$k8s" && find ingress gateway -mindepth 2 -maxdepth 2 -name kustomization.yaml -printf '%h\n' | sort)
(( ${#overlays[@]} > 0 )) || fail "no overlays found"
for kind in ingress gateway; do
    printf '%s\n' "${components[@]}" | grep -q "^$kind/" || fail "no components found in deploy/k8s/$kind"
done
for overlay in "${overlays[@]}"; do
    case "$overlay" in
        single|ha) ;;
        *) fail "overlay '$overlay' has no policy profile: add it to deploy/check.sh and manifest_policy.py" ;;
    esac
    out="$work/render-$overlay.yaml"
    render "$k8s/overlays/$overlay" "$out"
    renders+=("$out|$overlay|none")
    echo "overlays/$overlay"
    for component in "${components[@]}"; do
        case "$component" in
            ingress/same-host|ingress/subdomain|gateway/same-host|gateway/subdomain) ;;
            *) fail "component '$component' has no policy profile: add it to deploy/check.sh and manifest_policy.py" ;;
        esac
        grep -q '^kind: Component' "$k8s/$component/kustomization.yaml" \
            || fail "$component must be a kustomize Component"
        flat="${component//\//-}"
        combo="$work/combo-$overlay-$flat"
        mkdir -p "$combo"
        rel="$(realpath --relative-to="$combo" "$k8s")"   # kustomize refuses absolute paths
        cat >"$combo/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: ["$rel/overlays/$overlay"]
components: ["$rel/$component"]
EOF
        out="$work/render-$overlay+$flat.yaml"
        render "$combo" "$out"
        renders+=("$out|$overlay|$component")
        echo "overlays/$overlay + $component"
    done
done

# The monitoring component (ServiceMonitor, PrometheusRule, Prometheus admitted by the ha
# NetworkPolicy) on every overlay; its custom resources validate against deploy/checks/schemas.
monitoring="components/monitoring"
grep -q '^kind: Component' "$k8s/$monitoring/kustomization.yaml" || fail "$monitoring must be a kustomize Component"
for overlay in "${overlays[@]}"; do
    combo="$work/combo-$overlay-monitoring"
    mkdir -p "$combo"
    rel="$(realpath --relative-to="$combo" "$k8s")"
    cat >"$combo/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: ["$rel/overlays/$overlay"]
components: ["$rel/$monitoring"]
EOF
    out="$work/render-$overlay+monitoring.yaml"
    render "$combo" "$out"
    for kind in ServiceMonitor PrometheusRule; do
        grep -q "^kind: $kind$" "$out" || fail "overlays/$overlay + $monitoring renders no $kind"
    done
    renders+=("$out|$overlay|none")
    echo "overlays/$overlay + $monitoring"
done

# The example overlay in docs/deploy.md, with the repository where the example expects it.
example="$work/docs-example"
mkdir -p "$example/my-overlay"
ln -s "$repo" "$example/appwrite-token-exchange"
sed -n '/^# my-overlay\/kustomization.yaml/,/^```/p' "$repo/docs/deploy.md" | sed '$d' \
    >"$example/my-overlay/kustomization.yaml"
[[ -s "$example/my-overlay/kustomization.yaml" ]] || fail "docs/deploy.md lost its my-overlay example"
render "$example/my-overlay" "$work/render-docs-example.yaml"
renders+=("$work/render-docs-example.yaml|ha|ingress/same-host")
echo "docs/deploy.md example (ha + same-host)"

# The Gateway API example in docs/deploy.md (components and patches, indented in a list),
# on top of ha in a namespace of its own.
gw_example="$work/docs-gateway-example"
mkdir -p "$gw_example/my-overlay"
ln -s "$repo" "$gw_example/appwrite-token-exchange"
{
    printf '%s\n' "apiVersion: kustomize.config.k8s.io/v1beta1" "kind: Kustomization" "namespace: realtime" \
        "resources: [../appwrite-token-exchange/deploy/k8s/overlays/ha]"
    # shellcheck disable=SC2016 # backticks are literal Markdown here
    sed -n '/^### Gateway API (HTTPRoute)/,/^### [^G]/p' "$repo/docs/deploy.md" \
        | sed -n '/^  ```yaml$/,/^  ```$/p' | sed '1d;$d;s/^  //'
} >"$gw_example/my-overlay/kustomization.yaml"
grep -q '^components:' "$gw_example/my-overlay/kustomization.yaml" \
    || fail "docs/deploy.md lost its Gateway API example (a yaml block under '### Gateway API (HTTPRoute)')"
render "$gw_example/my-overlay" "$work/render-docs-gateway-example.yaml"
renders+=("$work/render-docs-gateway-example.yaml|ha|gateway/same-host")
echo "docs/deploy.md Gateway API example (ha + gateway/same-host)"

# ---- validate ---------------------------------------------------------------------------
step "validate (custom resources: deploy/checks/schemas with jsonschema; the rest: kubernetes-validate --strict, ${k8s_versions[0]} and newest)"
schemas="$repo/deploy/checks/schemas"
self_tested=""
for entry in "${renders[@]}"; do
    file="${entry%%|*}"
    # The Gateway API's HTTPRoute is a custom resource, for which kubernetes-validate has no
    # schema: validate_crds.py checks such documents against the vendored schemas and
    # writes the other documents to $core for kubernetes-validate.
    core="${file%.yaml}.core.yaml"
    custom="$(python "$repo/deploy/checks/validate_crds.py" "$file" --schemas "$schemas" --rest "$core")" \
        || fail "$(basename "$file"): a custom resource does not validate against deploy/checks/schemas"
    if [[ "$custom" != none && -z "$self_tested" ]]; then
        # Once: broken copies of the custom resources must be rejected (the schemas bite).
        python "$repo/deploy/checks/validate_crds.py" "$file" --schemas "$schemas" --self-test \
            || fail "the vendored schemas accept broken documents (validate_crds.py --self-test)"
        self_tested=1
    fi
    for version in "${k8s_versions[@]}"; do
        args=(--strict --quiet)
        [[ -n "$version" ]] && args+=(-k "$version")
        # --quiet prints only warnings and failures; a warning (such as a kind without a
        # schema, i.e. a misspelt kind or apiVersion) fails the check too.
        if ! report="$(kubernetes-validate "${args[@]}" "$core" 2>&1)" || [[ -n "$report" ]]; then
            printf '%s\n' "$report" >&2
            fail "$(basename "$file") does not validate against Kubernetes ${version:-newest}"
        fi
    done
    line="${file##*/render-}: $(grep -c '^kind:' "$file") resources valid"
    [[ "$custom" == none ]] || line+=" ($custom against deploy/checks/schemas)"
    echo "$line"
done
[[ -n "$self_tested" ]] || fail "no rendering has a custom resource: the gateway components went unchecked"

# ---- policy -----------------------------------------------------------------------------
step "manifest policy (deploy/checks/manifest_policy.py)"
for entry in "${renders[@]}"; do
    IFS='|' read -r file profile component <<<"$entry"
    python "$repo/deploy/checks/manifest_policy.py" "$file" --profile "$profile" --ingress "$component" \
        --image "$work/image.json" --settings-python "$venv_python" \
        || fail "policy: $profile + $component"
    echo "$profile + $component: ok"
done

# ---- docs -------------------------------------------------------------------------------
step "docs/deploy.md agrees with the files"
docs="$repo/docs/deploy.md"
[[ -f "$docs" ]] || fail "docs/deploy.md is missing"
while read -r path; do
    [[ -e "$repo/$path" ]] || fail "docs/deploy.md names $path, which does not exist"
done < <(grep -oE '(^|[^A-Za-z0-9_.-])(deploy|docs)/[A-Za-z0-9_./+-]*[A-Za-z0-9_/-]' "$docs" \
           | sed -E 's|^[^a-z]||' | sort -u)
while read -r key; do
    grep -q "\`$key\`" "$docs" || fail "docs/deploy.md does not describe $key (deploy/k8s/base/config.env)"
done < <(sed -nE 's/^([A-Z_]+)=.*/\1/p' "$k8s/base/config.env")
# Metric names: the first column of the table under "## Metrics" must be served by /metrics.
# shellcheck disable=SC2016 # backticks are literal Markdown here
mapfile -t metrics < <(sed -n '/^## Metrics/,/^## /p' "$docs" | sed -nE 's/^\| `([a-z_]+)[{`].*/\1/p')
(( ${#metrics[@]} > 0 )) || fail "docs/deploy.md has no metrics table under '## Metrics'"
for metric in "${metrics[@]}"; do
    grep -qE "^# TYPE ${metric}(_total)? " "$work/metrics.txt" \
        || fail "docs/deploy.md lists metric $metric, which /metrics does not serve"
done
echo "ok: paths, settings and ${#metrics[@]} metrics"

printf '\ncheck.sh: all deployment checks passed in %ss\n' "$((SECONDS - started))"
