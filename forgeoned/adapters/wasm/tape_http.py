"""Recorded outbound HTTP (``forgeonectl run --record FILE`` / ``--replay FILE``).

:class:`TapeHttpHook` is the plugin's :class:`HttpHook` with a :class:`Tape` in front of the
network. Both ways it first applies the checks that need no network, exactly as the live
hook does: the request encoding (``-3``) and the first hop's origin against the effective
allowlist (``-2``, audited); those refusals are answered again on replay and never taped.
Everything past them is one tape entry: recording runs the live exchange (DNS, connect-time
address rules, secrets, redirects, caps) and writes its outcome; replaying answers from the
next entry and opens no connection and resolves no name. A request other than the recorded
one (method, URL or body) fails the call as a host error: the run faults there.

Entry: ``{"fn": "http_request", "key": "GET https://host:443/path", "body_sha256": HEX,
"headers": [[name, value | "<redacted>"], …], "code": 0, "outcome": "ok", "rule": null,
"destination": …, "detail": …, "status": 200, "response_headers": […], "body": BASE64,
"resubstituted": [NAME, …]}``. Secrets are never written: request header values that carry a
``{{secret:…}}`` template stay templates, those of credential-like headers
(``authorization``, ``cookie``, ``proxy-authorization``, ``x-api-key``) are ``<redacted>``;
a substituted credential echoed back in the response is written as its template and put
back on replay from ``--secret`` (the entry lists it in ``resubstituted``).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Final

from forgeoned.adapters.http.hook import HttpHook
from forgeoned.adapters.http.outcome import Outcome, refused
from forgeoned.adapters.wasm.tape import Tape
from forgeoned.core.abi import DENIED, INVALID
from forgeoned.core.abi import HostOutcome as O
from forgeoned.core.http_wire import (
    SECRET_TEMPLATE,
    HttpRequest,
    WireProblem,
    decode_request,
    encode_response,
)
from forgeoned.core.origins import allows
from forgeoned.errors import OutboundRule, ReplayDivergedError

REDACTED: Final = "<redacted>"
CREDENTIAL_HEADERS: Final = frozenset(
    {"authorization", "cookie", "proxy-authorization", "x-api-key"}
)


def _redacted(request: HttpRequest) -> list[list[str]]:
    out = []
    for name, value in request.headers:
        keep = SECRET_TEMPLATE.search(value) or name.lower() not in CREDENTIAL_HEADERS
        out.append([name, value if keep else REDACTED])
    return out


class TapeHttpHook(HttpHook):
    """An :class:`HttpHook` that records its exchanges, or replays them without a network."""

    def __init__(self, live: HttpHook, tape: Tape) -> None:
        super().__init__(
            live.allowed, live.grant, live.resolver, live.context, live.secret, live.slots
        )
        self.tape = tape

    def request(self, data: bytes, remaining_s: float) -> tuple[Outcome, bytes]:
        request = decode_request(data)
        if isinstance(request, WireProblem):
            return refused(INVALID, O.INVALID, request.rule, "", request.message), b""
        target = request.target
        if not allows(self.allowed, target.scheme, target.host, target.port):
            return refused(
                DENIED, O.DENIED, OutboundRule.NOT_GRANTED, target.origin, "origin not allowed"
            ), b""
        key = f"{request.method} {target.url}"
        digest = hashlib.sha256(request.body).hexdigest()
        if self.tape.replaying:
            return self._replay(key, digest, request)
        result, response = super().request(data, remaining_s)
        self._record(key, digest, request, result)
        return result, response

    def _secrets(self, request: HttpRequest) -> dict[str, str]:
        """The credentials this request's templates name that were substituted (bound)."""
        out = {}
        for name in sorted(request.secret_names()):
            bound = self.grant.credential_bound(name, request.target.host)
            raw = self.secret(name) if bound else None
            text = raw.decode("utf-8", "replace").strip() if raw else ""
            if text:
                out[name] = text
        return out

    def _record(self, key: str, digest: str, request: HttpRequest, result: Outcome) -> None:
        body, headers = result.body, [[k, v] for k, v in result.headers]
        used: list[str] = []
        for name, value in self._secrets(request).items():
            template = "{{secret:" + name + "}}"
            hit = value.encode() in body or any(value in v for _, v in headers)
            if hit:
                used.append(name)
                body = body.replace(value.encode(), template.encode())
                headers = [[k, v.replace(value, template)] for k, v in headers]
        self.tape._put(
            "http_request", key, body_sha256=digest, headers=_redacted(request),
            code=result.code, outcome=result.outcome.value,
            rule=None if result.rule is None else result.rule.value,
            destination=result.destination, detail=result.detail, status=result.status,
            response_headers=headers, body=base64.b64encode(body).decode("ascii"),
            resubstituted=used,
        )  # fmt: skip

    def _replay(self, key: str, digest: str, request: HttpRequest) -> tuple[Outcome, bytes]:
        at = self.tape.position
        entry: dict[str, Any] = self.tape._take("http_request", key)
        if entry.get("body_sha256") != digest:
            raise ReplayDivergedError(
                f"replay diverged at interaction {at + 1}: the plugin sent {key} with another "
                "body than recorded"
            )
        body = base64.b64decode(str(entry.get("body", "")))
        headers = [(str(k), str(v)) for k, v in entry.get("response_headers", [])]
        secrets = self._secrets(request)
        for name in entry.get("resubstituted", []):
            template, value = "{{secret:" + str(name) + "}}", secrets.get(str(name), "")
            body = body.replace(template.encode(), value.encode())
            headers = [(k, v.replace(template, value)) for k, v in headers]
        rule = entry.get("rule")
        try:
            result = Outcome(
                int(entry["code"]), O(entry["outcome"]),
                None if rule is None else OutboundRule(rule),
                str(entry.get("destination", "")), str(entry.get("detail", "")),
                int(entry.get("status", 0)), headers, body,
            )  # fmt: skip
        except (KeyError, ValueError, TypeError) as exc:
            raise ReplayDivergedError(
                f"replay: interaction {at + 1} ({key}) is not a recorded response: {exc}"
            ) from None
        if result.outcome is not O.OK:
            return result, b""
        return result, encode_response(result.status, result.headers, result.body)
