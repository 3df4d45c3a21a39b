"""Compacts etcd's history, as Kubernetes' apiserver does, so the database stays small.

Every interval the revision seen one interval ago is compacted away: watchers (the watch
caches) have had a whole interval to read past it. Several apiservers may each do this;
compacting a revision twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging

from apiserver import storage

log = logging.getLogger(__name__)


async def compact_forever(store: storage.Store, interval: float) -> None:
    previous = 0
    while True:
        await asyncio.sleep(interval)
        try:
            current = await store.revision()
            if previous:
                await store.compact(previous)
                log.info("compacted etcd history up to revision %d", previous)
            previous = current
        except storage.StorageError as err:
            # "required revision has been compacted": another apiserver was first.
            log.info("compaction skipped: %s", err)
