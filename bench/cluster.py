"""`skiff cluster` against `skiff up`: how long a test cluster takes to be there.

Rounds, each timed as a user would feel it (the CLI as a subprocess, wall clock):
- `skiff cluster create --nodes 3` until it returns, which is when every node is Ready (it
  waits for that), the node image already built (it is built first if missing, and that
  build is not counted);
- `skiff cluster delete` of it;
- `skiff cluster load-image` of a 5 MB image into its 3 nodes (saved once, loaded at once);
- beside them, in the same run: `skiff up -d` on this host until its one node is Ready,
  and `skiff down`.
Prints every round and the medians. The goal (issue 14): 3 nodes Ready in under 20 s on
these 2-core machines; kind needs tens of seconds for one.

Everything made here carries a `bench-` name and is removed on exit, also on error.

Usage: python bench/cluster.py [--rounds N] [--nodes N]
Needs root and a Docker engine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fixtures.docker import BUSYBOX_IMAGE  # noqa: E402

from cluster.nodeimage import build_image  # noqa: E402
from cluster.process import free_ports  # noqa: E402

BLOB_IMAGE = "skiff.bench/five-megabytes:1"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Skiff:
    """The `skiff` command with a client config of the bench's own."""

    def __init__(self, config: Path) -> None:
        self.env = {**os.environ, "SKIFF_CONFIG": str(config)}

    def timed(self, *args: str, timeout: float = 600) -> float:
        start = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO,
                                env=self.env, capture_output=True, text=True, timeout=timeout)
        seconds = time.monotonic() - start
        if result.returncode != 0:
            raise SystemExit(f"skiff {' '.join(args)} failed (exit {result.returncode}):\n"
                             f"{result.stderr}{result.stdout}")
        return seconds

    def output(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO,
                              env=self.env, capture_output=True, text=True, timeout=60).stdout


def blob_image() -> str:
    """A 5 MB image (busybox and 3 MB of random bytes), made here once."""
    if subprocess.run(["docker", "image", "inspect", BLOB_IMAGE],
                      capture_output=True).returncode == 0:
        return BLOB_IMAGE
    name = f"bench-blob-{uuid.uuid4().hex[:6]}"
    subprocess.run(["docker", "run", "--name", name, BUSYBOX_IMAGE, "sh", "-c",
                    "head -c 3000000 /dev/urandom > /blob"], check=True, capture_output=True)
    try:
        subprocess.run(["docker", "commit", name, BLOB_IMAGE], check=True, capture_output=True)
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True)
    return BLOB_IMAGE


def cluster_round(skiff: Skiff, nodes: int, image: str) -> tuple[float, float, float]:
    """(create to every node Ready, load-image, delete) in seconds."""
    name = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        created = skiff.timed("cluster", "create", name, "--nodes", str(nodes))
        listed = skiff.output("--context", f"skiff-{name}", "get", "nodes", "--no-headers")
        ready = [line for line in listed.splitlines() if line.split()[1:2] == ["Ready"]]
        if len(ready) != nodes:
            raise SystemExit(f"after create, {len(ready)} of {nodes} nodes Ready:\n{listed}")
        loaded = skiff.timed("cluster", "load-image", name, image)
    finally:
        deleted = skiff.timed("cluster", "delete", name)
    return created, loaded, deleted


def wait_node_ready(skiff: Skiff, config: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = skiff.output("--config", str(config), "get", "nodes", "--no-headers")
        if any(line.split()[1:2] == ["Ready"] for line in listed.splitlines()):
            return
        time.sleep(0.05)
    raise SystemExit("skiff up: no node Ready within 120 s")


@contextlib.contextmanager
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="skiff-bench-up-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def up_round(skiff: Skiff) -> tuple[float, float]:
    """(`skiff up -d` to its node Ready, `skiff down`) in seconds."""
    with data_dir() as data:
        while True:
            api, etcd, kubelet = free_ports(3)
            if etcd + 1 not in (api, kubelet):
                break
        start = time.monotonic()
        try:
            skiff.timed("up", "-d", "--data-dir", str(data), "--port", str(api), "--etcd-port",
                        str(etcd), "--kubelet-port", str(kubelet), "--node-name",
                        f"bench-{uuid.uuid4().hex[:6]}")
            wait_node_ready(skiff, data / "config")
            up = time.monotonic() - start
        finally:
            # --purge: also the pod network it made (a bridge on 10.244.0.0/24)
            down = skiff.timed("down", "--purge", "--data-dir", str(data))
    return up, down


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    say(f"node image: {build_image(say=say).tag}")
    image = blob_image()
    size = int(subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", image],
                              capture_output=True, text=True, check=True).stdout)
    with tempfile.TemporaryDirectory(prefix="skiff-bench-cluster-") as tmp:
        skiff = Skiff(Path(tmp) / "config")
        creates, loads, deletes, ups, downs = [], [], [], [], []
        for i in range(1, args.rounds + 1):
            created, loaded, deleted = cluster_round(skiff, args.nodes, image)
            up, down = up_round(skiff)
            creates.append(created)
            loads.append(loaded)
            deletes.append(deleted)
            ups.append(up)
            downs.append(down)
            say(f"round {i}: cluster create {created:.1f} s, load-image {loaded:.2f} s, "
                f"delete {deleted:.1f} s; skiff up {up:.1f} s, down {down:.1f} s")
    print(f"{'':44}{'median':>9}{'min':>9}{'max':>9}")
    for label, values in (
            (f"cluster create --nodes {args.nodes} (all Ready)", creates),
            (f"cluster load-image {size / 1e6:.1f} MB into {args.nodes} nodes", loads),
            ("cluster delete", deletes),
            ("skiff up -d (1 node Ready), this host", ups),
            ("skiff down --purge", downs)):
        print(f"{label:44}{statistics.median(values):8.2f}s{min(values):8.2f}s"
              f"{max(values):8.2f}s")
    ratio = statistics.median(creates) / statistics.median(ups)
    print(f"cluster of {args.nodes} / skiff up: {ratio:.1f}x; goal: {args.nodes} nodes Ready "
          f"in under 20 s: {'met' if statistics.median(creates) < 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
