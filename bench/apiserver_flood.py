"""Another client's `get` latency while one client floods the apiserver.

The flooder (a child process) opens 1,000 watches of the ConfigMaps it then creates as fast
as WORKERS concurrent callers can (more than the apiserver's bound of writes in flight),
retrying what the apiserver refuses as TooManyRequests after its hint. Meanwhile the
prober (this process, its own client) `get`s one object in a loop. Printed side by side,
medians over rounds:
- get p50/p99 with no flood;
- get p50/p99 under the flood, for each pair of bounds of reads/writes in flight
  (`--bounds`, default: Kubernetes' 400/200, and 0/0, none, as before they existed);
and for each flood, the creates it landed per second and the refusals it got.

Usage: python bench/apiserver_flood.py [--seconds S] [--watches N] [--workers N] [--rounds R]
                                      [--idle-watches]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

from bench._cluster import cluster, percentile
from skiff.api.v1 import core_pb2
from skiff.api.v1 import service_pb2 as api
from skiff.client import errors
from skiff.client.client import Client, pack, throttle_delay
from skiff.client.transport import open_channel

FLOOD_NS = "flood"
IDLE_NS = "quiet"  # what --idle-watches watch: nothing happens there
CREATE = "/skiff.api.v1.Api/Create"
WATCH = "/skiff.api.v1.Api/Watch"
WATCH_CHANNELS = 10  # the watches spread over a few connections, as many clients would


def _flooder(address: str, watches: int, watched: str, workers: int, seconds: float,
             round_: int, ready: mp.Queue, results: mp.Queue) -> None:  # type: ignore[type-arg]
    async def main() -> None:
        channels = [open_channel(address) for _ in range(WATCH_CHANNELS)]
        request = api.WatchRequest(kind="ConfigMap", namespace=watched).SerializeToString()
        received = 0

        async def watch(i: int) -> None:
            nonlocal received
            call = channels[i % WATCH_CHANNELS].unary_stream(WATCH)(request)
            try:
                async for _ in call:
                    received += 1
            except grpc.aio.AioRpcError:
                pass

        watching = [asyncio.create_task(watch(i)) for i in range(watches)]
        await asyncio.sleep(2.0)  # let them all open
        ready.put(True)
        create = channels[0].unary_unary(CREATE)
        created = refused = 0
        deadline = time.monotonic() + seconds

        async def worker(w: int) -> None:
            nonlocal created, refused
            n = 0
            while time.monotonic() < deadline:
                cm = core_pb2.ConfigMap()
                cm.metadata.name, cm.metadata.namespace = f"r{round_}-{w}-{n}", FLOOD_NS
                cm.data["payload"] = "x" * 120
                body = api.CreateRequest(object=pack(cm)).SerializeToString()
                failures = 0
                while time.monotonic() < deadline:
                    try:
                        await create(body, timeout=30)
                        created += 1
                        break
                    except grpc.aio.AioRpcError as err:
                        error = errors.from_rpc_error(err)
                        if not isinstance(error, errors.TooManyRequests):
                            raise
                        refused += 1
                        failures += 1
                        await asyncio.sleep(throttle_delay(failures, error.retry_after))
                n += 1

        await asyncio.gather(*(worker(w) for w in range(workers)))
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
        for channel in channels:
            await channel.close()
        results.put((created / seconds, refused, received))

    asyncio.run(main())


async def probe(address: str, seconds: float) -> list[float]:
    """`get` latencies of one object, back to back for `seconds`."""
    latencies: list[float] = []
    async with Client(address) as client:
        await client.get(core_pb2.ConfigMap, "probe", "default")  # connected
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            await client.get(core_pb2.ConfigMap, "probe", "default")
            latencies.append(time.perf_counter() - t0)
    return latencies


async def prepare(address: str) -> None:
    async with Client(address) as client:
        ns = core_pb2.Namespace()
        ns.metadata.name = FLOOD_NS
        await client.create(ns)
        cm = core_pb2.ConfigMap()
        cm.metadata.name, cm.metadata.namespace = "probe", "default"
        cm.data["k"] = "v"
        await client.create(cm)


def flooded(address: str, args: argparse.Namespace, round_: int
            ) -> tuple[list[float], tuple[float, int, int]]:
    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    results: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    watched = IDLE_NS if args.idle_watches else FLOOD_NS
    proc = ctx.Process(target=_flooder, args=(address, args.watches, watched, args.workers,
                                              args.seconds, round_, ready, results))
    proc.start()
    ready.get(timeout=120)
    latencies = asyncio.run(probe(address, args.seconds))
    outcome = results.get(timeout=120)
    proc.join(30)
    return latencies, outcome


def summary(latencies: list[float]) -> tuple[float, float]:
    return percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--watches", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=400,
                        help="concurrent creates of the flood (default: twice the default "
                             "bound of writes)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bounds", default="400/200,0/0",
                        help="comma-separated READS/WRITES in flight to compare (0/0: none)")
    parser.add_argument("--idle-watches", action="store_true",
                        help="the watches watch a namespace nothing happens in (their cost "
                             "without the fan-out of the creates)")
    args = parser.parse_args()

    rows: dict[str, list[tuple[float, float]]] = {}
    floods: dict[str, list[tuple[float, int, int]]] = {}
    for n, bound in enumerate(args.bounds.split(",")):
        reads, _, writes = bound.partition("/")
        label = f"bounds {bound}" if bound != "0/0" else "no bounds (0/0)"
        with cluster("--max-requests-inflight", reads,
                     "--max-mutating-requests-inflight", writes) as bench:
            asyncio.run(prepare(bench.address))
            for r in range(args.rounds):
                if n == 0:  # the quiet baseline, on the first server
                    rows.setdefault("no flood", []).append(
                        summary(asyncio.run(probe(bench.address, args.seconds))))
                latencies, outcome = flooded(bench.address, args, r)
                rows.setdefault(f"flood, {label}", []).append(summary(latencies))
                floods.setdefault(f"flood, {label}", []).append(outcome)

    print(f"get latency of another client ({args.rounds} rounds of {args.seconds:g} s, "
          f"medians of the rounds); the flood: {args.workers} concurrent creates and "
          f"{args.watches} watches of "
          f"{'an idle namespace' if args.idle_watches else 'what it creates'}")
    print(f"{'':28} {'get p50':>10} {'get p99':>10} {'creates/s':>10} {'refused':>9} "
          f"{'events':>10}")
    for name, values in rows.items():
        p50 = statistics.median(v[0] for v in values)
        p99 = statistics.median(v[1] for v in values)
        line = f"{name:28} {p50:8.1f}ms {p99:8.1f}ms"
        if name in floods:
            rate = statistics.median(f[0] for f in floods[name])
            refused = statistics.median(f[1] for f in floods[name])
            events = statistics.median(f[2] for f in floods[name])
            line += f" {rate:10.0f} {refused:9.0f} {events:10.0f}"
        print(line)


if __name__ == "__main__":
    main()
