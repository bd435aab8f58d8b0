"""Outbound HTTP, the pure parts: origin patterns, their intersection, the address rules."""

from __future__ import annotations

import pytest

from forgeoned.core.netrules import AddressRules, parse_cidrs
from forgeoned.core.origins import (
    allows,
    intersect,
    intersect_all,
    parse_host_pattern,
    parse_origin_pattern,
    parse_origin_patterns,
)
from forgeoned.errors import OutboundRule as R

P = parse_origin_pattern


def test_a_wildcard_stands_for_exactly_one_leftmost_label() -> None:
    p = P("http://*.svc.example:8080")
    assert p.matches("http", "a.svc.example", 8080)
    assert not p.matches("http", "svc.example", 8080)
    assert not p.matches("http", "a.b.svc.example", 8080)
    assert not p.matches("https", "a.svc.example", 8080)
    assert not p.matches("http", "a.svc.example", 8081)
    assert str(p) == "http://*.svc.example:8080"
    assert str(P("http://[::1]:80")) == "http://[::1]:80"


@pytest.mark.parametrize(
    "bad",
    ["api.example.com:443", "ftp://a.example:21", "https://a.example", "https://a.example:0",
     "https://a.example:443/path", "https://a.*.example:443", "https://*.*.example:443",
     "https://API.example:443", "https://a_b.example:443", 7],
)  # fmt: skip
def test_bad_patterns_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"not|lower case|outside"):
        P(bad)


def test_at_most_64_patterns() -> None:
    with pytest.raises(ValueError, match="at most 64"):
        parse_origin_patterns([f"https://h{i}.example:443" for i in range(65)])


def test_intersection_of_request_and_grant() -> None:
    api, star = P("https://api.example.com:443"), P("https://*.example.com:443")
    assert intersect(api, star) == api == intersect(star, api)
    assert intersect(star, star) == star
    assert intersect(api, P("http://api.example.com:443")) is None  # scheme
    assert intersect(api, P("https://api.example.com:8443")) is None  # port
    assert intersect(star, P("https://*.b.example.com:443")) is None  # one label each: disjoint
    assert intersect(P("https://a.example:443"), P("https://b.example:443")) is None
    eff = intersect_all([api, P("http://x.example:80")], [star])
    assert eff == frozenset({api})
    assert allows(eff, "https", "api.example.com", 443)
    assert not allows(eff, "http", "x.example", 80)
    assert intersect_all([api], []) == frozenset()  # nothing granted: nothing allowed


def test_host_patterns_for_credentials() -> None:
    assert parse_host_pattern("api.example.com").matches("api.example.com")
    assert not parse_host_pattern("api.example.com").matches("evil.api.example.com")
    assert parse_host_pattern("*.example.com").matches("api.example.com")
    with pytest.raises(ValueError, match="not a host name"):
        parse_host_pattern("*")


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("127.0.0.1", R.LOOPBACK), ("127.9.9.9", R.LOOPBACK), ("::1", R.LOOPBACK),
        ("10.0.0.1", R.PRIVATE), ("172.16.5.4", R.PRIVATE), ("192.168.1.1", R.PRIVATE),
        ("fd12::1", R.PRIVATE), ("169.254.1.1", R.LINK_LOCAL), ("fe80::1", R.LINK_LOCAL),
        ("169.254.169.254", R.METADATA), ("fd00:ec2::254", R.METADATA),
        ("100.64.0.1", R.CGNAT), ("224.0.0.1", R.MULTICAST), ("ff02::1", R.MULTICAST),
        ("0.0.0.0", R.UNSPECIFIED), ("::", R.UNSPECIFIED), ("255.255.255.255", R.BROADCAST),
        ("::ffff:127.0.0.1", R.LOOPBACK), ("::ffff:169.254.169.254", R.METADATA),
        ("::ffff:10.0.0.1", R.PRIVATE), ("64:ff9b::a00:1", R.PRIVATE),
        ("2002:7f00:1::", R.LOOPBACK), ("::127.0.0.1", R.LOOPBACK),
        ("192.0.2.1", R.RESERVED), ("240.0.0.1", R.RESERVED), ("2001:db8::1", R.RESERVED),
        ("fe80::1%eth0", R.LINK_LOCAL), ("not-an-ip", R.RESERVED),
    ],
)  # fmt: skip
def test_internal_addresses_are_refused_by_name(address: str, rule: R) -> None:
    assert AddressRules().refusal(address) is rule


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert AddressRules().refusal(address) is None


def test_allow_cidrs_are_explicit_exceptions() -> None:
    rules = AddressRules(parse_cidrs(["127.0.0.1/32", "fd00::/8"]))
    assert rules.refusal("127.0.0.1") is None
    assert rules.refusal("::ffff:127.0.0.1") is None  # the same address, IPv4-mapped
    assert rules.refusal("127.0.0.2") is R.LOOPBACK
    assert rules.refusal("fd00:ec2::254") is None  # the operator asked for it explicitly
    assert rules.refusal("169.254.169.254") is R.METADATA
    with pytest.raises(ValueError, match="not a CIDR"):
        parse_cidrs(["127.0.0.1/33"])
    with pytest.raises(ValueError, match="not a CIDR"):
        parse_cidrs(["10.0.0.1/8"])  # host bits set: a typo more often than not
