"""A plugin author's shell for the tests of the SDKs and of docs/plugin-authoring.md.

``AuthorShell`` runs shell snippets as the guide writes them: ``forgeonectl`` and
``forgeoned`` of this checkout first on ``PATH``, ``HOME`` a fresh directory (so ``~/keys``
and ``~/forgeone-try`` are the test's own), and the working directory carried from one
snippet to the next (a ``cd`` in one step holds for the next, as in a terminal).
``background`` starts a long-running command (the daemon) and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime
from daemon_kit import Env, InProcess
from waiting import poll_until

from forgeoned.adapters.control.client import ControlClient
from forgeoned.errors import ForgeonedError

REPO = Path(__file__).resolve().parents[2]
SDK = REPO / "sdk"
# Build outputs a later run can reuse (gitignored, removed by `make clean`).
BUILD_CACHE = REPO / "build" / "sdk-tests"
_TOOLS = {
    "forgeonectl": "from forgeoned.cli import main; sys.exit(main())",
    "forgeoned": "from forgeoned.daemon import main; sys.exit(main())",
}


def need_rust() -> None:
    from conftest_sample import toolchain_missing

    reason = toolchain_missing()
    if reason is not None:
        pytest.skip(f"Rust toolchain: {reason}")


def need_clang() -> None:
    for tool in ("clang", "wasm-ld"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install clang lld)")


class AuthorShell:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        bin_dir = root / "bin"
        bin_dir.mkdir(exist_ok=True)
        for tool, code in _TOOLS.items():
            script = bin_dir / tool
            script.write_text(
                f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(REPO))} exec "
                f'{shlex.quote(sys.executable)} -c "import sys; {code}" "$@"\n'
            )
            script.chmod(0o755)
        self.env = {
            **os.environ,
            "HOME": str(self.home),
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "CARGO_TERM_COLOR": "never",
        }
        self.cwd = self.home

    def run(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``script`` with bash (``set -eu -o pipefail``) where the last one ended."""
        marker = self.root / ".cwd"
        full = f"set -eu -o pipefail\ncd {shlex.quote(str(self.cwd))}\n{script}\npwd > {marker}\n"
        result = subprocess.run(
            ["bash", "-c", full],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode == 0:
            self.cwd = Path(marker.read_text().strip())
        elif check:
            raise AssertionError(
                f"exit {result.returncode}:\n{script}\n--- stdout\n{result.stdout}"
                f"\n--- stderr\n{result.stderr}"
            )
        return result

    @contextlib.contextmanager
    def background(self, command: str, socket: Path) -> Iterator[subprocess.Popen[bytes]]:
        """Run ``command`` (a daemon) until the block ends; ready once ``socket`` answers."""
        log = (self.root / "daemon.log").open("wb")
        proc = subprocess.Popen(
            ["bash", "-c", f"cd {shlex.quote(str(self.cwd))}\nexec {command}"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def answers() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited {proc.returncode}: {self.daemon_log()}")
            with ControlClient(str(socket), timeout=10) as client:
                client.list_plugins()
            return True

        try:
            poll_until(answers, 120, f"{command} to answer", tolerate=(OSError, ForgeonedError))
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
            log.close()

    def daemon_log(self) -> str:
        return (self.root / "daemon.log").read_text(errors="replace")


def import_sigs(wasm: bytes) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each ``forgeone`` import of ``wasm`` with its parameter and result types."""
    module = wasmtime.Module(wasmtime.Engine(), wasm)
    out: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for imp in module.imports:
        assert imp.module == "forgeone" and imp.name is not None, imp.module
        ty = imp.type
        assert isinstance(ty, wasmtime.FuncType)
        out[imp.name] = (tuple(map(str, ty.params)), tuple(map(str, ty.results)))
    return out


@functools.cache
def probe_wasm() -> bytes:
    """The SDK probe plugin (``tests/sdk_probe``: every Rust SDK wrapper behind a command),
    built once per run."""
    need_rust()
    target = BUILD_CACHE / "probe-target"
    env = dict(os.environ, RUSTC="/usr/bin/rustc", CARGO_TARGET_DIR=str(target))
    command = ["/usr/bin/cargo", "build", "--offline", "--release", "--quiet"]
    result = subprocess.run(
        [*command, "--target", "wasm32-unknown-unknown"],
        cwd=REPO / "tests/sdk_probe",
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return (target / "wasm32-unknown-unknown/release/probe.wasm").read_bytes()


# A daemon with the provider hooks and one outbound grant configured (tests of the SDKs).
CONF_DIR = "etc/plugins.conf.d"
SECRET = "s3cr3t-token"


def hooks_operator(env: Env, name: str, origin: str, conf: str, credential: str) -> None:
    """The daemon config of these tests: a scrape port, ``plugins.conf.d/NAME.toml`` holding
    ``conf``, and ``origin`` granted to ``name`` with ``credential`` bound to 127.0.0.1."""
    (env.root / CONF_DIR).mkdir(parents=True, exist_ok=True)
    (env.root / CONF_DIR / f"{name}.toml").write_text(conf)
    (env.root / "creds").mkdir(exist_ok=True)
    (env.root / "creds" / credential).write_text(SECRET)
    env.write_config(
        f'plugin_config_dir = "{CONF_DIR}"\ncredentials_dir = "creds"\n'
        f'[http.plugins.{name}]\nallow = ["{origin}"]\nallow_cidrs = ["127.0.0.1/32"]\n'
        f'[http.plugins.{name}.credentials]\n{credential} = ["127.0.0.1"]\n'
    )
    text = env.config.read_text()
    env.config.write_text(text.replace("enabled = false", 'listen = "127.0.0.1:0"'))


def scrape(d: InProcess) -> list[str]:
    port = d.daemon.metrics.port
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    return list(body.decode().splitlines())
