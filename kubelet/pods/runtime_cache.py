"""The runtime's containers as the kubelet last saw them: its PLEG cache.

Every list of the runtime refreshes the cache. A pod's sync reads it when the list
behind it started after this kubelet last changed the pod's containers, and lists afresh
otherwise, so a sync never acts on a picture older than what it did itself, and a quiet
pod costs no runtime call at all. `relist` (the PLEG) reports the pods whose containers
changed state since the previous relist, orphans included.
"""

from __future__ import annotations

import itertools
import math

from kubelet.runtime import LABEL_INIT, LABEL_NODE, ContainerInfo, ContainerRuntime, State
from skiff.client.clock import Clock

# After a container starts, and while init containers run, the relist looks every
# HOT_RELIST_PERIOD seconds for HOT_WINDOW seconds: what exits soon after starting (init
# containers, short jobs, crash loops) is noticed at once, not up to a relist period later.
HOT_RELIST_PERIOD = 0.2
HOT_WINDOW = 3.0


class RuntimeCache:
    def __init__(self, runtime: ContainerRuntime, node_name: str, *, clock: Clock) -> None:
        self._runtime = runtime
        self._node_name = node_name
        self._clock = clock
        # The runtime's containers by pod uid, from the newest list, which started at
        # tick _listed_at; _changed[uid]: the tick when this kubelet last changed the pod's
        # containers (a list must start after that to be current for the pod). Ticks
        # order these events, whatever the clock says (a test's clock may stand still).
        self._ticks = itertools.count(1)
        self._containers: dict[str, list[ContainerInfo]] = {}
        self._listed_at = 0  # never
        self._changed: dict[str, int] = {}
        # What the last relist saw of each pod, to tell what changed since.
        self._snapshot: dict[str, frozenset[tuple[str, str]]] = {}
        self._hot_until = -math.inf

    @property
    def listed(self) -> bool:
        """The runtime has answered a list at least once."""
        return self._listed_at > 0

    def pods(self) -> set[str]:
        """Uids of the pods that have containers, as of the newest list."""
        return set(self._containers)

    async def refresh(self) -> dict[str, list[ContainerInfo]]:
        """Lists the runtime (this node's containers) into the cache; returns them by pod."""
        started = next(self._ticks)
        infos = [i for i in await self._runtime.list_containers()
                 if i.labels.get(LABEL_NODE) == self._node_name]
        grouped: dict[str, list[ContainerInfo]] = {}
        for info in infos:
            grouped.setdefault(info.pod_uid, []).append(info)
        if started > self._listed_at:  # else a list that started later has landed already
            self._containers, self._listed_at = grouped, started
        return grouped

    async def relist(self) -> list[str]:
        """One look at the runtime (the kubelet's PLEG): the uids of the pods whose
        containers changed state since the last relist."""
        grouped = await self.refresh()
        changed = []
        for uid in set(grouped) | set(self._snapshot):
            now = frozenset((i.id, i.state.value) for i in grouped.get(uid, ()))
            if now != self._snapshot.get(uid):
                self._snapshot[uid] = now
                changed.append(uid)
        return changed

    async def state(self, uid: str) -> tuple[list[ContainerInfo], list[ContainerInfo]]:
        """The pod's sandboxes and containers, from the cache when it is current for the
        pod (listed after our last change to them), else from a new list."""
        if self._listed_at <= self._changed.get(uid, 0) or not self.listed:
            await self.refresh()
        infos = self._containers.get(uid, [])
        return [i for i in infos if i.is_sandbox], [i for i in infos if not i.is_sandbox]

    def mark_changed(self, uid: str) -> None:
        """This kubelet has just changed the pod's containers (call it once the change is
        done, whether it worked or not): only a list that starts after now shows them as
        they are, and the relist watches closely for a while."""
        self._changed[uid] = next(self._ticks)
        self._hot_until = self._clock.now() + HOT_WINDOW

    def relist_delay(self, period: float) -> float:
        """Seconds until the next relist: `period`, or HOT_RELIST_PERIOD soon after a
        container was started or stopped and while an init container runs."""
        if self._clock.now() < self._hot_until or any(
                i.state == State.RUNNING and i.labels.get(LABEL_INIT) == "true"
                for infos in self._containers.values() for i in infos):
            return min(HOT_RELIST_PERIOD, period)
        return period

    def forget(self, uid: str) -> None:
        self._snapshot.pop(uid, None)
        self._changed.pop(uid, None)
