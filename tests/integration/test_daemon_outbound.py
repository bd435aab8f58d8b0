"""Outbound HTTP through the real daemon: the [http] grant, the host call, its audit and
metrics, and a reload that changes the grant (the plugin is restarted, the new grant holds)."""

from __future__ import annotations

import struct
from pathlib import Path

from daemon_kit import KEY, Env, drop, in_process
from http_kit import WAT, CountingServer

from forgeoned.cli.devtools import make_signed_plugin
from forgeoned.core.http_wire import decode_response, encode_request


def web_plugin(*origins: str) -> bytes:
    caps = {"http": list(origins)}
    manifest = {"name": "web", "version": "1.0.0", "abi": 1, "capabilities": caps}
    return make_signed_plugin(WAT, manifest, KEY)


def grant(origin: str) -> str:
    return f'[http.plugins.web]\nallow = ["{origin}"]\nallow_cidrs = ["127.0.0.1/32"]\n'


def test_the_daemon_grants_counts_audits_and_reloads(tmp_path: Path) -> None:
    with CountingServer() as one, CountingServer() as two:
        first, second = f"http://127.0.0.1:{one.port}", f"http://127.0.0.1:{two.port}"
        env = Env(tmp_path)
        env.write_config(grant(first))
        drop(env.plugins, "web.wasm", web_plugin(first, second))
        with in_process(env) as d:

            def call(url: str) -> tuple[int, bytes]:
                out = d.invoke("web", encode_request("GET", url, []))
                return struct.unpack("<i", out[:4])[0], out[4:]

            code, out = call(first + "/ok")
            assert code > 0 and decode_response(out)[::2] == (200, b"hello")
            code, _ = call(second + "/ok")  # asked for, not granted
            assert code == -2 and two.connections == 0
            (denied,) = d.events.wait("hostcall.denied", "web")
            assert denied.details["rule"] == "not_granted"
            assert second.removeprefix("http://") in str(denied.details["target"])
            stats = d.view("web").stats
            assert stats.http_requests["ok"] == 1 and stats.http_requests["denied"] == 1
            assert d.view("web").capabilities["http"] == [first]

            env.write_config(grant(second))  # the operator moves the grant
            report = d.daemon.backend.reload("uid=0(root)")
            assert report["restarted"] == ["web"]
            assert d.view("web").capabilities["http"] == [second]
            code, _ = call(second + "/ok")
            assert code > 0 and two.connections == 1
            code, _ = call(first + "/ok")
            assert code == -2 and one.connections == 1
