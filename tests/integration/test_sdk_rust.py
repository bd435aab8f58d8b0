"""The Rust SDK's wrappers against the documented wire contracts of the host imports.

A test-only plugin (``tests/sdk_probe``) calls every wrapper; it runs here under plain
wasmtime with a fake ``forgeone`` module that implements the contracts of
docs/plugin-authoring.md (config_get, metric_*, http_request) and records what the plugin
sent, so the SDK is held to the contract whatever the daemon it is built against supports.
``test_sdk_daemon.py`` runs the same probe against the real daemon's host functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import wasmtime
from authoring_kit import import_sigs, probe_wasm

pytestmark = pytest.mark.rust

I32, F64 = wasmtime.ValType.i32(), wasmtime.ValType.f64()


@dataclass
class FakeHost:
    config: dict[str, str] = field(default_factory=dict)
    metric_result: int = 0
    http_result: int | None = None  # a negative code instead of a response
    http_response: bytes | None = None  # instead of the echo
    metrics: list[tuple[str, str, str, float]] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)
    output: bytearray = field(default_factory=bytearray)

    def echo(self, request: bytes) -> bytes:
        head, _, body = request.partition(b"\n")
        sent = json.loads(head)
        reply = {"status": 201, "headers": [["content-type", "text/x-echo"], ["x-n", "1"]]}
        text = f"{sent['method']} {sent['url']} {sent['headers']} ".encode() + body
        return json.dumps(reply).encode() + b"\n" + text


class Plugin:
    def __init__(self, host: FakeHost) -> None:
        self.host = host
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)

        def mem(caller: Any) -> Any:
            return caller["memory"]

        def read(caller: Any, ptr: int, n: int) -> bytes:
            return bytes(mem(caller).read(caller, ptr, ptr + n))

        def log(caller: Any, level: int, ptr: int, n: int) -> int:
            return 0

        def output(caller: Any, ptr: int, n: int) -> int:
            host.output += read(caller, ptr, n)
            return 0

        def config_get(caller: Any, kp: int, kl: int, bp: int, bl: int) -> int:
            value = host.config.get(read(caller, kp, kl).decode())
            if value is None:
                return -1
            data = value.encode()
            if len(data) <= bl:
                mem(caller).write(caller, data, bp)
            return len(data)

        def metric(op: str) -> Any:
            def call(caller: Any, np: int, nl: int, lp: int, ll: int, v: float) -> int:
                name, labels = read(caller, np, nl).decode(), read(caller, lp, ll).decode()
                host.metrics.append((op, name, labels, v))
                return host.metric_result

            return call

        def http_request(caller: Any, rp: int, rl: int, bp: int, cap: int) -> int:
            request = read(caller, rp, rl)
            host.requests.append(request)
            if host.http_result is not None:
                return host.http_result
            response = host.http_response or host.echo(request)
            if len(response) <= cap:
                mem(caller).write(caller, response, bp)
            return len(response)

        def define(name: str, params: list[Any], results: list[Any], fn: Any) -> None:
            ty = wasmtime.FuncType(params, results)
            linker.define_func("forgeone", name, ty, fn, access_caller=True)

        define("log", [I32] * 3, [I32], log)
        define("output", [I32] * 2, [I32], output)
        define("config_get", [I32] * 4, [I32], config_get)
        for op in ("add", "set", "observe"):
            define(f"metric_{op}", [I32] * 4 + [F64], [I32], metric(op))
        define("http_request", [I32] * 4, [I32], http_request)
        module = wasmtime.Module(engine, probe_wasm())
        exports = linker.instantiate(self.store, module).exports(self.store)
        memory = exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.memory = memory
        self.funcs = {name: f for name, f in exports.items() if isinstance(f, wasmtime.Func)}

    def call(self, export: str, data: bytes) -> tuple[int, bytes]:
        self.host.output.clear()
        ptr = self.funcs["alloc"](self.store, len(data))
        self.memory.write(self.store, data, ptr)
        status = self.funcs[export](self.store, ptr, len(data))
        assert isinstance(status, int)
        return status, bytes(self.host.output)

    def cmd(self, text: str) -> str:
        status, out = self.call("handle", text.encode())
        assert status == 0, out
        return out.decode()


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def plugin(host: FakeHost) -> Plugin:
    return Plugin(host)


def test_lifecycle_named_function_and_application_errors(plugin: Plugin) -> None:
    for export in ("init", "start", "pause", "resume", "stop", "unload", "tick"):
        assert plugin.funcs[export](plugin.store) == 0
    assert plugin.call("greet", b"there") == (0, b"hi there")
    assert plugin.call("greet", b"") == (0, b"hi ")
    assert plugin.call("handle", b"fail") == (7, b"failed on purpose")
    status, out = plugin.call("handle", b"\xff")
    assert status == -3 and out.startswith(b"not UTF-8")


def test_config_values_absent_keys_long_values_and_parsing(plugin: Plugin, host: FakeHost) -> None:
    host.config = {"endpoint": "https://x", "retries": "5", "long": "v" * 5000, "bad": "five"}
    assert plugin.cmd("config endpoint") == "some:https://x"
    assert plugin.cmd("config missing") == "none"
    assert plugin.cmd("config long") == "some:" + "v" * 5000  # the buffer grew once
    assert plugin.cmd("config-int retries") == "int:5"
    assert plugin.cmd("config-int bad") == "err:-3"


def test_metrics_send_the_declared_label_lines(plugin: Plugin, host: FakeHost) -> None:
    assert plugin.cmd("metric add requests verdict=allow 1") == "ok"
    assert plugin.cmd("metric set queue a=1,b=two 2.5") == "ok"
    assert plugin.cmd("metric observe latency_seconds - 0.25") == "ok"
    assert host.metrics == [
        ("add", "requests", "verdict=allow", 1.0),
        ("set", "queue", "a=1\nb=two", 2.5),
        ("observe", "latency_seconds", "", 0.25),
    ]
    host.metric_result = -2
    assert plugin.cmd("metric add undeclared - 1") == "err:-2"


def test_http_request_encoding_and_response_decoding(plugin: Plugin, host: FakeHost) -> None:
    url = 'https://api.example.com:443/v1/it"ems?q=\\é'
    reply = plugin.cmd(f"http POST {url} a\nbody")
    [request] = host.requests
    head, _, body = request.partition(b"\n")
    assert json.loads(head) == {
        "method": "POST",
        "url": url,
        "headers": [["x-token", "{{secret:tok}}"]],
    }
    assert body == b"a\nbody"
    sent_headers = [["x-token", "{{secret:tok}}"]]
    assert reply == f"201|text/x-echo|POST {url} {sent_headers} a\nbody"
    assert (
        plugin.cmd("http GET http://h:80/") == f"201|text/x-echo|GET http://h:80/ {sent_headers} "
    )
    assert host.requests[1].endswith(b"\n")  # no body


def test_http_response_heads_with_escapes(plugin: Plugin, host: FakeHost) -> None:
    head = '{"headers": [["content-type", "t\\u00e9xt/\\ud83d\\ude00"]], "status": 200}'
    host.http_response = head.encode() + b"\n"
    assert plugin.cmd("http GET http://h:80/") == "200|téxt/😀|"
    host.http_response = b'{"status": "x"}\n'
    assert plugin.cmd("http GET http://h:80/") == "err:-3"


def test_http_refusals_and_an_answer_over_the_cap(plugin: Plugin, host: FakeHost) -> None:
    for code in (-2, -3, -4, -5, -6, -7, -8):
        host.http_result = code
        assert plugin.cmd("http GET http://h:80/") == f"err:{code}"
    host.http_result = None
    before = len(host.requests)
    assert plugin.cmd("http-cap 0 http://h:80/").startswith("201|")  # a head fits in 16 KiB
    host.http_response = b'{"status":200,"headers":[]}\n' + b"x" * 20000
    assert plugin.cmd("http-cap 10 http://h:80/") == "err:-7"
    assert len(host.requests) == before + 2  # each made once, never repeated by the SDK
    assert plugin.cmd("http-cap 20000 http://h:80/") == "200|-|" + "x" * 20000


def test_the_rust_imports_are_the_daemons_with_its_signatures() -> None:
    from forgeoned.core.abi import HOOK_FUNCTIONS, HOST_FUNCTIONS

    expected = {n: (s.sig.params, s.sig.results) for n, s in HOST_FUNCTIONS.items()}
    sigs = import_sigs(probe_wasm())
    assert sigs == {name: expected[name] for name in sigs}  # KeyError: not in the daemon's ABI
    assert set(sigs) >= HOOK_FUNCTIONS | {"http_request", "log", "output"}
