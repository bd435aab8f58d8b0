"""Which resolved addresses an outbound request may connect to (the SSRF address rules).

Checked on every address a host name resolves to, at connect time, and the connection then
goes to that very address: a name that resolves to an internal address is refused however the
allowlist names it (DNS rebinding included). Refused, unless an operator ``allow_cidrs`` entry
covers the address: loopback, private (RFC 1918, IPv6 ULA), link-local, CGNAT, multicast,
unspecified, broadcast, cloud metadata and the other reserved ranges, also when written as an
IPv4-mapped, IPv4-compatible, NAT64 or 6to4 IPv6 address. Anything Python's ``ipaddress``
does not call *global* is refused as ``reserved`` even if the table below forgot it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from forgeoned.errors import OutboundRule

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _nets(rule: OutboundRule, *cidrs: str) -> list[tuple[Network, OutboundRule]]:
    return [(ipaddress.ip_network(c), rule) for c in cidrs]


# First match wins: metadata before link-local, so 169.254.169.254 is named for what it is.
_REFUSED: Final[tuple[tuple[Network, OutboundRule], ...]] = tuple(
    _nets(OutboundRule.METADATA, "169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32")
    + _nets(OutboundRule.LOOPBACK, "127.0.0.0/8", "::1/128")
    + _nets(OutboundRule.PRIVATE, "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
    + _nets(OutboundRule.LINK_LOCAL, "169.254.0.0/16", "fe80::/10")
    + _nets(OutboundRule.CGNAT, "100.64.0.0/10")
    + _nets(OutboundRule.MULTICAST, "224.0.0.0/4", "ff00::/8")
    + _nets(OutboundRule.BROADCAST, "255.255.255.255/32")
    + _nets(OutboundRule.UNSPECIFIED, "0.0.0.0/8", "::/128")
    + _nets(
        OutboundRule.RESERVED,
        "240.0.0.0/4",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "::/96",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "64:ff9b:1::/48",
    )
)
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")


def embedded_v4(ip: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (int(ip) >> 32 == 0 and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _classify(ip: Address) -> OutboundRule | None:
    for net, rule in _REFUSED:
        if ip.version == net.version and ip in net:
            return rule
    return None if ip.is_global else OutboundRule.RESERVED


@dataclass(frozen=True, slots=True)
class AddressRules:
    """The address rules of one plugin: the refused ranges minus its ``allow_cidrs``."""

    allow_cidrs: tuple[Network, ...] = ()

    def _allowed(self, ip: Address) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allow_cidrs)

    def refusal(self, address: str) -> OutboundRule | None:
        """None if ``address`` may be connected to, else the rule that refuses it."""
        try:
            ip = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            return OutboundRule.RESERVED
        inner = embedded_v4(ip)
        if self._allowed(ip) or (inner is not None and self._allowed(inner)):
            return None
        if inner is not None:
            rule = _classify(inner)
            if rule is not None:
                return rule
            if (
                isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None
            ):  # NAT64/6to4/compatible of a public address: a relay
                return OutboundRule.RESERVED if _classify(ip) is not None else None
            return None
        return _classify(ip)


def parse_cidrs(raw: Iterable[object]) -> tuple[Network, ...]:
    """``allow_cidrs`` entries; ValueError naming the bad one."""
    out = []
    for item in raw:
        if not isinstance(item, str):
            raise ValueError(f"{item!r} is not a CIDR")  # noqa: TRY004 (a config value)
        try:
            out.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:
            raise ValueError(f"{item!r} is not a CIDR ({exc})") from None
    return tuple(out)
