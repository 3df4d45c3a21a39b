"""What every controller is built from: the shared informers, the client, events, a clock,
and the settings of the controller manager's command line.

One ``ControllerContext`` is made per term of the controller manager and handed to each
controller's constructor, so all controllers share one cache per kind (one watch each),
and a test builds a controller the same way with a fake clock and recorder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from skiff.client.client import Client
from skiff.client.clock import Clock, RealClock
from skiff.client.events import EventRecorder, Recorder
from skiff.client.informer import SharedInformerFactory

__all__ = ["ComponentConfig", "ControllerContext"]


@dataclass(frozen=True)
class ComponentConfig:
    """What controllers learn from skiff-controller-manager's flags (Kubernetes keeps
    these in the ControllerContext's ComponentConfig too)."""

    # --cluster-cidr: the pod range of the whole cluster, cut into one block per node.
    cluster_cidr: str = "10.244.0.0/16"
    # --node-cidr-mask-size: the prefix length of each node's block (its podCIDR).
    node_cidr_mask_size: int = 24
    # --allocate-node-cidrs: whether the nodeipam controller gives nodes their podCIDRs.
    allocate_node_cidrs: bool = True
    # --endpoint-updates-batch-period: the shortest time between two syncs of one
    # service's Endpoints caused by pod changes (Kubernetes' default is 0, no batching).
    endpoint_updates_batch_period: float = 0.5


@dataclass
class ControllerContext:
    client: Client
    factory: SharedInformerFactory
    clock: Clock = field(default_factory=RealClock)
    # component name (e.g. "replicaset-controller") -> the recorder its events go through
    make_recorder: Callable[[str], Recorder] | None = None
    config: ComponentConfig = field(default_factory=ComponentConfig)
    _recorders: dict[str, Recorder] = field(default_factory=dict)

    @classmethod
    def create(cls, client: Client, *, clock: Clock | None = None,
               config: ComponentConfig | None = None) -> ControllerContext:
        return cls(client, SharedInformerFactory(client, clock=clock),
                   clock if clock is not None else RealClock(),
                   config=config if config is not None else ComponentConfig())

    def recorder(self, component: str) -> Recorder:
        """The event recorder for `component` (events carry it as their source)."""
        found = self._recorders.get(component)
        if found is None:
            found = (self.make_recorder(component) if self.make_recorder is not None
                     else EventRecorder(self.client, component, clock=self.clock))
            self._recorders[component] = found
        return found

    async def close(self) -> None:
        """Stops the informers and flushes the events."""
        await self.factory.stop_all()
        for recorder in self._recorders.values():
            if isinstance(recorder, EventRecorder):
                await recorder.close()
