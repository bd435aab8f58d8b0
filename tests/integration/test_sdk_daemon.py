"""The SDKs against the real daemon's provider hooks and outbound HTTP (issue 13 items 3 to 5).

``test_sdk_rust.py`` holds the Rust wrappers to the wire contracts under a fake host; here the
same probe, a C plugin built on ``forgeone.h`` and the guide's hooks example run in a real
daemon: their config comes from ``plugins.conf.d``, their metrics reach ``/metrics``, their
named functions answer, and their requests reach a local server only where the operator
granted the origin (``{{secret:NAME}}`` filled in by the host). The guide's own hooks example
runs in a daemon in ``test_authoring_guide.py``.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from authoring_kit import SDK, SECRET, hooks_operator, need_clang, probe_wasm, scrape
from daemon_kit import KEY, Env, InProcess, drop, in_process
from http_kit import CountingServer

from forgeoned.cli.devtools import make_signed_plugin
from forgeoned.core.http_wire import decode_response, encode_request

METRICS = {
    "requests": {"type": "counter", "help": "By verdict", "labels": {"verdict": ["allow", "deny"]}},
    "queue": {"type": "gauge", "help": "Queue depth"},
}


def call(d: InProcess, plugin: str, fn: str, data: bytes) -> bytes:
    out: bytes = d.daemon.backend.invoke(plugin, data, None, fn)
    return out


def test_the_rust_sdk_probe_uses_every_hook_of_the_real_daemon(tmp_path: Path) -> None:
    with CountingServer() as granted, CountingServer() as other:
        origin = f"http://127.0.0.1:{granted.port}"
        env = Env(tmp_path)
        hooks_operator(env, "probe", origin, "limit = 7\n", "tok")
        manifest: dict[str, Any] = {
            "name": "probe", "version": "1.0.0", "abi": 1, "functions": ["greet"],
            "config": {
                "greeting": {"type": "string", "default": "hello"},
                "limit": {"type": "int"},
            },
            "metrics": METRICS,
            "capabilities": {"http": [origin, f"http://127.0.0.1:{other.port}"]},
        }  # fmt: skip
        drop(env.plugins, "probe.wasm", make_signed_plugin(probe_wasm(), manifest, KEY))
        with in_process(env) as d:

            def cmd(text: str) -> str:
                return d.invoke("probe", text.encode()).decode()

            assert cmd("config greeting") == "some:hello"  # the declared default
            assert cmd("config-int limit") == "int:7"  # the operator's file
            assert cmd("config undeclared") == "none"
            assert call(d, "probe", "greet", b"you") == b"hi you"
            assert cmd("metric add requests verdict=allow 2") == "ok"
            assert cmd("metric add requests verdict=maybe 1") == "err:-3"  # undeclared value
            assert cmd("metric set queue - 4.5") == "ok"
            assert cmd("metric add undeclared - 1") == "err:-2"  # not declared: denied
            assert cmd(f"http GET {origin}/ok") == "200|text/plain|hello"
            assert cmd(f"http POST {origin}/echo ping") == "200|-|ping"
            # asked for in the manifest, not granted by the operator: never connected
            assert cmd(f"http GET http://127.0.0.1:{other.port}/ok") == "err:-2"
            lines = scrape(d)
        assert [r[2]["x-token"] for r in granted.requests] == [SECRET, SECRET]
        assert other.connections == 0
    assert 'forgeone_plugin_requests_total{plugin="probe",verdict="allow"} 2.0' in lines
    assert 'forgeone_plugin_queue{plugin="probe"} 4.5' in lines
    assert 'forgeone_plugin_calls_total{plugin="probe",export="greet",outcome="ok"} 1' in lines


C_PLUGIN = r"""
#include "forgeone.h"

static uint8_t buf[4096];

FORGEONE_DEFINE_ALLOC()
FORGEONE_EXPORT("init") int32_t init(void) { return 0; }
FORGEONE_EXPORT("start") int32_t start(void) { return 0; }
FORGEONE_EXPORT("stop") int32_t stop(void) { return 0; }
FORGEONE_EXPORT("pause") int32_t pause(void) { return 0; }
FORGEONE_EXPORT("resume") int32_t resume(void) { return 0; }
FORGEONE_EXPORT("unload") int32_t unload(void) { return 0; }

static int32_t out_int(int32_t v) {
    char d[12];
    int32_t n = 0;
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    if (v < 0) fo_output("-", 1);
    do {
        d[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n > 0) fo_output(&d[--n], 1);
    return 0;
}

FORGEONE_EXPORT("handle") int32_t handle(const uint8_t *in, int32_t len) {
    return fo_output(in, len);
}

/* greeting: the config value "greeting", then ", " and the input */
FORGEONE_EXPORT("greeting") int32_t greeting(const uint8_t *in, int32_t len) {
    int32_t n = fo_config_get_str("greeting", buf, (int32_t)sizeof buf);
    if (n < 0 || n > (int32_t)sizeof buf) return out_int(n);
    fo_output(buf, n);
    fo_output(", ", 2);
    return fo_output(in, len);
}

/* count: requests += 1 with the input as its label lines; outputs the result code; the
 * gauge queue is set to the number of calls */
static int32_t calls;
FORGEONE_EXPORT("count") int32_t count(const uint8_t *in, int32_t len) {
    if (fo_metric_set_str("queue", "", (double)++calls) != 0) return 9;
    return out_int(fo_metric_add("requests", 8, in, len, 1.0));
}

/* fetch: the input is an encoded request; outputs the encoded response or the code */
FORGEONE_EXPORT("fetch") int32_t fetch(const uint8_t *in, int32_t len) {
    int32_t n = fo_http_request(in, len, buf, (int32_t)sizeof buf);
    if (n < 0) return out_int(n);
    if (n > (int32_t)sizeof buf) return out_int(FO_TOO_LARGE);
    return fo_output(buf, n);
}
"""


def test_a_c_plugin_on_forgeone_h_uses_the_hooks_of_the_real_daemon(tmp_path: Path) -> None:
    need_clang()
    (tmp_path / "hooks.c").write_text(C_PLUGIN)
    flags = "--target=wasm32-unknown-unknown -nostdlib -O2 -Wall -Werror".split()
    subprocess.run(
        ["clang", *flags, f"-I{SDK}/c", "-Wl,--no-entry", "-Wl,--strip-all", "-o", "c.wasm",
         "hooks.c"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    with CountingServer() as server:
        origin = f"http://127.0.0.1:{server.port}"
        (tmp_path / "d").mkdir()
        env = Env(tmp_path / "d")
        hooks_operator(env, "cprobe", origin, 'greeting = "bonjour"\n', "ctok")
        manifest: dict[str, Any] = {
            "name": "cprobe", "version": "1.0.0", "abi": 1,
            "functions": ["greeting", "count", "fetch"],
            "config": {"greeting": {"type": "string", "default": "hello"}},
            "metrics": METRICS,
            "capabilities": {"http": [origin]},
        }  # fmt: skip
        wasm = (tmp_path / "c.wasm").read_bytes()
        drop(env.plugins, "cprobe.wasm", make_signed_plugin(wasm, manifest, KEY))
        with in_process(env) as d:
            assert call(d, "cprobe", "greeting", b"monde") == b"bonjour, monde"
            assert call(d, "cprobe", "count", b"verdict=deny") == b"0"
            assert call(d, "cprobe", "count", b"verdict=maybe") == b"-3"
            request = encode_request("GET", f"{origin}/ok", [["x-token", "{{secret:ctok}}"]])
            status, _headers, body = decode_response(call(d, "cprobe", "fetch", request))
            assert (status, body) == (200, b"hello")
            elsewhere = encode_request("GET", "http://127.0.0.1:9/ok", [])
            assert call(d, "cprobe", "fetch", elsewhere) == b"-2"  # not granted
            lines = scrape(d)
        assert [r[2]["x-token"] for r in server.requests] == [SECRET]
    assert 'forgeone_plugin_requests_total{plugin="cprobe",verdict="deny"} 1.0' in lines
    assert 'forgeone_plugin_queue{plugin="cprobe"} 2.0' in lines


def test_the_sample_built_with_outbound_fetches_through_the_daemon(tmp_path: Path) -> None:
    """The sample's `outbound` feature (``!fetch URL``) against the daemon's http_request: the
    manifest asks for the origin, the operator grants it, the duration lands in
    ``fetch_seconds``; an origin not granted is ``fetch!denied`` and never connected."""
    from conftest_sample import CARGO, RUSTC, SAMPLE_DIR, TARGET, toolchain_missing

    reason = toolchain_missing()
    if reason is not None:
        pytest.skip(f"sample plugin not buildable: {reason}")
    target = SAMPLE_DIR / "target" / "variants" / "outbound"
    env_vars = dict(os.environ, RUSTC=RUSTC, CARGO_TARGET_DIR=str(target))
    subprocess.run(
        [CARGO, "build", "--offline", "--release", "--quiet", "--target", TARGET,
         "--features", "outbound"],
        cwd=SAMPLE_DIR, env=env_vars, check=True, capture_output=True,
    )  # fmt: skip
    wasm = (target / TARGET / "release/forgeone_sample_plugin.wasm").read_bytes()
    manifest = tomllib.loads((SAMPLE_DIR / "manifest.toml").read_text())
    with CountingServer() as server, CountingServer() as other:
        origin = f"http://127.0.0.1:{server.port}"
        manifest["capabilities"]["http"] = [origin]
        (tmp_path / "d").mkdir()
        env = Env(tmp_path / "d")
        hooks_operator(env, "sample", origin, 'greeting = "hola"\n', "api-token")
        drop(env.plugins, "sample.wasm", make_signed_plugin(wasm, manifest, KEY))
        with in_process(env) as d:
            assert d.invoke("sample", f"!fetch {origin}/ok".encode()) == b"fetch=200 bytes=5"
            denied = f"!fetch http://127.0.0.1:{other.port}/ok".encode()
            assert d.invoke("sample", denied) == b"fetch!denied"
            assert d.invoke("sample", b"x") == b"hola 1.0.0 #1 | x"  # commands are not counted
            lines = scrape(d)
        assert len(server.requests) == 1 and other.connections == 0
    assert 'forgeone_plugin_fetch_seconds_count{plugin="sample"} 2' in lines
    assert 'forgeone_plugin_commands_total{plugin="sample",command="fetch"} 2.0' in lines
