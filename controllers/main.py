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

from controllers.common.cidrset import CIDRSet, CIDRSetError, parse_cidr
from controllers.common.context import ComponentConfig, ControllerContext
from controllers.gc.garbagecollector import GarbageCollector
from controllers.nodes.nodeipam import NodeIpamController
from controllers.nodes.nodelifecycle import NodeLifecycleController
from controllers.nodes.podgc import PodGCController
from controllers.services.endpoints import EndpointsController
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
    "nodeipam": (NodeIpamController,),
    "podgc": (PodGCController,),
    "endpoint": (EndpointsController,),
}
# Run only when nodes get their podCIDRs from here (--allocate-node-cidrs), as in Kubernetes.
NODE_IPAM = "nodeipam"

_DEFAULTS = ComponentConfig()


def _boolean(text: str) -> bool:
    """A boolean flag's value as Kubernetes' flags take it (--allocate-node-cidrs=false)."""
    value = text.strip().lower()
    if value in ("true", "t", "1", "yes"):
        return True
    if value in ("false", "f", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _seconds(text: str) -> float:
    """A duration in seconds ("0.5") or with Go's unit ("500ms", "1s")."""
    value = text.strip()
    try:
        if value.endswith("ms"):
            seconds = float(value[:-2]) / 1000
        else:
            seconds = float(value.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration, got {text!r}") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"expected a duration of 0 or more, got {text!r}")
    return seconds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-controller-manager", description=__doc__)
    daemon.add_client_flags(p)
    p.add_argument("--controllers", default="*",
                   help="which controllers to run: '*' for all, 'foo' to add one, '-foo' "
                   f"to leave one out, comma-separated (known: {', '.join(CONTROLLERS)})")
    daemon.add_leader_election_flags(p, "skiff-controller-manager")
    p.add_argument("--cluster-cidr", default=_DEFAULTS.cluster_cidr,
                   help="the pod range of the cluster, from which each node gets its "
                   "podCIDR (IPv4; default %(default)s)")
    p.add_argument("--node-cidr-mask-size", type=int, default=_DEFAULTS.node_cidr_mask_size,
                   help="prefix length of each node's podCIDR (default %(default)s)")
    p.add_argument("--allocate-node-cidrs", type=_boolean, nargs="?", const=True,
                   default=_DEFAULTS.allocate_node_cidrs, metavar="true|false",
                   help="give each node a podCIDR from --cluster-cidr (the nodeipam "
                   "controller; default true: Skiff always runs its own pod network)")
    p.add_argument("--endpoint-updates-batch-period", type=_seconds,
                   default=_DEFAULTS.endpoint_updates_batch_period, metavar="SECONDS",
                   help="the shortest time between two writes of one service's Endpoints "
                   "caused by pod changes; changes meanwhile are merged into one write "
                   "(0: none; default %(default)s)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def component_config(args: argparse.Namespace) -> ComponentConfig:
    """The controllers' settings from the flags, refused at once when they cannot work."""
    config = ComponentConfig(cluster_cidr=args.cluster_cidr,
                             node_cidr_mask_size=args.node_cidr_mask_size,
                             allocate_node_cidrs=args.allocate_node_cidrs,
                             endpoint_updates_batch_period=args.endpoint_updates_batch_period)
    if not config.allocate_node_cidrs:
        return config
    try:
        cluster = parse_cidr(config.cluster_cidr)
    except CIDRSetError as err:
        raise SystemExit(f"--cluster-cidr: {err}") from None
    try:
        CIDRSet(cluster, config.node_cidr_mask_size)
    except CIDRSetError as err:
        raise SystemExit(f"--node-cidr-mask-size {config.node_cidr_mask_size}: {err}"
                         ) from None
    return config


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


async def run_controllers(client: Client, names: list[str],
                          config: ComponentConfig | None = None) -> None:
    """One term: fresh caches, every chosen controller, until cancelled."""
    ctx = ControllerContext.create(client, config=config)
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
    config = component_config(args)
    names = chosen_controllers(args.controllers)
    if not config.allocate_node_cidrs and NODE_IPAM in names:
        names.remove(NODE_IPAM)
        log.info("--allocate-node-cidrs=false: not running %s", NODE_IPAM)
    await daemon.run_elected(args, lambda client: run_controllers(client, names, config))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    daemon.run(run(args), args.log_level)


if __name__ == "__main__":
    main()
