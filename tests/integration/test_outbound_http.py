"""http_request through a real wasmtime instance, against local servers that count connections.

The plugin's host services come from the daemon's own factory (manifest ∩ ``[http]`` grant,
a fake resolver injected). Allowed destinations are reached through an explicit
``allow_cidrs = ["127.0.0.1/32"]``; every refused case asserts the plugin's code, the audit
event (rule and destination) and that the refused address saw no connection.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from http_kit import WAT, CountingServer, FakeResolver, http_wat, make_cert, server_tls
from runtime_wat import RecordingAudit

from forgeoned.adapters.wasm.instance import PluginInstance
from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.core.clock import ManualClock
from forgeoned.core.events import EventName
from forgeoned.core.http_grant import parse_http_policy
from forgeoned.core.http_wire import decode_response, encode_request
from forgeoned.core.manifest import Limits
from forgeoned.core.manifest_parse import parse_manifest_obj
from forgeoned.core.stats import PluginStats
from forgeoned.daemon.config import Config
from forgeoned.daemon.host_services import HostServicesFactory


@dataclass
class World:
    runtime: WasmtimeRuntime
    api: CountingServer  # 127.0.0.1, HTTP: api.test / api2.test
    tls: CountingServer  # 127.0.0.1, HTTPS, certificate for api.test
    internal: CountingServer  # 127.0.0.2: loopback, not covered by allow_cidrs
    other: CountingServer  # 127.0.0.1: other.test, requested but never granted
    resolver: FakeResolver
    tmp: Path
    ca_file: Path

    def plugin(self, grant: Mapping[str, object], timeout_ms: int = 5000, pages: int = 2) -> Plugin:
        asked = [
            f"http://api.test:{self.api.port}",
            f"http://api2.test:{self.api.port}",
            f"https://api.test:{self.tls.port}",
            f"https://wrong.test:{self.tls.port}",
            f"http://internal.test:{self.internal.port}",
            f"http://other.test:{self.other.port}",
            f"http://*.meta.test:{self.api.port}",
        ]
        manifest = parse_manifest_obj(
            {"name": "web", "version": "1.0.0", "abi": 1, "capabilities": {"http": asked}}
        )
        table = {"allow_cidrs": ["127.0.0.1/32"], **grant}
        http = parse_http_policy({"ca_file": str(self.ca_file), "plugins": {"web": table}})
        creds = self.tmp / "creds"
        creds.mkdir(exist_ok=True)
        (creds / "api-token").write_bytes(b"s3cret\n")
        config = Config(path=self.tmp / "c.toml", http=http, credentials_dir=creds)
        audit, stats = RecordingAudit(), PluginStats()
        factory = HostServicesFactory(
            config, audit, ManualClock(), lambda _n: stats, None, resolver=self.resolver
        )
        services = factory(manifest)
        limits = Limits(call_timeout_ms=timeout_ms, memory_bytes=max(pages, 256) * 65536)
        module = self.runtime.compile(WAT if pages == 2 else http_wat(pages))
        instance = self.runtime.instantiate(module, limits, services)
        return Plugin(
            instance,
            audit,
            stats,
            lambda: self.runtime.instantiate(module, limits, services),
        )

    def origin(self, host: str = "api.test") -> str:
        return f"http://{host}:{self.api.port}"

    def all_servers(self) -> int:
        return sum(s.connections for s in (self.api, self.tls, self.internal, self.other))


@dataclass
class Plugin:
    instance: PluginInstance
    audit: RecordingAudit
    stats: PluginStats
    another: Callable[[], PluginInstance]  # one more instance with the same host services

    def call(
        self, method: str, url: str, headers: list[list[str]] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        return self.call_on(self.instance, method, url, headers, body)

    def call_on(
        self,
        instance: PluginInstance,
        method: str,
        url: str,
        headers: list[list[str]] | None = None,
        body: bytes = b"",
    ) -> tuple[int, bytes]:
        out = instance.handle(encode_request(method, url, headers or [], body))
        return struct.unpack("<i", out[:4])[0], out[4:]

    def denial(self) -> dict[str, object]:
        (event,) = [e for e in self.audit.events if e.event is EventName.HOSTCALL_DENIED]
        assert event.details["function"] == "http_request"
        return dict(event.details)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("outbound")
    cert, key = make_cert(tmp, "api.test")
    resolver = FakeResolver(
        {
            "api.test": ["127.0.0.1"],
            "api2.test": ["127.0.0.1"],
            "wrong.test": ["127.0.0.1"],
            "internal.test": ["127.0.0.2"],
            "other.test": ["127.0.0.1"],
            "a.meta.test": ["169.254.169.254"],
            "b.meta.test": ["10.1.2.3"],
            "c.meta.test": ["::ffff:127.0.0.2"],
        }
    )
    with (
        WasmtimeRuntime() as runtime,
        CountingServer() as api,
        CountingServer(tls=server_tls(cert, key)) as tls,
        CountingServer(host="127.0.0.2") as internal,
        CountingServer() as other,
    ):
        yield World(runtime, api, tls, internal, other, resolver, tmp, cert)


@pytest.fixture(autouse=True)
def fresh(world: World) -> None:
    for server in (world.api, world.tls, world.internal, world.other):
        server.connections = 0
        server.requests.clear()
        server.redirects.clear()
    world.api.release.clear()
    world.api.arrived.clear()


def test_allowed_get_and_post_reach_the_granted_local_server(world: World) -> None:
    p = world.plugin({"allow": [world.origin()]})
    code, out = p.call("GET", world.origin() + "/ok?x=1")
    assert code == len(out) > 0
    status, headers, body = decode_response(out)
    assert (status, body) == (200, b"hello")
    assert ("x-test", "1") in headers
    code, out = p.call("POST", world.origin() + "/echo", [["content-type", "a/b"]], b"ping\n!")
    assert decode_response(out)[2] == b"ping\n!"
    assert world.api.connections == 2
    method, path, sent, _ = world.api.requests[0]
    assert (method, path, sent["Host"]) == ("GET", "/ok?x=1", f"api.test:{world.api.port}")
    assert p.stats.http_requests["ok"] == 2
    assert p.stats.hostcalls[("http_request", "ok")] == 2
    assert p.audit.events == []


def test_https_verifies_the_certificate_against_the_host_name(world: World) -> None:
    good, wrong = f"https://api.test:{world.tls.port}", f"https://wrong.test:{world.tls.port}"
    p = world.plugin({"allow": [good, wrong]})
    code, out = p.call("GET", good + "/ok")
    assert code > 0 and decode_response(out)[:1] == (200,)
    code, _ = p.call("GET", wrong + "/ok")  # same address, a certificate for another name
    assert code == -8
    assert p.stats.http_requests["connection"] == 1


def test_host_not_granted_is_denied(world: World) -> None:
    p = world.plugin({"allow": [world.origin()]})  # other.test is requested, not granted
    lookups = len(world.resolver.lookups)
    code, _ = p.call("GET", f"http://other.test:{world.other.port}/ok")
    assert code == -2
    d = p.denial()
    assert d["rule"] == "not_granted" and f"other.test:{world.other.port}" in str(d["target"])
    assert world.other.connections == 0 and len(world.resolver.lookups) == lookups
    code, _ = p.call("GET", "http://unlisted.test:80/")  # not even in the manifest
    assert code == -2 and world.all_servers() == 0


@pytest.mark.parametrize(
    ("host", "rule"),
    [("internal.test", "loopback"), ("a.meta.test", "metadata"), ("b.meta.test", "private"),
     ("c.meta.test", "loopback")],
)  # fmt: skip
def test_granted_host_resolving_to_an_internal_address_is_refused(
    world: World, host: str, rule: str
) -> None:
    port = world.internal.port if host == "internal.test" else world.api.port
    origin = f"http://{host}:{port}"
    p = world.plugin({"allow": [origin, f"http://*.meta.test:{world.api.port}"]})
    code, _ = p.call("GET", origin + "/ok")
    assert code == -5
    d = p.denial()
    assert d["rule"] == rule and d["code"] == -5 and host in str(d["target"])
    assert world.all_servers() == 0
    assert p.instance.services.http is not None
    assert p.instance.services.http.last_connected == []
    assert p.stats.http_requests["refused"] == 1


def test_redirects_are_returned_not_followed_by_default(world: World) -> None:
    world.api.redirects["x"] = f"http://other.test:{world.other.port}/ok"
    p = world.plugin({"allow": [world.origin()]})
    code, out = p.call("GET", world.origin() + "/redirect/x")
    status, headers, _ = decode_response(out)
    assert code > 0 and status == 302
    assert ("location", f"http://other.test:{world.other.port}/ok") in headers
    assert world.other.connections == 0


def test_followed_redirect_within_the_allowlist(world: World) -> None:
    world.api.redirects["x"] = "/ok"
    p = world.plugin({"allow": [world.origin()], "follow_redirects": True})
    code, out = p.call("POST", world.origin() + "/redirect/x", body=b"data")
    assert code == len(out) and decode_response(out)[::2] == (200, b"hello")
    assert [r[0] for r in world.api.requests] == ["POST", "GET"]  # 302: continues as GET


def test_redirect_to_a_host_not_granted_is_refused(world: World) -> None:
    world.api.redirects["x"] = f"http://other.test:{world.other.port}/ok"
    p = world.plugin({"allow": [world.origin()], "follow_redirects": True})
    code, _ = p.call("GET", world.origin() + "/redirect/x")
    assert code == -5
    d = p.denial()
    assert d["rule"] == "redirect_not_granted" and "other.test" in str(d["target"])
    assert world.other.connections == 0 and world.api.connections == 1


def test_redirect_to_loopback_is_refused(world: World) -> None:
    internal = f"http://internal.test:{world.internal.port}"
    world.api.redirects["x"] = internal + "/ok"
    p = world.plugin({"allow": [world.origin(), internal], "follow_redirects": True})
    code, _ = p.call("GET", world.origin() + "/redirect/x")
    assert code == -5
    d = p.denial()
    assert d["rule"] == "loopback" and "127.0.0.2" in str(d["target"])
    assert world.internal.connections == 0


def test_oversize_response_is_refused(world: World) -> None:
    p = world.plugin({"allow": [world.origin()], "max_response_bytes": 1000})
    code, out = p.call("GET", world.origin() + "/big")
    assert (code, out) == (-7, b"")
    assert p.denial()["rule"] == "max_response_bytes"
    code, _ = p.call("POST", world.origin() + "/echo", body=b"y" * 1001)
    assert code == -7  # the echo is over the response cap (no Content-Length check needed)
    p2 = world.plugin({"allow": [world.origin()], "max_request_bytes": 10})
    connections = world.api.connections
    code, _ = p2.call("POST", world.origin() + "/echo", body=b"y" * 11)
    assert code == -7 and p2.denial()["rule"] == "max_request_bytes"
    assert world.api.connections == connections  # refused before connecting


def test_slow_server_past_the_call_deadline_times_out(world: World) -> None:
    # timeout_ms is generous; the wasm call's own deadline (call_timeout_ms) ends the host call.
    p = world.plugin({"allow": [world.origin()], "timeout_ms": 600_000}, timeout_ms=300)
    code, _ = p.call("GET", world.origin() + "/slow")
    assert not world.api.release.is_set()  # the server never answered: the host stopped waiting
    assert code == -6
    assert p.denial()["rule"] == "timeout"
    assert p.stats.http_requests["timeout"] == 1
    world.api.release.set()


def test_server_that_stops_reading_the_body_cannot_hold_the_call(world: World) -> None:
    grant = {"allow": [world.origin()], "timeout_ms": 600_000, "max_request_bytes": 32 << 20}
    p = world.plugin(grant, timeout_ms=300, pages=512)  # 32 MiB of memory for the body
    code, _ = p.call("POST", world.origin() + "/stall", body=b"z" * (24 << 20))
    assert not world.api.release.is_set()  # still not reading: the host stopped writing
    assert code == -6 and p.denial()["rule"] == "timeout"
    world.api.release.set()


def test_header_injection_is_refused(world: World) -> None:
    p = world.plugin({"allow": [world.origin()]})
    code, _ = p.call("GET", world.origin() + "/ok", [["x-a", "1\r\nX-Evil: 1"]])
    assert code == -3
    d = p.denial()
    assert d["rule"] == "header_injection" and d["code"] == -3
    assert world.api.connections == 0
    code, _ = p.call("GET", world.origin() + "/ok", [["host", "evil.test"]])
    assert code == -3 and world.api.connections == 0  # host-set headers: invalid, not audited


def test_secret_is_substituted_only_for_its_bound_host(world: World) -> None:
    grant = {"allow": [world.origin(), world.origin("api2.test")],
             "credentials": {"api-token": ["api.test"]}}  # fmt: skip
    p = world.plugin(grant)
    auth = [["authorization", "Bearer {{secret:api-token}}"]]
    code, out = p.call("GET", world.origin() + "/ok", auth)
    assert code > 0 and b"s3cret" not in out
    assert world.api.requests[0][2]["authorization"] == "Bearer s3cret"
    code, _ = p.call("GET", world.origin("api2.test") + "/ok", auth)  # granted, not bound
    assert code == -2
    d = p.denial()
    assert d["rule"] == "secret_not_bound" and "api2.test" in str(d["target"])
    assert "s3cret" not in str(d) and world.api.connections == 1


def test_concurrent_requests_over_max_concurrent_are_refused(world: World) -> None:
    p = world.plugin({"allow": [world.origin()], "max_concurrent": 1})
    second = p.another()  # the slots belong to the plugin, not to one instance
    results: list[tuple[int, bytes]] = []
    slow = threading.Thread(target=lambda: results.append(p.call("GET", world.origin() + "/slow")))
    slow.start()
    assert world.api.arrived.wait(10)  # the first request is in flight
    code, _ = p.call_on(second, "GET", world.origin() + "/ok")
    assert code == -4 and p.stats.totals().http_requests["quota"] == 1  # shards added up
    world.api.release.set()
    slow.join(10)
    assert decode_response(results[0][1])[::2] == (200, b"late")
    code, _ = p.call_on(second, "GET", world.origin() + "/ok")  # the slot is free again
    assert code > 0
    second.close()


def test_no_grant_no_outbound_and_too_many_redirects(world: World) -> None:
    p = world.plugin({})  # [http.plugins.web] without allow: manifest ∩ grant is empty
    assert p.instance.services.http is None
    code, _ = p.call("GET", world.origin() + "/ok")
    assert code == -2 and p.denial()["rule"] == "not_granted"
    world.api.redirects["loop"] = "/redirect/loop"
    p = world.plugin({"allow": [world.origin()], "follow_redirects": True})
    code, _ = p.call("GET", world.origin() + "/redirect/loop")
    assert code == -5 and p.denial()["rule"] == "too_many_redirects"
    assert world.api.connections == 6  # the first request and 5 hops, then no more


def test_a_missing_credential_is_not_found(world: World) -> None:
    grant = {"allow": [world.origin()], "credentials": {"gone": ["api.test"]}}
    p = world.plugin(grant)
    code, _ = p.call("GET", world.origin() + "/ok", [["authorization", "{{secret:gone}}"]])
    assert code == -1 and world.api.connections == 0
