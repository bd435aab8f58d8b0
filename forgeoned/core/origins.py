"""Origin patterns for outbound HTTP: what a manifest asks for and what an operator grants.

A pattern is ``scheme://host:port``: scheme ``http`` or ``https``, the port always written, no
path. ``*.`` may stand for exactly one leftmost label (``http://*.svc.example:8080`` matches
``a.svc.example`` but neither ``svc.example`` nor ``a.b.svc.example``), the way a TLS
wildcard certificate does. A host is matched as lower-case ASCII (write IDNs in punycode).

The effective allowlist of a plugin is the *intersection* of two pattern sets (its request
and the operator's grant); with one-label wildcards the intersection of two patterns is again
a pattern or nothing, so :func:`intersect` computes it exactly and the effective set is a
plain set of patterns that :func:`allows` checks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

SCHEMES: Final = ("http", "https")
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_LABEL: Final = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST_RE: Final = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_PATTERN_RE: Final = re.compile(r"^(https?)://(\*\.)?([^/:\[\]]+|\[[0-9a-fA-F:.]+\]):(\d{1,5})$")
MAX_PATTERNS: Final = 64


def valid_host(host: str) -> bool:
    """A lower-case DNS name or an IP literal (IPv6 without brackets)."""
    if len(host) > 253:
        return False
    if HOST_RE.match(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True, order=True)
class HostPattern:
    """A host, or ``*.suffix`` (``wildcard``): exactly one label before ``suffix``."""

    host: str
    wildcard: bool = False

    def matches(self, host: str) -> bool:
        if not self.wildcard:
            return host == self.host
        head, dot, rest = host.partition(".")
        return bool(head) and dot == "." and rest == self.host

    def __str__(self) -> str:
        return f"*.{self.host}" if self.wildcard else self.host


def parse_host_pattern(raw: object) -> HostPattern:
    """``api.example.com`` or ``*.svc.example``; ValueError saying what is wrong."""
    if not isinstance(raw, str):
        raise ValueError(f"{raw!r} is not a host name")  # noqa: TRY004 (a config value)
    wildcard = raw.startswith("*.")
    host = raw[2:] if wildcard else raw
    if not valid_host(host) or "*" in host or (wildcard and not HOST_RE.match(host)):
        raise ValueError(f"{raw!r} is not a host name (lower case, '*.' only as first label)")
    return HostPattern(host, wildcard)


@dataclass(frozen=True, slots=True, order=True)
class OriginPattern:
    scheme: str
    host: HostPattern
    port: int

    def matches(self, scheme: str, host: str, port: int) -> bool:
        return scheme == self.scheme and port == self.port and self.host.matches(host)

    def __str__(self) -> str:
        host = str(self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"


def parse_origin_pattern(raw: object) -> OriginPattern:
    """``https://api.example.com:443``; ValueError naming the problem."""
    if not isinstance(raw, str):
        raise ValueError(f"{raw!r} is not an origin pattern")  # noqa: TRY004
    m = _PATTERN_RE.match(raw)
    if m is None:
        raise ValueError(f"{raw!r} is not scheme://host:port (scheme http or https)")
    scheme, star, host, port = m.group(1), m.group(2), m.group(3), int(m.group(4))
    if not 1 <= port <= 65535:
        raise ValueError(f"{raw!r}: port {port} is outside 1..65535")
    host = host.strip("[]")
    if host != host.lower():
        raise ValueError(f"{raw!r}: write the host in lower case")
    return OriginPattern(scheme, parse_host_pattern((star or "") + host), port)


def parse_origin_patterns(raw: object) -> frozenset[OriginPattern]:
    if not isinstance(raw, list) or len(raw) > MAX_PATTERNS:
        raise ValueError(f"must be a list of at most {MAX_PATTERNS} scheme://host:port patterns")
    return frozenset(parse_origin_pattern(item) for item in raw)


def intersect(a: OriginPattern, b: OriginPattern) -> OriginPattern | None:
    """The pattern matching exactly what both match, or None when nothing does."""
    if a.scheme != b.scheme or a.port != b.port:
        return None
    if a.host == b.host:
        return a
    if a.host.wildcard and not b.host.wildcard and a.host.matches(b.host.host):
        return b
    if b.host.wildcard and not a.host.wildcard and b.host.matches(a.host.host):
        return a
    return None  # two different exact hosts, or two different one-label wildcards


def intersect_all(
    asked: Iterable[OriginPattern], granted: Iterable[OriginPattern]
) -> frozenset[OriginPattern]:
    granted = tuple(granted)
    out = set()
    for a in asked:
        for g in granted:
            both = intersect(a, g)
            if both is not None:
                out.add(both)
    return frozenset(out)


def allows(patterns: Iterable[OriginPattern], scheme: str, host: str, port: int) -> bool:
    return any(p.matches(scheme, host, port) for p in patterns)
