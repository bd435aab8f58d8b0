"""Outbound HTTP, what the author and the operator write: the wire format, the manifest's
``capabilities.http``, the ``[http]`` config table and what a plugin is granted."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgeoned.core.http_grant import HttpGrant, parse_http_policy
from forgeoned.core.http_wire import (
    SECRET_TEMPLATE,
    HttpRequest,
    Target,
    WireProblem,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    parse_url,
)
from forgeoned.core.manifest import SECRET_RE, Capabilities
from forgeoned.core.manifest_parse import parse_manifest_obj
from forgeoned.core.origins import parse_origin_pattern
from forgeoned.core.plugin_config import CREDENTIAL_RE
from forgeoned.daemon.config_file import load_config
from forgeoned.daemon.host_services import grant
from forgeoned.errors import ConfigError, ManifestError
from forgeoned.errors import OutboundRule as R


def test_a_request_round_trips() -> None:
    raw = encode_request("POST", "https://API.example.com/v1?x=1", [["a", "b"]], b"line1\nline2")
    req = decode_request(raw)
    assert req == HttpRequest(
        "POST", Target("https", "api.example.com", 443, "/v1?x=1"), (("a", "b"),), b"line1\nline2"
    )
    assert decode_request(b'{"method":"GET","url":"http://[::1]:8080"}') == HttpRequest(
        "GET", Target("http", "::1", 8080, "/"), (), b""
    )
    out = encode_response(200, [("Content-Type", "x")], b"\n\x00body")
    assert decode_response(out) == (200, [("content-type", "x")], b"\n\x00body")


@pytest.mark.parametrize(
    ("head", "problem"),
    [
        (b"not json", "not UTF-8 JSON"), (b"\xff", "not UTF-8 JSON"),
        (b'{"method":"GET","url":"http://a.example/","x":1}', "must be an object"),
        (b'{"method":"TRACE","url":"http://a.example/"}', "method"),
        (b'{"method":"GET","url":"ftp://a.example/"}', "scheme"),
        (b'{"method":"GET","url":"http://u:p@a.example/"}', "credentials"),
        (b'{"method":"GET","url":"http://a.example:99999/"}', "Port"),
        (b'{"method":"GET","url":"http://a b.example/"}', "spaces"),
        (b'{"method":"GET","url":"http://a_b.example/"}', "not a host name"),
        (b'{"method":"GET","url":"http://a.example/","headers":[["a"]]}', "pair"),
        (b'{"method":"GET","url":"http://a.example/","headers":[["a b","c"]]}', "token"),
        (b'{"method":"GET","url":"http://a.example/","headers":[["Host","c"]]}', "set by the host"),
        (b'{"method":"GET","url":"http://a.example/","headers":[["Content-Length","1"]]}',
         "set by the host"),
        (b'{"method":"GET","url":"http://a.example/","headers":7}', "headers must be a list"),
        (b"{" + b" " * 20000 + b"}", "over 16384"),
    ],
)  # fmt: skip
def test_bad_requests_say_what_is_wrong(head: bytes, problem: str) -> None:
    got = decode_request(head)
    assert isinstance(got, WireProblem) and problem in got.message
    assert got.rule is None


@pytest.mark.parametrize(
    "pair", [["x-a", "1\r\nX-Evil: 1"], ["x-a\n", "1"], ["x-a", "a\x00b"], ["x-a", "\n"]]
)
def test_cr_lf_nul_in_a_header_is_an_injection_attempt(pair: list[str]) -> None:
    got = decode_request(encode_request("GET", "http://a.example/", [pair]))
    assert isinstance(got, WireProblem) and got.rule is R.HEADER_INJECTION


def test_a_relative_location_keeps_the_origin() -> None:
    base = Target("https", "a.example", 8443, "/x")
    assert parse_url("/next?q=1", base) == Target("https", "a.example", 8443, "/next?q=1")
    assert parse_url("http://b.example/", base) == Target("http", "b.example", 80, "/")
    assert parse_url("y?z", base) == Target("https", "a.example", 8443, "/y?z")
    assert parse_url("//c.example/p", base) == Target("https", "c.example", 443, "/p")
    assert Target("http", "::1", 80, "/").authority == "[::1]"
    assert Target("https", "a.example", 8443, "/").authority == "a.example:8443"


def test_the_manifest_asks_for_origins() -> None:
    raw = {"name": "w", "version": "1.0.0", "abi": 1,
           "capabilities": {"http": ["https://api.example.com:443"]}}  # fmt: skip
    m = parse_manifest_obj(raw)
    assert m.capabilities.http == {parse_origin_pattern("https://api.example.com:443")}
    assert m.capabilities.to_json()["http"] == ["https://api.example.com:443"]
    assert "http" not in Capabilities().to_json()
    raw["capabilities"] = {"http": ["api.example.com"]}
    with pytest.raises(ManifestError, match=r"capabilities\.http"):
        parse_manifest_obj(raw)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "etc" / "forgeoned.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


GRANT = """
[http]
ca_file = "etc/ca.pem"
[http.plugins.web]
allow = ["https://api.example.com:443", "https://*.svc.example:443"]
allow_cidrs = ["10.1.0.0/16"]
follow_redirects = true
max_response_bytes = 4096
timeout_ms = 2000
max_concurrent = 2
[http.plugins.web.credentials]
api-token = ["api.example.com"]
"""


def test_the_operator_grants_per_plugin(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"http\.ca_file: .*ca\.pem is not a file"):
        load_config(write(tmp_path, GRANT))
    (tmp_path / "etc" / "ca.pem").write_text("")
    config = load_config(write(tmp_path, GRANT))
    assert config.http.ca_file == str(tmp_path / "etc" / "ca.pem")
    g = config.http.grant_for("web")
    assert g is not None and g.follow_redirects and g.max_response_bytes == 4096
    assert g.max_request_bytes == HttpGrant().max_request_bytes
    assert g.credential_bound("api-token", "api.example.com")
    assert not g.credential_bound("api-token", "x.svc.example")
    assert not g.credential_bound("other", "api.example.com")
    svc, other = "https://a.svc.example:443", "https://b.example:443"
    asked = Capabilities(http=frozenset(map(parse_origin_pattern, (svc, other))))
    caps, _env, http = grant(config, "web", asked)
    assert caps.http == {parse_origin_pattern("https://a.svc.example:443")}
    assert http is g
    caps, _env, http = grant(config, "other", asked)  # no [http.plugins.other]: nothing
    assert caps.http == frozenset() and http is None
    # a changed grant is a changed Grant: a reload restarts exactly that plugin (stale())
    changed = load_config(
        write(tmp_path, GRANT.replace("max_concurrent = 2", "max_concurrent = 3"))
    )
    assert grant(changed, "web", asked) != grant(config, "web", asked)
    assert grant(changed, "other", asked) == grant(config, "other", asked)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[http]\nproxy = 1", "http.proxy: unknown key"),
        ("[http.plugins.web]\nallow = ['api.example.com']", "http.plugins.web.allow: "),
        ("[http.plugins.web]\nallow_cidrs = ['10.0.0.1/8']", "allow_cidrs: '10.0.0.1/8'"),
        ("[http.plugins.web]\ntimeout_ms = 0", "timeout_ms: 0 is outside"),
        ("[http.plugins.web]\nmax_concurrent = 65", "max_concurrent: 65 is outside"),
        ("[http.plugins.web]\nmax_response_bytes = 1e9", "must be an integer"),
        ("[http.plugins.web]\nfollow_redirects = 'yes'", "true or false"),
        ("[http.plugins.web]\nretries = 3", "http.plugins.web.retries: unknown key"),
        ("[http.plugins.Web]\n", "http.plugins.Web: not a plugin name"),
        ("[http.plugins.web.credentials]\napi-token = []", "non-empty list"),
        ("[http.plugins.web.credentials]\napi-token = ['*']", "not a host name"),
        ("[capabilities.web]\nhttp = ['https://a.example:443']", "[http.plugins.NAME]"),
    ],
)  # fmt: skip
def test_bad_grants_name_the_key(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=r"forgeoned\.toml: ") as info:
        load_config(write(tmp_path, text))
    assert problem in str(info.value) and "\n" not in str(info.value)


def test_nothing_is_granted_by_default() -> None:
    assert parse_http_policy({}).grant_for("web") is None


@pytest.mark.parametrize(
    ("name", "valid"),
    [("api-token", True), ("A.b_c-9", True), ("x" * 128, True), ("x" * 129, False),
     (".hidden", False), ("-x", False), ("a/b", False), ("a b", False), ("", False)],
)  # fmt: skip
def test_secret_names_follow_one_rule_everywhere(name: str, valid: bool) -> None:
    """The manifest, a plugin's credential-backed config and ``{{secret:NAME}}`` in an
    outbound header accept the same names: one definition (issue 10, item 4)."""
    assert CREDENTIAL_RE is SECRET_RE
    assert bool(SECRET_RE.match(name)) is valid
    assert SECRET_TEMPLATE.findall(f"Bearer {{{{secret:{name}}}}}") == ([name] if valid else [])
