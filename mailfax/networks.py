"""Pure CIDR lists: is a client address in one of the configured networks?"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Networks:
    """A list of networks such as ["127.0.0.0/8", "10.1.2.3"]; host bits are allowed."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        """Raises ValueError naming the first entry that is not a network."""
        self._networks: list[Network] = []
        for cidr in cidrs:
            try:
                self._networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{cidr!r} is not a network (e.g. 192.0.2.0/24)") from None

    def __bool__(self) -> bool:
        return bool(self._networks)

    def match(self, address: str) -> Network | None:
        """The first network holding `address` (IPv4-mapped IPv6 counts as IPv4), or None."""
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return next((n for n in self._networks if ip.version == n.version and ip in n), None)
