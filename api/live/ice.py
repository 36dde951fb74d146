"""ICE kept to the addresses an operator allows.

aioice offers every non-loopback interface as a host candidate and binds a UDP socket on each; Chromium offers
``*.local`` mDNS names, and resolving them makes aioice bind port 5353 on every interface. The service therefore
offers only the configured addresses and removes ``.local`` candidates from offers before aiortc sees them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import aioice.ice

log = logging.getLogger(__name__)

_original: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


def restrict_host_addresses(addresses: Sequence[str]) -> None:
    """Offer and bind only ``addresses`` (empty: aioice's default, every non-loopback interface)."""
    allowed = list(addresses)
    if not allowed:
        aioice.ice.get_host_addresses = _original  # type: ignore[assignment]
        return

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in allowed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses
    log.info("live view: ICE host candidates restricted to %s", ", ".join(allowed))


def restore_host_addresses() -> None:
    aioice.ice.get_host_addresses = _original  # type: ignore[assignment]


def strip_mdns_candidates(sdp: str) -> str:
    """The SDP without ``a=candidate`` lines whose address is an mDNS ``.local`` name."""
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) > 4 and parts[4].endswith(".local"):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"
