"""A real forgeoned process hosting the signed Rust sample plugin, for bench/invoke.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from forgeoned.adapters.control.client import ControlClient
from forgeoned.cli.devtools import build_sample
from forgeoned.errors import ForgeonedError

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "examples/sample-plugin"
SAMPLE_WASM = SAMPLE_DIR / "target/wasm32-unknown-unknown/release/forgeone_sample_plugin.wasm"
START_TIMEOUT_S = 120.0
# The daemon with invokes not recorded at all (no plugin.calls summaries, no live records):
# what auditing calls costs, for comparison only (forgeoned itself has no such setting).
UNAUDITED = (
    "import sys\n"
    "from forgeoned.adapters.control.records import ControlRecords\n"
    "ControlRecords.called = lambda self, *args, **kwargs: None\n"
    "from forgeoned.daemon import main\n"
    "sys.exit(main())\n"
)


class SampleDaemon:
    """``forgeoned --config`` in ``root`` with plugins.d holding the signed sample; the daemon's
    code is ``code`` (a checkout: this one by default, another for a before/after run);
    ``audited`` False: invokes are not recorded (:data:`UNAUDITED`)."""

    def __init__(
        self, root: Path, instances: int = 1, code: Path = REPO, audited: bool = True
    ) -> None:
        if not SAMPLE_WASM.is_file():
            raise SystemExit(f"{SAMPLE_WASM} missing: run `make plugins` first")
        self.root = root
        for d in ("plugins.d", "keys", "state", "run", "etc"):
            (root / d).mkdir(parents=True)
        manifest = (SAMPLE_DIR / "manifest.toml").read_text()
        if instances != 1:  # the same sample, allowed more instances (re-signed here)
            manifest = manifest.replace("instances = 1", f"instances = {instances}")
        (root / "etc/manifest.toml").write_text(manifest)
        build_sample(SAMPLE_WASM, root / "keys", root / "plugins.d", root / "etc/manifest.toml")
        (root / "keys/dev.key").unlink()  # the daemon trusts every file in trust_dir
        self.socket = str(root / "run/control.sock")
        config = root / "etc/forgeoned.toml"  # relative paths resolve against root
        config.write_text(
            'mode = "production"\nplugins_dir = "plugins.d"\nstate_dir = "state"\n'
            'trust_dir = "keys"\n[control]\nsocket = "run/control.sock"\n'
            "[metrics]\nenabled = false\n[audit]\njournald = false\n"
        )
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        env["PYTHONPATH"] = str(code)
        entry = ["-m", "forgeoned.daemon"] if audited else ["-c", UNAUDITED]
        self.proc = subprocess.Popen(
            [sys.executable, *entry, "--config", str(config)],
            cwd=code,
            env=env,
            stderr=subprocess.DEVNULL,
        )
        self._wait_running()

    def _wait_running(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"forgeoned exited with {self.proc.returncode}")
            try:
                with ControlClient(self.socket, timeout=5) as client:
                    if any(
                        p["name"] == "sample" and p["state"] == "running"
                        for p in client.list_plugins()
                    ):
                        return
            except ForgeonedError:
                pass
            time.sleep(0.05)  # a benchmark's start-up poll, not a test
        raise SystemExit("the sample plugin did not reach running")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
