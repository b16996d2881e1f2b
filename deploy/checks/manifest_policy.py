"""Check a rendered kustomize output against what the service and its image need.

Schema validity is kubernetes-validate's job; this checks that the pieces agree with
each other, with deploy/Dockerfile and with the service's own settings parser:
probes, ports, the restricted security context, the drain budget, the ConfigMap,
the Secret references, and per topology the replicas, HPA, PDB, NetworkPolicy and
the Ingress or the Gateway API HTTPRoute. Usage:

    manifest_policy.py RENDERED.yaml --profile single|ha
        --ingress none|ingress/same-host|ingress/subdomain|gateway/same-host|gateway/subdomain
        [--image IMAGE_SUMMARY.json] [--settings-python VENV_PYTHON]

(--ingress same-host and subdomain alone mean the ingress/ components.)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

SECRET_KEYS = ("APPWRITE_JWT_SECRET", "REDIS_URL", "STATE_HASH_KEY")
SECRET_NAME = "token-exchange-secrets"  # noqa: S105 - a Secret object's name, not a secret
PUBLIC_PATH = "/v1/realtime"
# Paths that must reach the service from outside, and paths that must not.
ROUTED_PATHS = (PUBLIC_PATH, f"{PUBLIC_PATH}/token", f"{PUBLIC_PATH}/webhooks/appwrite")
# The app's sign-out kick (README "Sign-out at once") is for callers inside the cluster only.
INTERNAL_PATHS = ("/livez", "/readyz", "/metrics", "/", "/internal/v1/users/u1/sockets")
GATEWAY_API = "gateway.networking.k8s.io"
COMPONENTS = ("none", "ingress/same-host", "ingress/subdomain", "gateway/same-host", "gateway/subdomain")
DEFAULT_DRAIN_SECONDS = 20.0
# WebSocket idle timeouts shorter than this would cut quiet relayed sockets.
MIN_WEBSOCKET_TIMEOUT_SECONDS = 300


class Problems:
    def __init__(self, label: str) -> None:
        self.label = label
        self.items: list[str] = []

    def check(self, condition: object, message: str) -> bool:
        if not condition:
            self.items.append(message)
        return bool(condition)


def dig(obj: Any, *keys: str | int, default: Any = None) -> Any:
    for key in keys:
        if isinstance(obj, dict) and isinstance(key, str):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and key < len(obj):
            obj = obj[key]
        else:
            return default
        if obj is None:
            return default
    return obj


def matches(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


def only(docs: list[dict[str, Any]], kind: str, p: Problems) -> dict[str, Any] | None:
    found = [d for d in docs if d.get("kind") == kind]
    p.check(len(found) == 1, f"expected exactly one {kind}, found {len(found)}")
    return found[0] if len(found) == 1 else None


def container_port(container: dict[str, Any], port: int | str) -> int | None:
    for item in container.get("ports", []):
        if port in (item.get("name"), item.get("containerPort")):
            return int(item["containerPort"])
    return None


def check_deployment(
    docs: list[dict[str, Any]], deploy: dict[str, Any], image: dict[str, Any] | None, p: Problems
) -> tuple[dict[str, str], dict[str, Any], dict[str, str]]:
    pod = dig(deploy, "spec", "template", "spec", default={})
    labels = dig(deploy, "spec", "template", "metadata", "labels", default={})
    p.check(
        matches(dig(deploy, "spec", "selector", "matchLabels"), labels),
        "Deployment selector does not match its pod labels",
    )
    containers = pod.get("containers", [])
    p.check(len(containers) == 1, "expected one container")
    c = containers[0] if containers else {}
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})

    def sc(key: str) -> Any:
        return csc.get(key, psc.get(key))

    p.check(sc("runAsNonRoot") is True, "runAsNonRoot must be true")
    uid = sc("runAsUser")
    p.check(isinstance(uid, int) and uid > 0, "runAsUser must be a numeric non-root uid")
    if image:
        p.check(uid == image["uid"], f"runAsUser {uid} differs from the Dockerfile's USER {image['uid']}")
        p.check(sc("runAsGroup") == image["gid"], f"runAsGroup differs from the Dockerfile's gid {image['gid']}")
    p.check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true")
    p.check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
    p.check("ALL" in dig(csc, "capabilities", "drop", default=[]), "capabilities must drop ALL")
    p.check(dig(sc("seccompProfile") or {}, "type") == "RuntimeDefault", "seccompProfile must be RuntimeDefault")
    p.check(pod.get("automountServiceAccountToken") is False, "the pod needs no service account token")

    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            p.check(dig(c, "resources", kind, resource), f"resources.{kind}.{resource} is missing")

    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    tmp = "/tmp"  # noqa: S108 - the container's path, checked, not used
    p.check("emptyDir" in volumes.get(mounts.get(tmp, ""), {}), f"{tmp} must be an emptyDir (read-only root)")

    http = container_port(c, "http")
    p.check(http is not None, "the container needs a port named http")
    if image and http is not None:
        p.check(http in image["expose"], f"containerPort {http} is not EXPOSEd by the Dockerfile {image['expose']}")
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        p.check(dig(c, probe, "httpGet", "path") == path, f"{probe} must GET {path}")
        port = dig(c, probe, "httpGet", "port")
        p.check(port is not None and container_port(c, port) == http, f"{probe} must use the http port")
    if image:
        p.check(not c.get("command") or c.get("command") == image["cmd"][:1], "command differs from the image's CMD")

    # The ConfigMap, the Secret reference and the environment the container will see.
    env_from = c.get("envFrom", [])
    cm_refs = [dig(e, "configMapRef", "name") for e in env_from if "configMapRef" in e]
    secret_refs = [e["secretRef"] for e in env_from if "secretRef" in e]
    configmaps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    p.check(len(cm_refs) == 1 and cm_refs[0] in configmaps, f"envFrom must name the rendered ConfigMap, got {cm_refs}")
    config: dict[str, str] = dict(configmaps.get(cm_refs[0], {}).get("data", {})) if cm_refs else {}
    p.check(
        any(s.get("name") == SECRET_NAME and s.get("optional") is True for s in secret_refs),
        f"envFrom needs secretRef {SECRET_NAME} with optional: true",
    )
    for key in SECRET_KEYS:
        p.check(key not in config, f"{key} is a secret: keep it out of the ConfigMap")
    env = {e["name"]: e for e in c.get("env", [])}
    for name, item in env.items():
        p.check(name not in SECRET_KEYS or "valueFrom" in item, f"{name} must come from the Secret, not a literal")

    # Drain budget: preStop pause + DRAIN_TIMEOUT_SECONDS must fit in the grace period.
    command = dig(c, "lifecycle", "preStop", "exec", "command", default=[])
    pause = dig(c, "lifecycle", "preStop", "sleep", "seconds")
    if pause is None and len(command) == 2 and command[0] == "sleep":
        pause = float(command[1])
    p.check(pause is not None and pause > 0, "a preStop sleep must let endpoints drop before SIGTERM")
    drain = float(config.get("DRAIN_TIMEOUT_SECONDS") or DEFAULT_DRAIN_SECONDS)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    p.check(
        grace > (pause or 0) + drain,
        f"terminationGracePeriodSeconds {grace} must exceed preStop {pause} + DRAIN_TIMEOUT_SECONDS {drain}",
    )
    return labels, c, config


# What a referenced secret stands in as when the service's parser checks a configuration.
_STAND_INS = {"REDIS_URL": "redis://redis:6379/0"}


def check_settings(python: str, config: dict[str, str], env: dict[str, Any], p: Problems) -> None:
    """The ConfigMap (plus stand-ins for referenced secrets) must pass the service's own parser."""
    with tempfile.TemporaryDirectory(prefix="settings-") as stand_ins:
        values = dict(config)
        for name, item in env.items():
            if name.endswith("_FILE") and item.get("value"):
                # A file of a Secret volume, which only exists in the pod: a stand-in file here.
                secret = name.removesuffix("_FILE")
                stand_in = Path(stand_ins) / secret
                stand_in.write_text(_STAND_INS.get(secret, "x" * 32))
                values[name] = str(stand_in)
            elif "value" in item:
                values[name] = item["value"]
            elif dig(item, "valueFrom", "secretKeyRef"):
                values[name] = _STAND_INS.get(name, "x" * 32)
        code = (
            "import json, sys\n"
            "from appwrite_token_exchange.settings import Settings, SettingsError\n"
            "try:\n"
            "    Settings.from_env(json.load(sys.stdin))\n"
            "except SettingsError as error:\n"
            "    sys.exit(str(error))\n"
        )
        result = subprocess.run(  # noqa: S603
            [python, "-c", code], input=json.dumps(values), capture_output=True, text=True, check=False
        )
    p.check(result.returncode == 0, f"the service rejects this configuration: {result.stderr.strip()[-300:]}")


def check_service(
    docs: list[dict[str, Any]], labels: dict[str, str], c: dict[str, Any], p: Problems
) -> dict[str, Any] | None:
    svc = only(docs, "Service", p)
    if svc:
        p.check(matches(dig(svc, "spec", "selector"), labels), "Service selector does not match the pods")
        for port in dig(svc, "spec", "ports", default=[]):
            p.check(
                container_port(c, port.get("targetPort", port["port"])) is not None,
                f"Service targetPort {port.get('targetPort')} is not a container port",
            )
    return svc


def _required_secret_file(pod: dict[str, Any], c: dict[str, Any], path: str, key: str) -> bool:
    """Whether `path` is the file `key` of a Secret volume the container mounts, with the Secret
    required (a missing one keeps the pod from starting instead of starting it without)."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in c.get("volumeMounts", []):
        secret = dig(volumes.get(mount["name"], {}), "secret", default={})
        if secret.get("secretName") and secret.get("optional") is False and path == f"{mount['mountPath']}/{key}":
            return True
    return False


def check_ha(
    docs: list[dict[str, Any]], deploy: dict[str, Any], labels: dict[str, str], c: dict[str, Any], p: Problems
) -> None:
    replicas = dig(deploy, "spec", "replicas", default=1)
    p.check(replicas >= 2, f"ha needs at least 2 replicas, got {replicas}")
    env = {e["name"]: e for e in c.get("env", [])}
    pod = dig(deploy, "spec", "template", "spec", default={})
    for key in ("REDIS_URL", "STATE_HASH_KEY"):
        ref = dig(env.get(key, {}), "valueFrom", "secretKeyRef", default={})
        from_env = ref.get("name") == SECRET_NAME and not ref.get("optional")
        p.check(
            from_env or _required_secret_file(pod, c, str(env.get(f"{key}_FILE", {}).get("value", "")), key),
            f"ha needs {key} from a required Secret: {SECRET_NAME} (secretKeyRef, not optional) or "
            f"{key}_FILE naming the file {key} of a mounted Secret volume that is not optional",
        )
    spread = dig(deploy, "spec", "template", "spec", "topologySpreadConstraints", default=[])
    p.check(
        spread and all(matches(dig(s, "labelSelector", "matchLabels"), labels) for s in spread),
        "ha needs topology spread over its own pods",
    )

    hpa = only(docs, "HorizontalPodAutoscaler", p)
    if hpa:
        p.check(hpa["apiVersion"] == "autoscaling/v2", "the HPA must be autoscaling/v2")
        target = dig(hpa, "spec", "scaleTargetRef", default={})
        p.check(
            target.get("kind") == "Deployment" and target.get("name") == deploy["metadata"]["name"],
            "the HPA must target the Deployment",
        )
        p.check(dig(hpa, "spec", "minReplicas", default=1) >= 2, "the HPA's minReplicas must be at least 2")
        p.check(
            dig(hpa, "spec", "minReplicas", default=1) <= replicas <= dig(hpa, "spec", "maxReplicas", default=0),
            "Deployment replicas outside the HPA's range",
        )
    pdb = only(docs, "PodDisruptionBudget", p)
    if pdb:
        p.check(
            matches(dig(pdb, "spec", "selector", "matchLabels"), labels), "the PDB selector does not match the pods"
        )

    policy = only(docs, "NetworkPolicy", p)
    if policy:
        spec = policy["spec"]
        p.check(matches(dig(spec, "podSelector", "matchLabels"), labels), "the NetworkPolicy does not select the pods")
        p.check(
            set(spec.get("policyTypes", [])) == {"Ingress", "Egress"},
            "the NetworkPolicy must restrict Ingress and Egress",
        )
        http = container_port(c, "http")
        for rule in spec.get("ingress", []):
            p.check(rule.get("from"), "every ingress rule must name its peers")
            for peer in rule.get("from", []):
                p.check(narrow_peer(peer), f"ingress peer {peer} admits more than the proxy's pods")
            p.check(
                [q.get("port") for q in rule.get("ports", [])] in ([http], ["http"]),
                "ingress may only reach the http port",
            )
        egress = {
            (q.get("protocol", "TCP"), q.get("port")) for rule in spec.get("egress", []) for q in rule.get("ports", [])
        }
        wanted = {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6379)}
        p.check(egress == wanted, f"egress must be exactly DNS, Appwrite 443 and Redis 6379, got {sorted(egress)}")


def selector_set(selector: dict[str, Any] | None) -> bool:
    return bool(selector and (selector.get("matchLabels") or selector.get("matchExpressions")))


def narrow_peer(peer: dict[str, Any]) -> bool:
    """A NetworkPolicy peer that names the proxy's pods, not a whole namespace or every pod.

    An ipBlock is taken as narrow (some data planes, e.g. node-level proxies, have no pod to
    select); a podSelector must select by labels, and a namespaceSelector, when present, too
    (an empty one means every namespace).
    """
    if "ipBlock" in peer:
        return len(peer) == 1
    if "namespaceSelector" in peer and not selector_set(peer["namespaceSelector"]):
        return False
    return selector_set(peer.get("podSelector"))


def gateway_duration_seconds(value: str) -> float | None:
    """Gateway API Duration ("1h", "90s", "1m30s", "500ms") in seconds; None if malformed."""
    parts = re.findall(r"([0-9]{1,5})(h|ms|m|s)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(int(n) * scale[u] for n, u in parts)


def path_routed(path: str, matches: list[dict[str, Any]]) -> bool:
    """Whether any HTTPRoute match could send PATH to the backend (Gateway API semantics:
    PathPrefix matches whole path elements, a missing path is PathPrefix "/", and a regular
    expression is assumed to match anything)."""
    for match in matches:
        kind = dig(match, "path", "type", default="PathPrefix")
        value = dig(match, "path", "value", default="/")
        if kind == "Exact" and path == value:
            return True
        if kind == "PathPrefix":
            prefix = value.rstrip("/")
            if not prefix or path == prefix or path.startswith(prefix + "/"):
                return True
        if kind not in ("Exact", "PathPrefix"):
            return True
    return False


def check_origins(hosts: list[str], config: dict[str, str], topology: str, kind: str, p: Problems) -> None:
    """Same host: no ALLOWED_ORIGINS. Subdomain: the app's exact https origins, on other hosts of
    the same site as the route's hosts (so SameSite cookies still reach the service)."""
    origins = [o.strip() for o in config.get("ALLOWED_ORIGINS", "").split(",") if o.strip()]
    if topology == "same-host":
        p.check(not origins, "same-host needs no ALLOWED_ORIGINS: the page and the service share an origin")
        return
    p.check(origins, "subdomain needs ALLOWED_ORIGINS (the app's exact origin)")
    for origin in origins:
        scheme, _, host = origin.partition("://")
        p.check(
            scheme == "https" and host and "/" not in host and host not in hosts,
            f"{origin} must be the app's https origin, not the service's host",
        )
        site = ".".join(host.split(".")[-2:])
        p.check(
            all(h == site or h.endswith("." + site) for h in hosts),
            f"the {kind} hosts {hosts} must be on the same site as {origin} (*.{site}), or the cookie is third-party",
        )


def check_routing(
    docs: list[dict[str, Any]], svc: dict[str, Any] | None, config: dict[str, str], component: str, p: Problems
) -> None:
    ingresses = [d for d in docs if d.get("kind") == "Ingress"]
    routes = [d for d in docs if d.get("kind") == "HTTPRoute"]
    kind, _, topology = component.partition("/")
    p.check(not ingresses or kind == "ingress", "no Ingress expected")
    p.check(not routes or kind == "gateway", "no HTTPRoute expected")
    if kind == "none":
        return
    p.check(
        config.get("TRUSTED_PROXIES", "").strip(),
        "behind a proxy TRUSTED_PROXIES must name its addresses (client IPs and the same-host origin check)",
    )
    if kind == "ingress":
        check_ingress(docs, svc, config, topology, p)
    else:
        check_httproute(docs, svc, config, topology, p)


def check_httproute(
    docs: list[dict[str, Any]], svc: dict[str, Any] | None, config: dict[str, str], topology: str, p: Problems
) -> None:
    route = only(docs, "HTTPRoute", p)
    if not route:
        return
    p.check(route["apiVersion"] == f"{GATEWAY_API}/v1", f"the HTTPRoute must be {GATEWAY_API}/v1")
    spec = route.get("spec", {})

    parents = spec.get("parentRefs", [])
    p.check(parents, "the HTTPRoute must attach to a Gateway (parentRefs)")
    for ref in parents:
        p.check(
            ref.get("group", GATEWAY_API) == GATEWAY_API and ref.get("kind", "Gateway") == "Gateway",
            f"parentRef {ref.get('name')} must be a Gateway",
        )
        p.check(
            ref.get("sectionName"),
            f"parentRef {ref.get('name')} must name the Gateway's HTTPS listener (sectionName): without it the "
            "route attaches to every listener, plain HTTP included, and the session cookie is Secure",
        )

    hosts = spec.get("hostnames", [])
    p.check(hosts, "the HTTPRoute needs hostnames: without them it serves every host of the listener")
    p.check(all("*" not in h for h in hosts), "wildcard hostnames: the origin checks need the exact host")

    rules = spec.get("rules", [])
    p.check(rules, "the HTTPRoute needs explicit rules: the default rule is PathPrefix / (every path)")
    svc_name = dig(svc, "metadata", "name")
    svc_ports = {q.get("port") for q in dig(svc, "spec", "ports", default=[])}
    matches: list[dict[str, Any]] = []
    for rule in rules:
        rule_matches = rule.get("matches", [])
        p.check(rule_matches, "every HTTPRoute rule needs matches: without them it matches PathPrefix / (every path)")
        matches += rule_matches or [{}]
        found = [
            (dig(m, "path", "type", default="PathPrefix"), dig(m, "path", "value", default="/")) for m in rule_matches
        ]
        p.check(
            found == [("PathPrefix", PUBLIC_PATH)],
            f"the HTTPRoute must route exactly {PUBLIC_PATH} (PathPrefix): the token path and the relay, "
            f"not /metrics; got {found}",
        )
        backends = rule.get("backendRefs", [])
        p.check(backends, "every HTTPRoute rule needs a backendRef")
        filters = [f.get("type") for f in rule.get("filters", [])]
        filters += [f.get("type") for b in backends for f in b.get("filters", [])]
        p.check(
            not {"URLRewrite", "RequestRedirect"} & set(filters),
            "no URLRewrite/RequestRedirect: the service serves /v1/realtime as is, and a rewrite could reach /metrics",
        )
        p.check("CORS" not in filters, "CORS belongs to the service (ALLOWED_ORIGINS), not an HTTPRoute filter")
        for backend in backends:
            p.check(
                backend.get("group", "") == "" and backend.get("kind", "Service") == "Service",
                "the HTTPRoute backend must be a Service",
            )
            p.check(svc_name and backend.get("name") == svc_name, "the HTTPRoute backend is not the Service")
            p.check(
                "namespace" not in backend,
                "the HTTPRoute backend must be in the route's namespace (no cross-namespace ReferenceGrant)",
            )
            p.check(
                backend.get("port") in svc_ports,
                f"the HTTPRoute backend port {backend.get('port')} is not a port of the Service {sorted(svc_ports)}",
            )
        for key, value in rule.get("timeouts", {}).items():
            seconds = gateway_duration_seconds(str(value))
            p.check(
                seconds is not None and (seconds == 0 or seconds >= MIN_WEBSOCKET_TIMEOUT_SECONDS),
                f"timeouts.{key} {value} would cut relayed WebSockets: leave it unset, or an hour, or 0s",
            )
    for path in ROUTED_PATHS:
        p.check(path_routed(path, matches), f"the HTTPRoute does not route {path}")
    for path in INTERNAL_PATHS:
        p.check(not path_routed(path, matches), f"the HTTPRoute routes {path}, which must stay in-cluster")
    check_origins(hosts, config, topology, "HTTPRoute", p)


def check_ingress(
    docs: list[dict[str, Any]], svc: dict[str, Any] | None, config: dict[str, str], topology: str, p: Problems
) -> None:
    ing = only(docs, "Ingress", p)
    if not ing:
        return
    p.check(ing["apiVersion"] == "networking.k8s.io/v1", "the Ingress must be networking.k8s.io/v1")
    annotations = dig(ing, "metadata", "annotations", default={})
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        value = annotations.get(f"nginx.ingress.kubernetes.io/{key}", "60")
        p.check(int(value) >= MIN_WEBSOCKET_TIMEOUT_SECONDS, f"{key} {value}s would cut idle relayed WebSockets")
    p.check(
        "nginx.ingress.kubernetes.io/enable-cors" not in annotations,
        "CORS belongs to the service (ALLOWED_ORIGINS), not nginx",
    )
    svc_ports = {q.get("name") for q in dig(svc, "spec", "ports", default=[])} | {
        q.get("port") for q in dig(svc, "spec", "ports", default=[])
    }
    hosts = []
    for rule in dig(ing, "spec", "rules", default=[]):
        hosts.append(rule.get("host"))
        paths = dig(rule, "http", "paths", default=[])
        p.check(
            [(q.get("path"), q.get("pathType")) for q in paths] == [(PUBLIC_PATH, "Prefix")],
            f"the Ingress must route exactly {PUBLIC_PATH} (Prefix): the token path and the relay, not /metrics",
        )
        for q in paths:
            backend = dig(q, "backend", "service", default={})
            p.check(svc and backend.get("name") == svc["metadata"]["name"], "the Ingress backend is not the Service")
            port = backend.get("port", {})
            p.check(port.get("name", port.get("number")) in svc_ports, "the Ingress backend port is not a Service port")
    tls_hosts = {h for t in dig(ing, "spec", "tls", default=[]) for h in t.get("hosts", [])}
    p.check(hosts and set(hosts) <= tls_hosts, "every Ingress host needs TLS (Secure cookies)")
    check_origins(hosts, config, topology, "Ingress", p)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rendered", type=Path)
    parser.add_argument("--profile", choices=("single", "ha"), required=True)
    parser.add_argument(
        "--ingress",
        choices=(*COMPONENTS, "same-host", "subdomain"),
        default="none",
        help="the routing component rendered in, as deploy/k8s/<kind>/<topology>",
    )
    parser.add_argument("--image", type=Path, help="the JSON summary from emulate_build.py")
    parser.add_argument("--settings-python", help="an interpreter that can import the service")
    args = parser.parse_args()
    component = args.ingress if "/" in args.ingress or args.ingress == "none" else f"ingress/{args.ingress}"
    docs = [d for d in yaml.safe_load_all(args.rendered.read_text()) if d]
    image = json.loads(args.image.read_text()) if args.image else None
    p = Problems(f"{args.profile}+{component}")
    deploy = only(docs, "Deployment", p)
    if deploy:
        labels, c, config = check_deployment(docs, deploy, image, p)
        svc = check_service(docs, labels, c, p)
        replicas = dig(deploy, "spec", "replicas", default=1)
        if args.profile == "single":
            p.check(replicas == 1, f"memory state needs exactly 1 replica, got {replicas}")
            p.check(
                not any(d.get("kind") == "HorizontalPodAutoscaler" for d in docs), "memory state must not autoscale"
            )
            redis = {"REDIS_URL", "REDIS_URL_FILE"} & {e["name"] for e in c.get("env", [])}
            p.check(not redis, "single runs on memory state")
        else:
            check_ha(docs, deploy, labels, c, p)
        check_routing(docs, svc, config, component, p)
        if args.settings_python:
            check_settings(args.settings_python, config, {e["name"]: e for e in c.get("env", [])}, p)
    for item in p.items:
        print(f"  policy {p.label}: {item}", file=sys.stderr)
    return 1 if p.items else 0


if __name__ == "__main__":
    sys.exit(main())
