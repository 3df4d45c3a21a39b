"""`skiff status`: the processes of a `skiff up` cluster, their restarts and their logs.

The work is done by `cluster.status`; this module parses the flags, calls it and prints.
Exit code 0 when every component runs under a supervisor, 1 otherwise (for scripts).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.errors import CliError
from cluster import local
from cluster.errors import ClusterError
from cluster.status import ClusterStatus, ComponentStatus, cluster_status


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def _row(c: ComponentStatus) -> list[str]:
    return [c.name, str(c.pid) if c.pid is not None else "-", c.state, _duration(c.uptime),
            str(c.restarts), c.last_exit or "-"]


def render(status: ClusterStatus, lines: int) -> str:
    rows = [["COMPONENT", "PID", "STATE", "UPTIME", "RESTARTS", "LAST EXIT"],
            _row(status.supervisor), *(_row(c) for c in status.components)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = [f"cluster in {status.data_dir}, apiserver {status.server}"]
    out += ["   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "   " + r[-1]
            for r in rows]
    if not status.supervisor.running:
        out.append(f"Nothing supervises it: skiff up -d{local.data_dir_flag(status.data_dir)} "
                   "starts what is missing and supervises the cluster.")
    if lines > 0:
        for c in (status.supervisor, *status.components):
            out += ["", f"==> {c.log_file} <=="]
            out.append(c.log_tail or "(empty)")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    try:
        status = cluster_status(Path(args.data_dir).expanduser().absolute(), args.lines)
    except ClusterError as err:
        raise CliError(str(err)) from err
    print(render(status, args.lines))
    return 0 if status.healthy else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "status",
        help="show the processes of the skiff up cluster",
        description="Each process of the cluster skiff up started (the supervising skiff up "
        "and the components): its PID, state, uptime, restarts, how it last ended, and the "
        "last lines of its log. Exit code 0 when everything runs, 1 otherwise.",
    )
    p.add_argument("--data-dir", default=local.DEFAULT_DATA_DIR,
                   help="data dir given to skiff up (default %(default)s)")
    p.add_argument("-n", "--lines", type=int, default=5,
                   help="lines of each log to show, 0 for none (default %(default)s)")
    p.set_defaults(func=run)
