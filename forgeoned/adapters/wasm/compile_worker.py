"""Compiling untrusted WebAssembly outside the daemon, bounded, with a content-addressed cache.

Compilation is not protected by the wasm sandbox (a compiler bug or a pathological module can
eat CPU and memory), so it runs in worker processes whose limits are set with ``setrlimit`` in
the child only: an address-space cap for the whole worker, and a CPU-time budget per job (the
soft ``RLIMIT_CPU`` is raised to "CPU used so far + budget" before each job, so a worker can be
reused; going over kills it with SIGXCPU). The parent adds a wall-clock timeout and kills a
worker that misses it. Workers are long-lived so that a swap does not pay a Python start.

Protocol on the worker's stdin/stdout: once started, the worker writes ``R``; then request
``u32 length ‖ wasm``; reply ``u8 status ‖ u32 length ‖ payload`` (status 0: ``u32 n ‖ the
module's interface as n bytes of JSON ‖ the serialized module``, 1: one-line error message).
The wall-clock limit of a compile starts when the worker is ready, so that a fresh worker's
Python start (slow on a busy machine) is not blamed on the module.

The cache of compiled modules is :class:`forgeoned.adapters.wasm.module_cache.ModuleCache`;
:func:`forgeoned.adapters.wasm.module_source.load_module` puts the two together.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import IO, Final

from forgeoned.adapters.wasm.module_cache import ModuleCache, NativeCode
from forgeoned.core.module_interface import ModuleInterface
from forgeoned.errors import (
    ArtifactError,
    ArtifactTooLargeError,
    CompileLimitError,
    ForgeonedError,
    LoadError,
    MalformedModuleError,
)

_HEADER: Final = struct.Struct("<BI")
_LEN: Final = struct.Struct("<I")
HEARTBEAT_S: Final = 1.0
READY: Final = b"R"  # the worker's first byte: imports done, ready to compile
WORKER_START_S: Final = 120.0  # a worker's own start is not counted in a compile's time


__all__ = ["CompileWorkers", "ModuleCache", "NativeCode", "WorkerLimits"]


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    cpu_seconds: int = 30
    memory_bytes: int = 2 << 30
    timeout_s: float = 60.0
    workers: int = 2


class _Worker:
    def __init__(self, limits: WorkerLimits) -> None:
        self.limits = limits
        mem = limits.memory_bytes

        def limit_child() -> None:  # runs in the child between fork and exec
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        self.ready = False
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "forgeoned.adapters.wasm.compile_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            preexec_fn=limit_child,  # noqa: PLW1509 - only setrlimit, no locks taken
            close_fds=True,
            env={**os.environ, "FORGEONED_CPU_BUDGET": str(limits.cpu_seconds)},
        )

    def _handshake(self) -> None:
        """Read the worker's READY byte, once: its Python start is over."""
        assert self.proc.stdout is not None
        if not self.ready:
            if _read_exact(self.proc.stdout, len(READY)) != READY:
                raise EOFError("compile worker did not start")
            self.ready = True

    def request(
        self, wasm: bytes, timeout_s: float, heartbeat: Callable[[], object] | None = None
    ) -> NativeCode:
        """Compile ``wasm`` in this worker; raises :class:`LoadError`/:class:`ArtifactError`."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        result: list[NativeCode | BaseException] = []  # filled by the I/O thread
        started = threading.Event()

        def exchange() -> None:
            try:
                assert self.proc.stdin is not None and self.proc.stdout is not None
                self._handshake()
                started.set()
                self.proc.stdin.write(_LEN.pack(len(wasm)) + wasm)
                self.proc.stdin.flush()
                status, length = _HEADER.unpack(_read_exact(self.proc.stdout, _HEADER.size))
                if status != 0:
                    text = _read_exact(self.proc.stdout, length).decode(errors="replace")
                    result.append(_child_error(text))
                else:
                    result.append(_read_native(self.proc.stdout, length))
            except (OSError, EOFError, struct.error, ValueError) as exc:
                result.append(exc)
            finally:
                started.set()  # also when it failed: the waiter looks at ``result``

        t = threading.Thread(target=exchange, name="forgeoned-compile-io", daemon=True)
        t.start()
        deadline = time.monotonic() + WORKER_START_S
        while not started.is_set() and (left := deadline - time.monotonic()) > 0:
            if not started.wait(min(left, HEARTBEAT_S)) and heartbeat is not None:
                heartbeat()
        if not started.is_set():
            self.kill()
            t.join(5)
            raise CompileLimitError(f"compile worker did not start within {WORKER_START_S:g}s")
        deadline = time.monotonic() + timeout_s
        while t.is_alive() and (left := deadline - time.monotonic()) > 0:
            t.join(min(left, HEARTBEAT_S))
            if t.is_alive() and heartbeat is not None:
                heartbeat()  # a long compile must not look like a hung daemon
        if t.is_alive():
            self.kill()
            t.join(5)
            raise CompileLimitError(f"compile exceeded its wall-clock time limit of {timeout_s:g}s")
        outcome = result[0] if result else EOFError()
        if isinstance(outcome, NativeCode):
            return outcome
        if isinstance(outcome, LoadError | ArtifactError):
            raise outcome
        self.kill()
        raise CompileLimitError(self._death(self.proc.returncode)) from None

    def _death(self, code: int | None) -> str:
        """Why the worker died, in the operator's terms."""
        if code is not None and code < 0:
            sig = signal.Signals(-code)
            if sig is signal.SIGXCPU:
                return f"compile exceeded its CPU time limit of {self.limits.cpu_seconds}s"
            if sig in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGKILL):
                return (
                    f"compile exceeded its memory limit of {self.limits.memory_bytes} bytes "
                    f"(worker killed by {sig.name})"
                )
            return f"compile worker killed by {sig.name}"
        return f"compile worker died (exit {code})"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _child_error(text: str) -> LoadError | ArtifactError:
    """The worker reports ``reason<TAB>message``; keep the reason's error class."""
    reason, _, message = text.partition("\t")
    kinds: dict[str, type[LoadError] | type[ArtifactError]] = {
        MalformedModuleError.reason: MalformedModuleError,
        ArtifactTooLargeError.reason: ArtifactTooLargeError,
    }
    return kinds.get(reason, LoadError)(message or reason)


def _read_native(stream: IO[bytes], length: int) -> NativeCode:
    """A successful reply's payload, the code read straight into one ``bytes`` (no slicing
    copy: it can be tens of megabytes). ValueError if the interface is not one."""
    (n,) = _LEN.unpack(_read_exact(stream, _LEN.size))
    if n > length - _LEN.size:
        raise ValueError("compile worker sent a malformed reply")
    interface = ModuleInterface.from_json(json.loads(_read_exact(stream, n)))
    return NativeCode(interface, _read_exact(stream, length - _LEN.size - n))


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            raise EOFError("compile worker closed its pipe")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class CompileWorkers:
    """At most ``limits.workers`` concurrent compiles, each in a limited worker process."""

    def __init__(self, limits: WorkerLimits, cache: ModuleCache | None) -> None:
        self.limits = limits
        self.cache = cache
        self._idle: SimpleQueue[_Worker] = SimpleQueue()
        self._slots = threading.BoundedSemaphore(limits.workers)
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self.compiled = 0
        self.cache_hits = 0
        self.heartbeat: Callable[[], object] | None = None  # called every HEARTBEAT_S of a wait

    def compile(self, wasm: bytes) -> NativeCode:
        """Compile ``wasm`` in a worker (the cache is the caller's: see ``module_source``);
        raises LoadError or ArtifactError."""
        with self._slots:
            worker = self._take()
            try:
                native = worker.request(wasm, self.limits.timeout_s, self.heartbeat)
            finally:
                if worker.alive:
                    self._idle.put(worker)
        self.compiled += 1
        return native

    def _take(self) -> _Worker:
        try:
            while True:
                worker = self._idle.get_nowait()
                if worker.alive:
                    return worker
        except Empty:
            pass
        worker = _Worker(self.limits)
        with self._lock:
            self._all = [w for w in self._all if w.alive]
            self._all.append(worker)
        return worker

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for w in workers:
            w.kill()


def _serve() -> int:
    """The worker's main loop (child process)."""
    from forgeoned.adapters.wasm.runtime import WasmtimeRuntime

    budget = int(os.environ.get("FORGEONED_CPU_BUDGET", "30"))
    runtime = WasmtimeRuntime()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(READY)
    stdout.flush()
    while True:
        try:
            (length,) = _LEN.unpack(_read_exact(stdin, _LEN.size))
            wasm = _read_exact(stdin, length)
        except EOFError:
            return 0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = int(usage.ru_utime + usage.ru_stime) + 1
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = used + budget if hard == resource.RLIM_INFINITY else min(used + budget, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        try:
            module = runtime.compile(wasm)
            meta = json.dumps(module.interface.to_json(), separators=(",", ":")).encode()
            payload, status = _LEN.pack(len(meta)) + meta + module.serialize(), 0
        except Exception as exc:  # the compiler's verdict goes back to the daemon
            reason = exc.code if isinstance(exc, ForgeonedError) else "load_failed"
            message = " ".join(str(exc).split())[:500]
            payload, status = f"{reason}\t{message}".encode(), 1
        stdout.write(_HEADER.pack(status, len(payload)) + payload)
        stdout.flush()


if __name__ == "__main__":
    sys.exit(_serve())
