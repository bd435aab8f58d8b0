"""The network under httpcore: resolve, check the address, connect to it, within a deadline.

httpcore asks its network backend to ``connect_tcp(host, port)`` with the URL's host name and
then runs TLS over the stream it gets with ``server_hostname`` = that name. So the check
lives here, at connect time: :class:`CheckedBackend` resolves the name itself (through an
injectable :class:`Resolver`), refuses every address the plugin's :class:`AddressRules`
refuse, and connects to an address it checked. There is no second lookup anywhere, and SNI
and certificate verification are still against the host name.

:class:`DeadlineStream` clamps every read, write and handshake to one absolute deadline, so a
server that trickles a byte at a time cannot stretch a request past it.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Any, Protocol

import httpcore

from forgeoned.core.netrules import AddressRules
from forgeoned.errors import OutboundRule

_now = time.perf_counter


class Resolver(Protocol):
    """Host name → IP address strings, within ``timeout_s`` (raises OSError/TimeoutError)."""

    def resolve(self, host: str, port: int, timeout_s: float) -> Sequence[str]: ...


class SystemResolver:
    """``getaddrinfo`` in a small pool of threads, so that a hung lookup cannot hold a host
    call past its deadline (the lookup itself finishes in the background)."""

    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="forgeoned-dns")

    def resolve(self, host: str, port: int, timeout_s: float) -> Sequence[str]:
        try:
            return [str(ipaddress.ip_address(host))]  # a literal: nothing to look up
        except ValueError:
            pass
        future = self._pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            infos = future.result(timeout=max(timeout_s, 0.0))
        except FutureTimeout:
            future.cancel()
            raise TimeoutError(f"resolving {host} took too long") from None
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Every address ``host`` resolved to is refused; ``address`` is the first, ``rule`` why."""

    host: str
    address: str
    rule: OutboundRule

    def __str__(self) -> str:
        return f"{self.host} resolves to {self.address} ({self.rule.value})"


class DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._deadline - _now()
        if left <= 0:
            raise error("the request's deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # Not the inner stream's write: it loops over send() with the same timeout each
        # time, so a server taking a little at a time could stretch it past the deadline.
        sock = self._inner.get_extra_info("socket")
        if sock is None:
            self._inner.write(buffer, self._left(timeout, httpcore.WriteTimeout))
            return
        view = memoryview(buffer)
        while view:
            sock.settimeout(self._left(timeout, httpcore.WriteTimeout))
            try:
                sent = sock.send(view)
            except TimeoutError as exc:
                raise httpcore.WriteTimeout(str(exc)) from exc
            except OSError as exc:
                raise httpcore.WriteError(str(exc)) from exc
            view = view[sent:]

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = self._left(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, left), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


@dataclass
class CheckedBackend(httpcore.NetworkBackend):
    """Connects only to addresses ``rules`` allow, before ``deadline`` (perf_counter time).
    ``connected`` records every address it connected to (tests and the audit detail); a
    refused destination is kept in ``refusal`` and surfaces through httpcore as a
    ``ConnectError`` (the caller reads ``refusal`` to tell the two apart)."""

    resolver: Resolver
    rules: AddressRules
    deadline: float
    connected: list[str] = field(default_factory=list)
    refusal: Refusal | None = None
    _tcp: httpcore.SyncBackend = field(default_factory=httpcore.SyncBackend)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = self.deadline - _now()
        if left <= 0:
            raise httpcore.ConnectTimeout("the request's deadline passed")
        try:
            addresses = self.resolver.resolve(host, port, left)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        allowed: list[tuple[str, OutboundRule | None]] = []
        refused: list[tuple[str, OutboundRule | None]] = []
        for address in addresses:
            rule = self.rules.refusal(address)
            (refused if rule is not None else allowed).append((address, rule))
        if not allowed:
            if not refused:
                raise httpcore.ConnectError(f"{host} resolves to no address")
            address, rule = refused[0]
            assert rule is not None
            self.refusal = Refusal(host, address, rule)
            raise httpcore.ConnectError(str(self.refusal))
        error: Exception = httpcore.ConnectError(f"cannot connect to {host}")
        for address, _ in allowed:
            left = self.deadline - _now()
            if left <= 0:
                raise httpcore.ConnectTimeout("the request's deadline passed")
            try:
                stream = self._tcp.connect_tcp(
                    address, port, min(timeout or left, left), socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
                continue
            self.connected.append(address)
            return DeadlineStream(stream, self.deadline)
        raise error
