"""Environment variables read and checked one by one, every failure naming its variable."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from appwrite_token_exchange.rate_limit import RateLimit, parse_rate_limit

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def canonical_ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address in canonical form: IPv6 compressed and without a zone (`%eth0`), and an
    IPv4-mapped IPv6 address (`::ffff:203.0.113.9`, what a dual-stack socket reports for an
    IPv4 peer) as the IPv4 address it carries."""
    try:
        ip = ipaddress.ip_address(text or "")
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.scope_id is not None:
            return ipaddress.IPv6Address(ip.packed)
    return ip


def in_networks(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Iterable[IpNetwork]) -> bool:
    return any(ip in network for network in networks)


class SettingsError(ValueError):
    """A configuration value is missing or wrong; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class EnvReader:
    """Typed access to environment variables, each failure naming its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise SettingsError(name, "is required")
        return value

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def integer(self, name: str, default: str, low: int, high: int) -> int:
        raw = self.optional(name) or default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(name, f"must be a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(name, f"must be between {low} and {high}, got {value}")
        return value

    def number(self, name: str, default: str, low: float, high: float) -> float:
        raw = self.optional(name) or default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, f"must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(name, f"must be between {low} and {high}, got {value}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            raise SettingsError(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def url(self, name: str) -> str:
        raw = self.required(name).rstrip("/")
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(name, "must be an http(s) URL such as https://cloud.appwrite.io/v1")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise SettingsError(name, "must not carry a query, fragment or credentials")
        return raw

    def origins(self, name: str) -> frozenset[str]:
        origins = set()
        for item in self.text(name, "").split(","):
            item = item.strip().rstrip("/")
            if not item:
                continue
            parts = urlsplit(item)
            if item == "*" or parts.scheme not in ("http", "https") or not parts.hostname:
                raise SettingsError(name, f"{item!r} is not an exact origin like https://app.example.com")
            if parts.path or parts.query or parts.fragment or parts.username:
                raise SettingsError(name, f"{item!r} must be scheme://host[:port] only")
            origins.add(f"{parts.scheme}://{parts.netloc.lower()}")
        return frozenset(origins)

    def networks(self, name: str) -> tuple[IpNetwork, ...]:
        networks = []
        for item in self.text(name, "").split(","):
            if item.strip():
                try:
                    networks.append(ipaddress.ip_network(item.strip(), strict=False))
                except ValueError:
                    raise SettingsError(name, f"{item.strip()!r} is not an IP address or CIDR") from None
        return tuple(networks)

    def rate_limit(self, name: str, default: str) -> RateLimit | None:
        try:
            return parse_rate_limit(self.text(name, default))
        except ValueError as error:
            raise SettingsError(name, str(error)) from None

    def secret(self, name: str) -> str | None:
        """A secret from NAME or from the file NAME_FILE names (the Kubernetes Secret-volume
        convention; one trailing newline is not part of it). Errors never quote the value."""
        file_name = f"{name}_FILE"
        value, path = self.optional(name), self.optional(file_name)
        if path is None:
            return value
        if value is not None:
            raise SettingsError(name, f"{name} and {file_name} are both set; set only one of them")
        try:
            # Read once, at start, before the event loop runs.
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
            raise SettingsError(file_name, f"the file {path!r} cannot be read ({reason})") from None
        text = text.removesuffix("\n").removesuffix("\r")
        if not text.strip():
            raise SettingsError(file_name, f"the file {path!r} is empty")
        return text

    def secrets(self, name: str) -> tuple[str, ...]:
        """Secrets separated by commas (or, in NAME_FILE, by lines too), in order, without repeats."""
        raw = self.secret(name)
        if raw is None:
            return ()
        items = raw.replace("\n", ",").split(",")
        found = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
        if not found:
            raise SettingsError(name, "lists no secret; give one or more comma-separated instance keys, or unset it")
        return found

    def patterns(self, name: str) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.text(name, "").split(",") if p.strip())
