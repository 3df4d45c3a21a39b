"""What every controller is built from: the shared informers, the client, events, a clock.

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

__all__ = ["ControllerContext"]


@dataclass
class ControllerContext:
    client: Client
    factory: SharedInformerFactory
    clock: Clock = field(default_factory=RealClock)
    # component name (e.g. "replicaset-controller") -> the recorder its events go through
    make_recorder: Callable[[str], Recorder] | None = None
    _recorders: dict[str, Recorder] = field(default_factory=dict)

    @classmethod
    def create(cls, client: Client, *, clock: Clock | None = None) -> ControllerContext:
        return cls(client, SharedInformerFactory(client, clock=clock),
                   clock if clock is not None else RealClock())

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
