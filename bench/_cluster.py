"""Start a private etcd and apiserver for a benchmark, and stop exactly those."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cluster.components import apiserver_command
from cluster.etcd import EtcdProcess, find_etcd
from cluster.process import free_ports

REPO = Path(__file__).resolve().parents[1]


@dataclass
class BenchCluster:
    etcd: EtcdProcess
    apiserver: subprocess.Popen[bytes]
    address: str
    workdir: Path


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path | None = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} died:\n" + (log.read_text()[-2000:] if log else ""))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.args!r} did not start")


@contextmanager
def cluster(*apiserver_args: str) -> Iterator[BenchCluster]:
    workdir = Path(tempfile.mkdtemp(prefix="skiff-bench-"))
    binary, description = find_etcd()
    print(f"# etcd: {description}", file=sys.stderr)
    etcd = EtcdProcess.start(workdir / "etcd", log_file=workdir / "etcd.log", binary=binary,
                             die_with_parent=True)
    port = free_ports(1)[0]
    log = workdir / "apiserver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            apiserver_command(etcd_servers=etcd.endpoint, port=port, log_level="WARNING",
                              extra=apiserver_args),
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, log)
        yield BenchCluster(etcd, proc, f"127.0.0.1:{port}", workdir)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        etcd.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
