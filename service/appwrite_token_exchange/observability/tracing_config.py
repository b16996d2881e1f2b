"""The OTEL_* variables read into a TracingConfig (what the standard variables ask for), without
importing OpenTelemetry: settings are read at start whether tracing is on or not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

_SAMPLERS = (
    "always_on", "always_off", "traceidratio",
    "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
)
DEFAULT_SERVICE_NAME = "token-exchange"


class TracingSettingsError(ValueError):
    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable, self.problem = variable, problem


@dataclass(frozen=True)
class TracingConfig:
    """What the OTEL_* variables ask for; built only when tracing is on."""

    endpoint: str  # the full traces URL (.../v1/traces)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold an API key
    timeout_seconds: float = 10.0
    service_name: str = DEFAULT_SERVICE_NAME
    resource: tuple[tuple[str, str], ...] = ()
    sampler: str = "parentbased_always_on"
    sampler_ratio: float = 1.0


def tracing_config(env: Mapping[str, str]) -> TracingConfig | None:
    """None (off) unless OTEL_TRACES_EXPORTER=otlp or an OTLP endpoint is set; OTEL_SDK_DISABLED=true
    and OTEL_TRACES_EXPORTER=none win. Raises TracingSettingsError naming the variable."""

    def get(name: str) -> str:
        return env.get(name, "").strip()

    if get("OTEL_SDK_DISABLED").lower() == "true":
        return None
    exporter = get("OTEL_TRACES_EXPORTER").lower()
    if exporter not in ("", "otlp", "none"):
        raise TracingSettingsError("OTEL_TRACES_EXPORTER", f"must be otlp or none, got {exporter!r}")
    endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base = get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if exporter == "none" or (exporter == "" and not endpoint and not base):
        return None
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        if get(name) and get(name) != "http/protobuf":
            raise TracingSettingsError(name, f"only http/protobuf is supported, got {get(name)!r}")
    if not endpoint:
        endpoint = f"{(base or 'http://localhost:4318').rstrip('/')}/v1/traces"
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        variable = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" if get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") else (
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        raise TracingSettingsError(variable, "must be an http(s) URL such as http://collector:4318")
    headers_name = "OTEL_EXPORTER_OTLP_TRACES_HEADERS" if get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") else (
        "OTEL_EXPORTER_OTLP_HEADERS"
    )
    timeout_name = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" if get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") else (
        "OTEL_EXPORTER_OTLP_TIMEOUT"
    )
    sampler = get("OTEL_TRACES_SAMPLER").lower() or "parentbased_always_on"
    if sampler not in _SAMPLERS:
        raise TracingSettingsError("OTEL_TRACES_SAMPLER", f"must be one of {', '.join(_SAMPLERS)}")
    return TracingConfig(
        endpoint=endpoint,
        headers=_pairs(headers_name, get(headers_name)),
        timeout_seconds=_milliseconds(timeout_name, get(timeout_name)) if get(timeout_name) else 10.0,
        service_name=get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME,
        resource=_pairs("OTEL_RESOURCE_ATTRIBUTES", get("OTEL_RESOURCE_ATTRIBUTES")),
        sampler=sampler,
        sampler_ratio=_ratio(get("OTEL_TRACES_SAMPLER_ARG")) if "ratio" in sampler else 1.0,
    )


def _pairs(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    """`k=v,k2=v2` (W3C Baggage-style, values percent-encoded). The error never quotes a value."""
    pairs = []
    for item in raw.split(","):
        if not item.strip():
            continue
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise TracingSettingsError(name, "must be comma-separated key=value pairs")
        pairs.append((key.strip(), unquote(value.strip())))
    return tuple(pairs)


def _milliseconds(name: str, raw: str) -> float:
    try:
        value = float(raw) / 1000
    except ValueError:
        raise TracingSettingsError(name, f"must be milliseconds, got {raw!r}") from None
    if not 0 < value <= 600:
        raise TracingSettingsError(name, "must be between 1 and 600000 milliseconds")
    return value


def _ratio(raw: str) -> float:
    try:
        value = float(raw) if raw else 1.0
    except ValueError:
        raise TracingSettingsError("OTEL_TRACES_SAMPLER_ARG", f"must be a number, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise TracingSettingsError("OTEL_TRACES_SAMPLER_ARG", "must be between 0 and 1")
    return value
