"""The ``http_request`` encoding (docs/plugin-authoring.md, *Outbound HTTP*): pure and bounded.

Request, as the plugin writes it: one line of UTF-8 JSON (the *head*: ``method``, ``url``,
optional ``headers`` as ``[name, value]`` pairs), one ``\\n`` byte, then the raw body.
Response, as the host writes it back: ``{"status": N, "headers": [[name, value], ...]}``,
``\\n``, the body. Every rule a request can break is a :class:`WireProblem` saying which;
a CR, LF or NUL in a header is a header-injection attempt (``rule`` set: it is audited).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

from forgeoned.core.manifest import SECRET_RE
from forgeoned.core.origins import DEFAULT_PORTS, SCHEMES, valid_host
from forgeoned.errors import OutboundRule

METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_HEAD_BYTES: Final = 16 * 1024
MAX_URL_BYTES: Final = 2048
MAX_HEADERS: Final = 64
HOST_SET_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_TOKEN: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
_CONTROL: Final = re.compile(r"[\r\n\x00]")
# {{secret:NAME}}, NAME by the manifest's rule for secret names (its pattern, unanchored)
SECRET_TEMPLATE: Final = re.compile(r"\{\{secret:(" + SECRET_RE.pattern[1:-1] + r")\}\}")
_HEAD_KEYS: Final = frozenset({"method", "url", "headers"})


@dataclass(frozen=True, slots=True)
class WireProblem:
    """A request that breaks the encoding (the plugin gets -3); ``rule`` if audited."""

    message: str
    rule: OutboundRule | None = None


class _Invalid(ValueError):
    """Raised inside this module only; the public functions return a WireProblem."""

    def __init__(self, message: str, rule: OutboundRule | None = None) -> None:
        super().__init__(message)
        self.problem = WireProblem(message, rule)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes: its origin and the request target (path and query)."""

    scheme: str
    host: str  # lower case; an IPv6 literal without brackets
    port: int
    path: str

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def authority(self) -> str:
        """The ``Host`` header: the port only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return self.origin + self.path


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: Target
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def secret_names(self) -> frozenset[str]:
        return frozenset(n for _, v in self.headers for n in SECRET_TEMPLATE.findall(v))


def parse_url(url: str, base: Target | None = None) -> Target | WireProblem:
    """An absolute http(s) URL (or, with ``base``, a redirect's ``Location``)."""
    try:
        return _url(url, base)
    except _Invalid as exc:
        return exc.problem


def _url(url: str, base: Target | None) -> Target:
    if len(url.encode()) > MAX_URL_BYTES or any(c <= " " or c == "\x7f" for c in url):
        raise _Invalid(f"url is longer than {MAX_URL_BYTES} bytes or contains spaces/controls")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _Invalid(f"url {url[:80]!r}: {exc}") from None
    if base is not None and not parts.scheme:  # a relative Location: resolved against base
        return _url(urljoin(base.url, url), None)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in SCHEMES:
        raise _Invalid(f"url {url[:80]!r}: scheme must be http or https")
    if parts.username is not None or parts.password is not None:
        raise _Invalid(f"url {url[:80]!r}: credentials in the URL are not allowed")
    if not valid_host(host):
        raise _Invalid(f"url {url[:80]!r}: {host!r} is not a host name or IP address")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, host, port or DEFAULT_PORTS[scheme], path)


def _check_header(name: str, value: str) -> None:
    if _CONTROL.search(name) or _CONTROL.search(value):
        raise _Invalid(f"header {name[:40]!r}: CR, LF or NUL", OutboundRule.HEADER_INJECTION)
    if not _TOKEN.match(name):
        raise _Invalid(f"header name {name[:40]!r} is not an HTTP token")
    if name.lower() in HOST_SET_HEADERS:
        raise _Invalid(f"header {name!r} is set by the host")


def _headers(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or len(raw) > MAX_HEADERS:
        raise _Invalid(f"headers must be a list of at most {MAX_HEADERS} [name, value] pairs")
    out = []
    for pair in raw:
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
        ):
            raise _Invalid(f"header {str(pair)[:60]} is not a [name, value] pair of strings")
        _check_header(pair[0], pair[1])
        out.append((pair[0], pair[1]))
    return tuple(out)


def decode_request(data: bytes) -> HttpRequest | WireProblem:
    """The request a plugin wrote, or what is off the format."""
    try:
        return _request(data)
    except _Invalid as exc:
        return exc.problem


def _request(data: bytes) -> HttpRequest:
    head, _, body = data.partition(b"\n")
    if len(head) > MAX_HEAD_BYTES:
        raise _Invalid(f"request head is over {MAX_HEAD_BYTES} bytes")
    try:
        raw = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Invalid(f"request head is not UTF-8 JSON: {exc}") from None
    if not isinstance(raw, dict) or set(raw) - _HEAD_KEYS:
        raise _Invalid(f"request head must be an object with keys {sorted(_HEAD_KEYS)}")
    method, url = raw.get("method"), raw.get("url")
    if method not in METHODS:
        raise _Invalid(f"method {str(method)[:20]!r} is not one of {sorted(METHODS)}")
    if not isinstance(url, str):
        raise _Invalid("url must be a string")
    headers = _headers(raw.get("headers", []))
    return HttpRequest(str(method), _url(url, None), headers, body)


def encode_request(method: str, url: str, headers: list[list[str]], body: bytes = b"") -> bytes:
    """What a plugin writes (tests, benchmarks, SDKs' reference)."""
    head = {"method": method, "url": url, "headers": headers}
    return json.dumps(head, separators=(",", ":")).encode() + b"\n" + body


def encode_response(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = {"status": status, "headers": [[k.lower(), v] for k, v in headers]}
    return json.dumps(head, separators=(",", ":")).encode() + b"\n" + body


def decode_response(data: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """The inverse of :func:`encode_response` (tests and SDK reference)."""
    head, _, body = data.partition(b"\n")
    raw = json.loads(head)
    return int(raw["status"]), [(k, v) for k, v in raw["headers"]], body
