"""The address blocks a worker never dials, from IANA's special-purpose address registries.

https://www.iana.org/assignments/iana-ipv4-special-registry and
https://www.iana.org/assignments/iana-ipv6-special-registry list each block with whether it
is "globally reachable". Every block marked false is here, with the deprecated ones a
provider may still route internally (6to4's relay anycast, site-local) and those a newer
RFC added that Python's ``is_global`` (3.11.7 here) does not know yet: 3fff::/20
(documentation, RFC 9637), 5f00::/16 (SRv6 segment identifiers, RFC 9602), 100:0:0:1::/64
(the dummy prefix, RFC 9780), 192.88.99.0/24 (6to4 relays, RFC 7526). Python's rule is
applied as well (:func:`f5worker.handler.refaudio.is_public`): an address passes only when
both say global.

Forms carrying an IPv4 address are judged by it (refaudio: mapped ``::ffff:a.b.c.d``,
translated ``::ffff:0:a.b.c.d`` and NAT64 ``64:ff9b::a.b.c.d``) or refused outright.
"""

from __future__ import annotations

import ipaddress

NOT_GLOBAL_V4 = tuple(map(ipaddress.IPv4Network, (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private use
    "100.64.0.0/10",  # shared address space (carrier-grade NAT)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link local (the metadata service)
    "172.16.0.0/12",  # private use
    "192.0.0.0/29",  # IPv4 service continuity (DS-Lite)
    "192.0.0.8/32",  # IPv4 dummy address
    "192.0.0.170/31",  # NAT64/DNS64 discovery
    "192.0.2.0/24",  # documentation (TEST-NET-1)
    "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
    "192.168.0.0/16",  # private use
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation (TEST-NET-2)
    "203.0.113.0/24",  # documentation (TEST-NET-3)
    "224.0.0.0/4",  # multicast (not in the registry; never a host)
    "240.0.0.0/4",  # reserved, and the limited broadcast 255.255.255.255
)))

NOT_GLOBAL_V6 = tuple(map(ipaddress.IPv6Network, (
    "::/128",  # unspecified
    "::1/128",  # loopback
    "::/96",  # IPv4-compatible (deprecated): some stacks send it to the IPv4 address
    "64:ff9b:1::/48",  # local-use NAT64: the IPv4's place in it is the operator's choice
    "100::/64",  # discard-only
    "100:0:0:1::/64",  # dummy prefix
    "2001::/32",  # Teredo: tunnels to IPv4 addresses it hides
    "2001:2::/48",  # benchmarking
    "2001:10::/28",  # ORCHID (deprecated)
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4 (deprecated): a relay forwards it to the IPv4 it carries
    "3fff::/20",  # documentation
    "5f00::/16",  # SRv6 segment identifiers
    "fc00::/7",  # unique local
    "fe80::/10",  # link local
    "fec0::/10",  # site local (deprecated)
    "ff00::/8",  # multicast
)))

# IPv4-translated addresses (RFC 2765, SIIT): a translator sends ::ffff:0:a.b.c.d to
# a.b.c.d, as a dual stack does ::ffff:a.b.c.d.
TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
# The well-known NAT64 prefix (RFC 6052): a gateway translates 64:ff9b::a.b.c.d to a.b.c.d.
# DNS64 answers with it for every IPv4-only host on an IPv6-only network, so it is judged
# by the IPv4 it carries, not refused.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form sends to (mapped, translated, NAT64), else None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in TRANSLATED or address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def listed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``address`` lies in a block the registries call not globally reachable."""
    blocks = NOT_GLOBAL_V4 if isinstance(address, ipaddress.IPv4Address) else NOT_GLOBAL_V6
    return any(address in block for block in blocks)
