"""Apiserver throughput, latency and watch fan-out, side by side with bare etcd.

Prints, from one run on one etcd:
- creates/s through the apiserver with 16 concurrent clients, the same writes sent
  straight to etcd with the apiserver's own etcd client, and their ratio (goal >= 0.3);
  for reference, a bare gRPC server that only forwards each create to etcd
  (bench/_forwarder.py) in the same run;
- p50/p99 create latency through the apiserver at 16 clients (goal p99 < 50 ms);
- watch fan-out: 200 watchers of one kind, 1,000 updates, p99 from write to delivery
  at the last watcher (goal < 100 ms).

Usage: python bench/apiserver.py [--creates N] [--watchers N] [--updates N]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apiserver.storage import EtcdStore
from bench._cluster import cluster, percentile, wait_port
from cluster.process import free_ports
from skiff.api.v1 import core_pb2, service_pb2, service_pb2_grpc
from skiff.client.client import Client
from skiff.client.transport import open_channel

CLIENTS = 16


def config_map(name: str, ns: str = "default") -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = name, ns
    cm.metadata.labels["app"] = "bench"
    cm.data["payload"] = "x" * 120
    return cm


async def creates_straight_to_etcd(endpoint: str, total: int, round_: int) -> float:
    stores = [EtcdStore([endpoint]) for _ in range(CLIENTS)]
    per_client = total // CLIENTS
    value = config_map("x").SerializeToString()

    async def worker(i: int, prefix: str) -> None:
        for j in range(per_client):
            await stores[i].create(f"/bench/{prefix}/{i}/{j}".encode(), value)

    await asyncio.gather(*(s.revision() for s in stores))  # connect first
    start = time.perf_counter()
    await asyncio.gather(*(worker(i, f"r{round_}") for i in range(CLIENTS)))
    elapsed = time.perf_counter() - start
    for s in stores:
        await s.close()
    return per_client * CLIENTS / elapsed


# ---- watch fan-out: watchers live in child processes so that receiving 200k events
# does not compete with the writer in one Python interpreter ----

def _watcher_process(address: str, count: int, updates: int, rv: str,
                     ready: mp.Queue, results: mp.Queue) -> None:  # type: ignore[type-arg]
    async def main() -> None:
        channel = open_channel(address)
        stub = service_pb2_grpc.ApiStub(channel)
        received: list[dict[int, float]] = [{} for _ in range(count)]

        async def watch(i: int) -> None:
            call = stub.Watch(service_pb2.WatchRequest(kind="ConfigMap", namespace="fanout",
                                                       resource_version=rv))
            seen = received[i]
            async for reply in call:
                now = time.time()
                for event in reply.events:
                    cm = core_pb2.ConfigMap.FromString(event.object.value)
                    seen[int(cm.data["seq"])] = now
                if len(seen) >= updates:
                    call.cancel()
                    return

        tasks = [asyncio.create_task(watch(i)) for i in range(count)]
        await asyncio.sleep(1.0)
        ready.put(count)
        await asyncio.gather(*tasks, return_exceptions=True)
        # For each update: when this process's slowest watcher got it.
        last = {seq: max(r.get(seq, float("inf")) for r in received) for seq in range(updates)}
        results.put(last)
        await channel.close()

    asyncio.run(main())


async def fan_out(address: str, watchers: int, updates: int, processes: int = 4
                  ) -> list[float]:
    async with Client(address) as c:
        ns = core_pb2.Namespace()
        ns.metadata.name = "fanout"
        await c.create(ns)
        obj = await c.create(config_map("hot", "fanout"))
        _, rv = await c.list(core_pb2.ConfigMap, "fanout")
        ctx = mp.get_context("spawn")
        ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        results: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        per = watchers // processes
        procs = [ctx.Process(target=_watcher_process,
                             args=(address, per, updates, rv, ready, results))
                 for _ in range(processes)]
        for p in procs:
            p.start()
        for _ in procs:
            await asyncio.get_running_loop().run_in_executor(None, ready.get)
        sent: dict[int, float] = {}
        for seq in range(updates):
            obj.data["seq"] = str(seq)
            sent[seq] = time.time()
            obj = await c.update(obj)
        merged: dict[int, float] = {}
        for _ in procs:
            part = await asyncio.get_running_loop().run_in_executor(None, results.get)
            for seq, t in part.items():
                merged[seq] = max(merged.get(seq, 0.0), t)
        for p in procs:
            p.join(30)
        return [merged[seq] - sent[seq] for seq in range(updates)]


@contextmanager
def forwarder(etcd_endpoint: str) -> Iterator[str]:
    port = free_ports(1)[0]
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_forwarder.py")),
                             etcd_endpoint, str(port)])
    try:
        wait_port(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=8000)
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with cluster() as bench, forwarder(bench.etcd.endpoint) as forward_address:
        api_rates, etcd_rates, forward_rates, lat_all = [], [], [], []
        for r in range(args.rounds):
            # Interleaved, so all three see the same machine noise.
            etcd_rates.append(asyncio.run(creates_straight_to_etcd(bench.etcd.endpoint,
                                                                   args.creates, r)))
            forward_rates.append(asyncio.run(_creates_round(forward_address, args.creates,
                                                            r))[0])
            rate, lat = asyncio.run(_creates_round(bench.address, args.creates, r))
            api_rates.append(rate)
            lat_all += lat
        api, etcd = statistics.median(api_rates), statistics.median(etcd_rates)
        forward = statistics.median(forward_rates)
        print(f"creates/s through apiserver ({CLIENTS} clients): {api:.0f} "
              f"(rounds: {', '.join(f'{x:.0f}' for x in api_rates)})")
        print(f"creates/s straight to etcd   ({CLIENTS} clients): {etcd:.0f} "
              f"(rounds: {', '.join(f'{x:.0f}' for x in etcd_rates)})")
        print(f"creates/s through a bare forwarder ({CLIENTS} clients): {forward:.0f} "
              f"(rounds: {', '.join(f'{x:.0f}' for x in forward_rates)})")
        print(f"ratio apiserver/etcd: {api / etcd:.2f} (goal >= 0.30); bare forwarder/etcd: "
              f"{forward / etcd:.2f}; apiserver/forwarder: {api / forward:.2f}")
        print(f"create latency at {CLIENTS} clients: p50 {percentile(lat_all, 50) * 1000:.1f} ms,"
              f" p99 {percentile(lat_all, 99) * 1000:.1f} ms (goal p99 < 50 ms)")
        delays = asyncio.run(fan_out(bench.address, args.watchers, args.updates))
        print(f"watch fan-out ({args.watchers} watchers, {args.updates} updates): write to "
              f"delivery at the last watcher p50 {percentile(delays, 50) * 1000:.1f} ms, "
              f"p99 {percentile(delays, 99) * 1000:.1f} ms (goal p99 < 100 ms)")


async def _creates_round(address: str, total: int, round_: int) -> tuple[float, list[float]]:
    clients = [Client(address) for _ in range(CLIENTS)]
    per_client = total // CLIENTS
    latencies: list[float] = []
    await asyncio.gather(*(c.version() for c in clients))  # connect first

    async def worker(i: int) -> None:
        for j in range(per_client):
            t0 = time.perf_counter()
            await clients[i].create(config_map(f"r{round_}-{i}-{j}"))
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
    elapsed = time.perf_counter() - start
    for c in clients:
        await c.close()
    return per_client * CLIENTS / elapsed, latencies


if __name__ == "__main__":
    main()
