"""Cluster DNS: queries per second answered by one skiff-dns process, and their latency.

Starts a private etcd and apiserver (bench/_cluster.py), creates SERVICES ClusterIP
Services (one named port each) in one namespace, starts one real skiff-dns process
(`python -m clusterdns.main`) on loopback and waits until it answers. Then CLIENTS client
processes, each keeping WINDOW UDP queries in flight (as many resolvers of many pods
would), ask for A records of random service names for SECONDS seconds. Every answer is
checked (the right ID, one A record); a query not answered within 1 s counts as lost.

Prints answered queries per second (goal 5,000/s; moonshot 10,000/s) and p50/p99 latency
(from send to answer, client side: it includes the clients' own scheduling on a busy
machine), the same once more for a mix with names not in the cluster (NXDOMAIN
answers from the zone, as a pod's search path makes many), and once more while CHURN
Endpoints objects a second are written (each change makes the server forget and re-encode
its Service's answers).

Usage: python bench/dns.py [--services 1000] [--clients 3] [--window 16] [--seconds 10]
       [--churn 50]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

from dnslib import DNSRecord  # noqa: E402

from bench._cluster import cluster, percentile  # noqa: E402
from cluster.components import dns_command  # noqa: E402
from cluster.process import die_with_parent, free_ports  # noqa: E402
from skiff.api.v1 import core_pb2  # noqa: E402
from skiff.client import errors  # noqa: E402
from skiff.client.client import Client  # noqa: E402

NAMESPACE = "bench-dns"
LOST_AFTER = 1.0


async def create_services(address: str, count: int) -> None:
    client = Client(address)
    try:
        ns = core_pb2.Namespace()
        ns.metadata.name = NAMESPACE
        await client.create(ns)
        semaphore = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            svc = core_pb2.Service()
            svc.metadata.namespace, svc.metadata.name = NAMESPACE, f"svc-{i}"
            svc.spec.ports.add(name="http", port=80, protocol="TCP")
            async with semaphore:
                await client.create(svc)

        await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await client.close()


async def churn(address: str, services: int, per_second: float,
                stop: threading.Event) -> None:
    """Writes the Endpoints of random Services, `per_second` times a second."""
    client = Client(address)
    written = 0
    try:
        while not stop.is_set():
            name = f"svc-{random.randrange(services)}"
            ep = core_pb2.Endpoints()
            ep.metadata.namespace, ep.metadata.name = NAMESPACE, name
            subset = ep.subsets.add()
            subset.addresses.add(ip=f"10.244.{random.randrange(256)}.{random.randrange(256)}")
            subset.ports.add(name="http", port=80, protocol="TCP")
            try:
                await client.create(ep)
            except errors.AlreadyExists:
                current = await client.get(core_pb2.Endpoints, name, NAMESPACE)
                ep.metadata.resource_version = current.metadata.resource_version
                await client.update(ep)
            written += 1
            await asyncio.sleep(1 / per_second)
    finally:
        await client.close()
        print(f"  ({written} Endpoints writes)")


def wait_answering(port: int, proc: subprocess.Popen[bytes], log: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 120:
        if proc.poll() is not None:
            raise RuntimeError("skiff-dns died:\n" + log.read_text()[-2000:])
        try:
            DNSRecord.question("dns-version.cluster.local", "TXT").send(
                "127.0.0.1", port, timeout=0.3)
            return time.monotonic() - started
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("skiff-dns did not answer:\n" + log.read_text()[-2000:])


def client_worker(port: int, names: list[tuple[str, bool]], window: int, seconds: float,
                  result: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Keeps `window` queries in flight for `seconds` (names with whether they exist);
    puts (answered, lost, wrong, latencies) on `result`."""
    queries = [(bytes(DNSRecord.question(n).pack()), exists) for n, exists in names]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    in_flight: dict[int, tuple[float, bool]] = {}
    latencies: list[float] = []
    answered = lost = bad = 0
    next_id = random.getrandbits(16)
    end = time.monotonic() + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        while len(in_flight) < window:
            next_id = (next_id + 1) & 0xFFFF
            if next_id in in_flight:
                continue
            query, exists = random.choice(queries)
            in_flight[next_id] = (time.monotonic(), exists)
            sock.send(struct.pack("!H", next_id) + query[2:])
        readable, _, _ = select.select([sock], [], [], 0.05)
        if readable:
            while True:
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    break
                received = time.monotonic()
                entry = in_flight.pop(struct.unpack_from("!H", data)[0], None)
                if entry is None:
                    continue
                sent, exists = entry
                # The header says: one answer for a Service, NXDOMAIN (3) for the rest.
                if (data[7] == 1 and (data[3] & 0x0F) == 0) if exists else (
                        data[3] & 0x0F) == 3:
                    answered += 1
                    latencies.append(received - sent)
                else:
                    bad += 1
        now = time.monotonic()
        for qid in [q for q, (sent, _) in in_flight.items() if now - sent > LOST_AFTER]:
            del in_flight[qid]
            lost += 1
    result.put((answered, lost, bad, latencies))


def load(port: int, names: list[tuple[str, bool]], clients: int, window: int,
         seconds: float) -> None:
    ctx = multiprocessing.get_context("fork")
    result = ctx.Queue()
    workers = [ctx.Process(target=client_worker, args=(port, names, window, seconds, result))
               for _ in range(clients)]
    for w in workers:
        w.start()
    outcomes = [result.get() for _ in workers]
    for w in workers:
        w.join()
    answered = sum(o[0] for o in outcomes)
    lost = sum(o[1] for o in outcomes)
    bad = sum(o[2] for o in outcomes)
    latencies = [x for o in outcomes for x in o[3]]
    print(f"  answered {answered} in {seconds:.0f}s: {answered / seconds:,.0f} queries/s "
          f"(lost {lost}, wrong {bad}); latency p50 {percentile(latencies, 50) * 1000:.2f} ms, "
          f"p99 {percentile(latencies, 99) * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--churn", type=float, default=50.0,
                        help="Endpoints writes per second in the third phase")
    args = parser.parse_args()
    with cluster() as c:
        started = time.monotonic()
        asyncio.run(create_services(c.address, args.services))
        print(f"# {args.services} services created in {time.monotonic() - started:.1f}s")
        port = free_ports(1)[0]
        log = c.workdir / "skiff-dns.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                dns_command(server=c.address, bind_address="127.0.0.1", port=port,
                            upstreams=["127.0.0.1:9"], extra=("--log-level", "WARNING")),
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        try:
            ready = wait_answering(port, proc, log)
            print(f"# skiff-dns answering {ready:.2f}s after its start "
                  f"(caches of {args.services} services synced)")
            names = [f"svc-{i}.{NAMESPACE}.svc.cluster.local" for i in range(args.services)]
            print(f"service names, {args.clients} clients x {args.window} in flight:")
            load(port, [(n, True) for n in names], args.clients, args.window, args.seconds)
            mixed = [(n, True) for n in names] + [
                (f"{n}.{NAMESPACE}.svc.cluster.local", False) for n in names]
            print("half service names, half NXDOMAIN in the zone (search-path misses):")
            load(port, mixed, args.clients, args.window, args.seconds)
            print(f"service names while up to {args.churn:.0f} Endpoints objects a second change "
                  "(each forgets its Service's encoded answers):")
            stop = threading.Event()
            churner = threading.Thread(target=lambda: asyncio.run(
                churn(c.address, args.services, args.churn, stop)))
            churner.start()
            try:
                load(port, [(n, True) for n in names], args.clients, args.window,
                     args.seconds)
            finally:
                stop.set()
                churner.join()
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
