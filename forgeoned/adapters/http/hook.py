"""The ``http_request`` provider hook of one plugin version: decode, bound, send, encode.

:class:`HttpHook` is what :class:`HostCalls` calls with the bytes the plugin wrote and the
time left of its wasm call. It decodes the request (``core/http_wire``), takes one of the
plugin's ``max_concurrent`` slots without waiting (none free: ``-4``), runs an
:class:`Exchange` before ``min(timeout_ms, call deadline)`` and encodes the response. The
slots are shared by every version and instance of the plugin (the factory keeps them per
name), so a swap does not double what one plugin may hold open.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from forgeoned.adapters.http.outcome import Outcome, refused
from forgeoned.core.abi import INVALID, QUOTA
from forgeoned.core.abi import HostOutcome as O
from forgeoned.core.http_grant import HttpGrant
from forgeoned.core.http_wire import WireProblem, decode_request, encode_response
from forgeoned.core.origins import OriginPattern

if TYPE_CHECKING:  # httpcore is loaded only once a plugin is granted an origin (the factory)
    from forgeoned.adapters.http.backend import Resolver

MAX_SECRET_BYTES: Final = 64 * 1024
_now = time.perf_counter


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificate and host-name verification on: the system CAs, or ``ca_file``'s."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def secret_reader(
    directory: Path | None, limit: int = MAX_SECRET_BYTES
) -> Callable[[str], bytes | None]:
    """A credential by name from ``directory`` (never following a symlink), or None."""

    def read(name: str) -> bytes | None:
        if directory is None:
            return None
        try:
            fd = os.open(directory / name, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            return handle.read(limit)

    return read


class HttpHook:
    """Outbound HTTP for one plugin: ``allowed`` is its effective allowlist."""

    def __init__(
        self,
        allowed: frozenset[OriginPattern],
        grant: HttpGrant,
        resolver: Resolver,
        context: ssl.SSLContext,
        secret: Callable[[str], bytes | None],
        slots: threading.BoundedSemaphore,
    ) -> None:
        self.allowed = allowed
        self.grant = grant
        self.resolver = resolver
        self.context = context
        self.secret = secret
        self.slots = slots
        self.last_connected: list[str] = []  # addresses the latest exchange connected to

    def request(self, data: bytes, remaining_s: float) -> tuple[Outcome, bytes]:
        """The outcome and the encoded response (empty unless the outcome is OK)."""
        request = decode_request(data)
        if isinstance(request, WireProblem):
            return refused(INVALID, O.INVALID, request.rule, "", request.message), b""
        if not self.slots.acquire(blocking=False):
            return refused(
                QUOTA,
                O.QUOTA,
                None,
                request.target.origin,
                f"{self.grant.max_concurrent} requests already in flight",
            ), b""
        from forgeoned.adapters.http.client import Exchange  # loaded with the hook's resolver

        try:
            budget = min(self.grant.timeout_ms / 1000.0, max(remaining_s, 0.0))
            exchange = Exchange(
                self.allowed, self.grant, self.resolver, self.context, self.secret, _now() + budget
            )
            self.last_connected = exchange.connected
            result = exchange.run(request)
        finally:
            self.slots.release()
        if result.outcome is not O.OK:
            return result, b""
        return result, encode_response(result.status, result.headers, result.body)
