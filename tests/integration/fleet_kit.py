"""A real registry plus an in-process daemon following it: the fleet-delivery test bench."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from daemon_kit import Env, InProcess, in_process, plugin, plugin_wat
from registry_kit import Registry, registry

from forgeoned.cli import main as forgeonectl

REPO = "plugins/hello"


def big_plugin(name: str, version: str, pad: int) -> bytes:
    """A signed plugin padded with a ``pad``-byte data segment (for the size cap)."""
    from daemon_kit import KEY, manifest

    from forgeoned.cli.devtools import make_signed_plugin

    text = plugin_wat(f"{name}@{version}").replace(
        '(memory (export "memory") 1)',
        f'(memory (export "memory") 4) (data (i32.const 8192) "{"A" * pad}")',
    )
    return make_signed_plugin(text, manifest(name, version), KEY)


def source_toml(name: str, reference: str, **extra: object) -> str:
    lines = [f'name = "{name}"', f'reference = "{reference}"']
    for key, value in ({"plain_http": True, "interval_s": 3600, "timeout_s": 2} | extra).items():
        text = str(value).lower() if isinstance(value, bool) else repr(value).replace("'", '"')
        lines.append(f"{key} = {text}")
    return "[[sources]]\n" + "\n".join(lines) + "\n"


def push(reg: Registry, tmp: Path, data: bytes, tag: str, trust: Path,
         creds: Path | None = None) -> None:  # fmt: skip
    f = tmp / f"push-{tag}.wasm"
    f.write_bytes(data)
    args = ["push", str(f), reg.ref(REPO, tag), "--trust", str(trust), "--plain-http"]
    if creds is not None:
        args += ["--credentials", str(creds)]
    assert forgeonectl(args) == 0


@dataclass
class Fleet:
    reg: Registry
    env: Env
    d: InProcess
    tmp: Path

    @property
    def trust(self) -> Path:
        return self.env.root / "trusted.d"

    def push(self, data: bytes, tag: str = "stable", creds: Path | None = None) -> None:
        push(self.reg, self.tmp, data, tag, self.trust, creds)

    def ctl(self, *args: str) -> int:
        return forgeonectl(["--socket", self.env.socket, *args])

    def running(self, name: str = "hello") -> str:
        view = self.d.view(name)
        assert view.state == "running"
        return str(view.version)


@contextmanager
def fleet(tmp: Path, sources: str = "", auth: tuple[str, str] | None = None,
          first: bytes | None = None, extra: str = "") -> Iterator[Fleet]:  # fmt: skip
    """A registry with ``first`` (default hello 1.0.0) pushed as ``stable``, and a daemon
    following ``oci://…/plugins/hello:stable`` as source ``hello`` (plus ``sources``, in
    which ``{registry}`` stands for the registry's HOST:PORT)."""
    with registry(tmp / "registry", auth) as reg:
        (tmp / "daemon").mkdir(exist_ok=True)  # a test may have mounted its state there
        env = Env(tmp / "daemon")
        creds = None
        if auth is not None:
            (env.root / "creds").mkdir(mode=0o700)
            creds = env.root / "creds" / "registry"
            creds.write_text(f"{auth[0]}:{auth[1]}\n")
            creds.chmod(0o600)
            extra += 'credentials_dir = "creds"\n'
        push(reg, tmp, first or plugin("hello", "1.0.0"), "stable", env.root / "trusted.d", creds)
        more = {"credentials": "registry"} if auth else {}
        hello = source_toml("hello", reg.ref(REPO, "stable"), max_bytes=65536, **more)
        env.write_config(extra + hello + sources.replace("{registry}", reg.host))
        with in_process(env) as d:
            d.events.wait("plugin.installed", "hello", timeout=60)
            yield Fleet(reg, env, d, tmp)


@contextmanager
def black_hole() -> Iterator[str]:
    """A TCP listener that accepts and never answers: a registry that hangs (HOST:PORT)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        t.join(5)
        for conn in held:
            conn.close()
        sock.close()
