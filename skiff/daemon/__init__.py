"""What every Skiff daemon does alike: log one line per event, run until SIGTERM/SIGINT,
find the apiserver from the same client flags, and (in `auth` and `serving`) serve gRPC
to authenticated callers only."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from skiff.client.client import Client
from skiff.client.config import ClientConfig
from skiff.client.leaderelection import LeaderElector


def run(main: Coroutine[Any, Any, None], log_level: str) -> None:
    """Runs a daemon's main coroutine with logging set up; Ctrl-C ends it quietly."""
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main)


async def until_signalled() -> None:
    """Returns when the process gets SIGTERM or SIGINT, so the caller can shut down."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_until_signalled(work: Awaitable[None]) -> None:
    """Runs `work` until it ends or the process gets SIGTERM or SIGINT, then cancels it
    and waits for it to clean up. An exception from `work` is raised here."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(until_signalled())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stop):
            t.cancel()
        await asyncio.gather(task, stop, return_exceptions=True)
    failure = None if task.cancelled() else task.exception()
    if failure is not None:
        raise failure


def add_client_flags(parser: argparse.ArgumentParser) -> None:
    """The flags by which a daemon finds the apiserver and proves who it is."""
    parser.add_argument("--server", help="apiserver host:port (default: from the client config)")
    parser.add_argument("--config", help="client config file (default $SKIFF_CONFIG or "
                        "~/.skiff/config)")


def client_from_args(args: argparse.Namespace) -> Client:
    """The apiserver client the flags of `add_client_flags` describe."""
    config = ClientConfig.load(args.config, args.server)
    return Client(config.server, credentials=config.credentials())


# Leader election for the control-plane daemons: a standby takes over within about
# LEASE_DURATION + RETRY_PERIOD of the leader dying (Kubernetes' 15/10/2 is ~17 s).
LEASE_DURATION = 8.0
RENEW_DEADLINE = 6.0
RETRY_PERIOD = 1.0


def add_leader_election_flags(parser: argparse.ArgumentParser, lease_name: str) -> None:
    parser.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                        help="run only while holding the Lease (default on)")
    parser.add_argument("--lease-name", default=lease_name,
                        help="the Lease in kube-system that elects the active copy "
                        "(default %(default)s)")
    parser.add_argument("--lease-duration", type=float, default=LEASE_DURATION,
                        metavar="SECONDS")
    parser.add_argument("--renew-deadline", type=float, default=RENEW_DEADLINE,
                        metavar="SECONDS")
    parser.add_argument("--retry-period", type=float, default=RETRY_PERIOD, metavar="SECONDS")
    parser.add_argument("--identity", default="",
                        help="this candidate's name in the Lease (default: host_pid_random)")


async def run_elected(args: argparse.Namespace,
                      work: Callable[[Client], Awaitable[None]]) -> None:
    """With a client to the apiserver the flags name, runs `work(client)` until SIGTERM
    or SIGINT; with --leader-elect only while holding the Lease, calling it afresh for
    each term (see LeaderElector.lead_forever)."""
    client = client_from_args(args)
    try:
        if not args.leader_elect:
            await run_until_signalled(work(client))
            return
        identity = (args.identity
                    or f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}")
        elector = LeaderElector(client, args.lease_name, identity,
                                lease_duration=args.lease_duration,
                                renew_deadline=args.renew_deadline,
                                retry_period=args.retry_period)
        await run_until_signalled(elector.lead_forever(lambda: work(client)))
    finally:
        await client.close()
