"""`skiff-scheduler`: places every pending pod on a node that fits, through the apiserver.

Several copies may run; a Lease in kube-system elects the one that schedules, and a
standby takes over when the leader stops renewing it (within the lease duration).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from scheduler.scheduler import DEFAULT_SCHEDULER_NAME, Scheduler
from skiff import daemon
from skiff.client.client import Client

log = logging.getLogger("scheduler")

REPORT_PERIOD = 30.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-scheduler", description=__doc__)
    daemon.add_client_flags(p)
    p.add_argument("--scheduler-name", default=DEFAULT_SCHEDULER_NAME,
                   help="schedule the pods whose spec.schedulerName is this "
                   "(default %(default)s)")
    p.add_argument("--percentage-of-nodes-to-score", type=int, default=0, metavar="PERCENT",
                   help="stop filtering once this share of the nodes is found feasible "
                   "(0: adaptive, as Kubernetes; at least 100 nodes are always considered)")
    daemon.add_leader_election_flags(p, "skiff-scheduler")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def report(scheduler: Scheduler, period: float) -> None:
    """One log line per period with work done: pods bound and decision times."""
    seen_bound, seen_decisions = 0, 0
    while True:
        await asyncio.sleep(period)
        new = min(scheduler.decisions - seen_decisions, len(scheduler.decision_seconds))
        decisions = list(scheduler.decision_seconds)[-new:] if new else []
        bound = scheduler.bound - seen_bound
        seen_bound, seen_decisions = scheduler.bound, scheduler.decisions
        if not bound and not decisions:
            continue
        decisions.sort()
        p99 = decisions[min(len(decisions) - 1, int(len(decisions) * 0.99))] if decisions else 0
        log.info("bound %d pods in %.0fs; %d decisions, p99 %.1f ms; queue %s", bound, period,
                 len(decisions), p99 * 1000, scheduler.queue.pending())


async def schedule(client: Client, args: argparse.Namespace) -> None:
    """One term as the active scheduler, with fresh caches."""
    scheduler = Scheduler(client, name=args.scheduler_name,
                          percentage_of_nodes_to_score=args.percentage_of_nodes_to_score)
    reporter = asyncio.create_task(report(scheduler, REPORT_PERIOD), name="report")
    try:
        await scheduler.run()
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter


async def run(args: argparse.Namespace) -> None:
    await daemon.run_elected(args, lambda client: schedule(client, args))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    daemon.run(run(args), args.log_level)


if __name__ == "__main__":
    main()
