"""`skiff-controller-manager`: every controller in one process, one active copy per cluster.

Controllers share one informer per kind (one watch each) through a ControllerContext. A
Lease in kube-system elects the active copy; a standby takes over when the leader stops
renewing it, and each term starts from fresh caches.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable

from controllers.common.context import ControllerContext
from controllers.gc.garbagecollector import GarbageCollector
from controllers.nodes.nodelifecycle import NodeLifecycleController
from controllers.nodes.podgc import PodGCController
from controllers.workloads.cronjob import CronJobController
from controllers.workloads.daemonset import DaemonSetController
from controllers.workloads.deployment import DeploymentController
from controllers.workloads.job import JobController
from controllers.workloads.joborphans import JobOrphanPodController
from controllers.workloads.replicaset import ReplicaSetController
from controllers.workloads.ttlafterfinished import TTLAfterFinishedController
from skiff import daemon
from skiff.client.client import Client
from skiff.client.controller import Controller

log = logging.getLogger("controller-manager")

# The controllers by the names --controllers uses, each name the loops it runs (each
# built as Class(ctx)): Kubernetes' job controller also releases the pods of Jobs that
# are gone (its orphan queue), a loop of its own here.
CONTROLLERS: dict[str, tuple[Callable[[ControllerContext], Controller], ...]] = {
    "replicaset": (ReplicaSetController,),
    "deployment": (DeploymentController,),
    "daemonset": (DaemonSetController,),
    "job": (JobController, JobOrphanPodController),
    "ttl-after-finished": (TTLAfterFinishedController,),
    "cronjob": (CronJobController,),
    "garbagecollector": (GarbageCollector,),
    "nodelifecycle": (NodeLifecycleController,),
    "podgc": (PodGCController,),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-controller-manager", description=__doc__)
    daemon.add_client_flags(p)
    p.add_argument("--controllers", default="*",
                   help="which controllers to run: '*' for all, 'foo' to add one, '-foo' "
                   f"to leave one out, comma-separated (known: {', '.join(CONTROLLERS)})")
    daemon.add_leader_election_flags(p, "skiff-controller-manager")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def chosen_controllers(spec: str) -> list[str]:
    """kube-controller-manager's --controllers syntax: `*`, `name`, `-name`."""
    names: list[str] = []
    items = [item.strip() for item in spec.split(",") if item.strip()]
    for item in items:
        name = item.lstrip("-")
        if item != "*" and name not in CONTROLLERS:
            raise SystemExit(f"--controllers: unknown controller {name!r} "
                             f"(known: {', '.join(CONTROLLERS)})")
    for name in CONTROLLERS:
        if f"-{name}" in items:
            continue
        if "*" in items or name in items:
            names.append(name)
    return names


async def run_controllers(client: Client, names: list[str]) -> None:
    """One term: fresh caches, every chosen controller, until cancelled."""
    ctx = ControllerContext.create(client)
    controllers = [make(ctx) for name in names for make in CONTROLLERS[name]]
    ctx.factory.start_all()
    log.info("running controllers: %s", ", ".join(c.name for c in controllers))
    tasks = [asyncio.create_task(c.run(), name=f"controller-{c.name}") for c in controllers]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # a controller that died takes the term down: start afresh
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ctx.close()


async def run(args: argparse.Namespace) -> None:
    names = chosen_controllers(args.controllers)
    await daemon.run_elected(args, lambda client: run_controllers(client, names))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    daemon.run(run(args), args.log_level)


if __name__ == "__main__":
    main()
