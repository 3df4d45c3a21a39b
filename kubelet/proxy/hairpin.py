"""Hairpin mode on the pods bridge's ports, so that a pod reaches a service that lands on
itself.

Docker loads br_netfilter (bridge-nf-call-iptables=1): a pod's packet to a cluster IP is
DNATed while it crosses the bridge, and when the new destination is on the same bridge
the kernel bridges it instead of routing it, back out of the port it came in by. A bridge
port drops that unless it is in hairpin mode (kubelet's --hairpin-mode=hairpin-veth does
this in Kubernetes; Docker sets it only without its userland proxy). The proxy sets it on
every port of the node's pods bridge at each sync: a pod becomes an endpoint through an
Endpoints change, which is a sync, so no port that matters is missed.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

SYS_NET = Path("/sys/class/net")


def enable_hairpin(interface: str, sys_net: Path = SYS_NET) -> int:
    """Sets hairpin mode on every port of bridge `interface`; returns how many it changed.
    A missing bridge or a port that goes meanwhile is no error."""
    if not interface:
        return 0
    changed = 0
    try:
        ports = list((sys_net / interface / "brif").iterdir())
    except OSError:
        return 0
    for port in ports:
        mode = port / "hairpin_mode"
        try:
            if mode.read_text().strip() != "1":
                mode.write_text("1")
                changed += 1
        except OSError as err:
            log.debug("hairpin mode on %s: %s", port.name, err)
    return changed
