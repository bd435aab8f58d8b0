"""One outbound exchange of a plugin: the checks of every hop, then httpcore on a checked socket.

For each hop (the first request, then each redirect when the operator enabled them, at most
``MAX_HOPS``) in this order: the origin against the effective allowlist, the secrets its
headers name against their host bindings, the body against ``max_request_bytes``, the
resolved address against the address rules (:class:`CheckedBackend`, at connect time), the
response body against ``max_response_bytes``, all before one absolute deadline. Any refusal
is an :class:`Outcome` carrying the plugin's code and the rule; third-party errors are
converted here, at the boundary, and nothing else escapes.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import httpcore

from forgeoned.adapters.http.backend import CheckedBackend, Resolver
from forgeoned.adapters.http.outcome import Outcome, refused
from forgeoned.core.abi import CONNECTION, DENIED, INVALID, NOT_FOUND, REFUSED, TIMEOUT, TOO_LARGE
from forgeoned.core.abi import HostOutcome as O
from forgeoned.core.http_grant import MAX_HOPS, HttpGrant
from forgeoned.core.http_wire import SECRET_TEMPLATE, HttpRequest, Target, WireProblem, parse_url
from forgeoned.core.origins import OriginPattern, allows
from forgeoned.errors import OutboundRule as R

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


class Exchange:
    """Sends one plugin request, hop by hop; :meth:`run` never raises for the network."""

    def __init__(
        self,
        allowed: frozenset[OriginPattern],
        grant: HttpGrant,
        resolver: Resolver,
        ssl_context: ssl.SSLContext,
        secret: Callable[[str], bytes | None],
        deadline: float,
    ) -> None:
        self.allowed = allowed
        self.grant = grant
        self.resolver = resolver
        self.ssl_context = ssl_context
        self.secret = secret
        self.deadline = deadline
        self.connected: list[str] = []  # every address a connection was made to

    def run(self, request: HttpRequest) -> Outcome:
        method, target, body = request.method, request.target, request.body
        for hop in range(MAX_HOPS + 1):
            rule = R.NOT_GRANTED if hop == 0 else R.REDIRECT_NOT_GRANTED
            if not allows(self.allowed, target.scheme, target.host, target.port):
                code = DENIED if hop == 0 else REFUSED
                outcome = O.DENIED if hop == 0 else O.REFUSED
                return refused(code, outcome, rule, target.origin, "origin not allowed")
            headers = self._headers(request.headers, target)
            if isinstance(headers, Outcome):
                return headers
            if len(body) > self.grant.max_request_bytes:
                return refused(
                    TOO_LARGE,
                    O.TOO_LARGE,
                    R.MAX_REQUEST_BYTES,
                    target.origin,
                    f"request body of {len(body)} bytes",
                )
            result = self._send(method, target, headers, body)
            location = _location(result)
            if location is None or not self.grant.follow_redirects:
                return result
            hop_target = parse_url(location, base=target)
            if isinstance(hop_target, WireProblem):
                return refused(CONNECTION, O.CONNECTION, None, target.origin, hop_target.message)
            target = hop_target
            if result.status in (301, 302, 303) and method not in ("GET", "HEAD"):
                method, body = "GET", b""
        return refused(
            REFUSED,
            O.REFUSED,
            R.TOO_MANY_REDIRECTS,
            target.origin,
            f"more than {MAX_HOPS} redirects",
        )

    def _headers(
        self, headers: tuple[tuple[str, str], ...], target: Target
    ) -> list[tuple[str, str]] | Outcome:
        """The headers with every ``{{secret:NAME}}`` bound to ``target.host`` filled in."""
        out = []
        for name, template in headers:
            value = template
            for secret in SECRET_TEMPLATE.findall(template):
                if not self.grant.credential_bound(secret, target.host):
                    return refused(
                        DENIED,
                        O.DENIED,
                        R.SECRET_NOT_BOUND,
                        target.origin,
                        f"credential {secret!r} is not bound to {target.host}",
                    )
                raw = self.secret(secret)
                if raw is None:
                    return refused(
                        NOT_FOUND,
                        O.NOT_FOUND,
                        None,
                        target.origin,
                        f"credential {secret!r} not found",
                    )
                text = raw.decode("utf-8", "replace").strip()
                if any(c in text for c in "\r\n\0"):
                    return refused(
                        INVALID,
                        O.INVALID,
                        R.HEADER_INJECTION,
                        target.origin,
                        f"credential {secret!r} holds CR/LF/NUL",
                    )
                value = value.replace("{{secret:" + secret + "}}", text)
            out.append((name, value))
        return out

    def _send(
        self, method: str, target: Target, headers: list[tuple[str, str]], body: bytes
    ) -> Outcome:
        backend = CheckedBackend(self.resolver, self.grant.rules, self.deadline, self.connected)
        origin = httpcore.Origin(target.scheme.encode(), target.host.encode(), target.port)
        url = httpcore.URL(
            scheme=target.scheme, host=target.host, port=target.port, target=target.path
        )
        cap = self.grant.max_response_bytes
        try:
            with (
                httpcore.HTTPConnection(
                    origin, ssl_context=self.ssl_context, network_backend=backend
                ) as conn,
                conn.stream(
                    method, url, headers=headers, content=_content(method, body)
                ) as response,
            ):
                length = _content_length(response.headers)
                if length is not None and length > cap:
                    return self._too_large(target, length)
                received = bytearray()
                for chunk in response.iter_stream():
                    received += chunk
                    if len(received) > cap:
                        return self._too_large(target, len(received))
                status = response.status
                got = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers]
        except httpcore.TimeoutException as exc:
            return refused(TIMEOUT, O.TIMEOUT, R.TIMEOUT, target.origin, str(exc) or "timeout")
        except (
            httpcore.NetworkError,
            httpcore.ProtocolError,
            httpcore.UnsupportedProtocol,
            ssl.SSLError,
            OSError,
        ) as exc:
            if (why := backend.refusal) is not None:
                where = f"{target.origin} ({why.address})"
                return refused(REFUSED, O.REFUSED, why.rule, where, str(why))
            return refused(CONNECTION, O.CONNECTION, None, target.origin, str(exc))
        return Outcome(
            0, O.OK, destination=target.origin, status=status, headers=got, body=bytes(received)
        )

    def _too_large(self, target: Target, size: int) -> Outcome:
        return refused(
            TOO_LARGE,
            O.TOO_LARGE,
            R.MAX_RESPONSE_BYTES,
            target.origin,
            f"response body of {size}+ bytes, cap {self.grant.max_response_bytes}",
        )


def _content(method: str, body: bytes) -> bytes | None:
    """The body to send: None (no Content-Length) only for an empty GET-like request."""
    return body if body or method in ("POST", "PUT", "PATCH") else None


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for key, value in headers:
        if key.lower() == b"content-length" and value.strip().isdigit():
            return int(value)
    return None


def _location(result: Outcome) -> str | None:
    if result.outcome is not O.OK or result.status not in _REDIRECTS:
        return None
    for key, value in result.headers:
        if key.lower() == "location":
            return value
    return None
