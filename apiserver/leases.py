"""Shared etcd leases for objects that expire (Events), as Kubernetes' lease manager does.

Granting a lease per event would double the writes; instead one lease serves every
event written within `reuse_seconds`, granted `reuse_seconds` longer than the TTL so
that each event lives at least the TTL after its last update.
"""

from __future__ import annotations

import asyncio

from apiserver import storage


class LeaseManager:
    def __init__(self, store: storage.Store, reuse_seconds: int = 60) -> None:
        self._store = store
        self._reuse = reuse_seconds
        self._current: dict[int, tuple[int, float]] = {}  # ttl -> (lease id, granted at)
        self._lock = asyncio.Lock()

    async def lease_for(self, ttl: int) -> int:
        loop = asyncio.get_running_loop()
        async with self._lock:
            found = self._current.get(ttl)
            if found and loop.time() - found[1] < self._reuse:
                return found[0]
            lease = await self._store.grant_lease(ttl + self._reuse)
            self._current[ttl] = (lease, loop.time())
            return lease
