"""What the rest of the kubelet knows of the pod network: whether it is ready, and which
runtime network a new sandbox joins.

    NONE         the node has no podCIDR (yet): sandboxes join the runtime's default
                 network, as before the pod network existed (a cluster without the
                 nodeipam controller is a one-host cluster)
    READY        sandboxes join the pods bridge; the Node's NetworkUnavailable is False
    UNAVAILABLE  the podCIDR cannot be used (it overlaps a host network, the host's rules
                 or routes cannot be written, ...): the Node's NetworkUnavailable is True,
                 which taints it so that the scheduler places no pods there; pods bound
                 to it that need the pod network wait (NetworkNotReady), as Kubernetes'
                 do while the network plugin is not ready; hostNetwork pods run
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# Kubernetes' event reason and message prefix for a pod that waits for the network.
NETWORK_NOT_READY = "NetworkNotReady"
NETWORK_NOT_READY_MESSAGE = "network is not ready"


class Phase(enum.Enum):
    NONE = "none"
    READY = "ready"
    UNAVAILABLE = "unavailable"


class NetworkNotReady(Exception):
    """A sandbox cannot join the pod network now; the message says why."""


@dataclass(frozen=True)
class NetworkState:
    phase: Phase = Phase.NONE
    pod_cidr: str = ""
    network: str = ""  # the runtime network sandboxes join when READY
    reason: str = ""  # CamelCase, for the Node's condition and events
    message: str = ""

    def sandbox_network(self) -> str:
        """The runtime network for a new sandbox ("" = the runtime's default); raises
        NetworkNotReady when the pod network is unavailable."""
        if self.phase is Phase.UNAVAILABLE:
            raise NetworkNotReady(self.message)
        return self.network if self.phase is Phase.READY else ""
