"""What TLS costs the apiserver: mTLS against plaintext, on one etcd, in the same run.

Prints, medians over rounds (the two apiservers take turns, so drift hits both alike):
- creates/s with 16 concurrent clients sharing one connection (as a daemon's client does),
  plaintext and with client certificates, and their ratio (issue 13's goal: >= 0.9,
  moonshot 0.97);
- a new connection and one `get` (what each CLI command pays), plaintext and mTLS, p50.

Usage: python bench/apiserver_tls.py [--creates N] [--rounds R] [--connects N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import cluster, percentile
from cluster.certs import ClusterPki
from skiff.api.v1 import core_pb2
from skiff.client.client import Client
from skiff.client.config import ClientConfig
from skiff.client.transport import ClientCredentials

CLIENTS = 16


def config_map(name: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = name, "default"
    cm.data["payload"] = "x" * 120
    return cm


async def create_rate(address: str, credentials: ClientCredentials, total: int,
                      prefix: str) -> float:
    async with Client(address, credentials=credentials) as client:
        await client.version()  # connected (and the handshake done) before the clock starts
        per_client = total // CLIENTS

        async def worker(i: int) -> None:
            for j in range(per_client):
                await client.create(config_map(f"{prefix}-{i}-{j}"))

        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(CLIENTS)))
        return per_client * CLIENTS / (time.perf_counter() - start)


async def connect_and_get(address: str, credentials: ClientCredentials, times: int
                          ) -> list[float]:
    latencies = []
    for _ in range(times):
        start = time.perf_counter()
        async with Client(address, credentials=credentials) as client:
            await client.get(core_pb2.Namespace, "default")
        latencies.append(time.perf_counter() - start)
    return latencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=3200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connects", type=int, default=50)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="skiff-bench-tls-"))
    pki = ClusterPki(work / "pki")
    configs = {"admin": work / "admin.conf"}
    pki.ensure_local_cluster(node_name="bench", node_ips=["127.0.0.1"],
                             server="127.0.0.1:0", configs=configs)
    admin = ClientConfig.load(configs["admin"])
    mtls = ClientCredentials(ca=admin.ca, cert=admin.cert, key=admin.key)
    tls_flags = ("--tls-cert-file", str(pki.cert("apiserver")),
                 "--tls-private-key-file", str(pki.key("apiserver")),
                 "--client-ca-file", str(pki.ca_cert))
    rates: dict[str, list[float]] = {"plaintext": [], "TLS": [], "mTLS": []}
    connects: dict[str, list[float]] = {"plaintext": [], "TLS": [], "mTLS": []}
    with cluster() as plain, cluster(*tls_flags) as secure, \
            cluster(*tls_flags[:4]) as server_only:
        # TLS with no client certificates: what the encryption costs, apart from the
        # authentication by certificate.
        targets = {"plaintext": (plain.address, ClientCredentials()),
                   "TLS": (server_only.address, ClientCredentials(ca=admin.ca)),
                   "mTLS": (secure.address, mtls)}
        for r in range(args.rounds):
            for name, (address, credentials) in targets.items():
                rates[name].append(asyncio.run(
                    create_rate(address, credentials, args.creates, f"r{r}")))
                connects[name] += asyncio.run(
                    connect_and_get(address, credentials, args.connects))
    plain_rate = statistics.median(rates["plaintext"])
    tls_rate = statistics.median(rates["mTLS"])
    print(f"apiserver creates/s, {CLIENTS} clients on one connection, median of "
          f"{args.rounds} rounds of {args.creates}:")
    print(f"  plaintext {plain_rate:8.0f}/s")
    server_tls = statistics.median(rates["TLS"])
    print(f"  TLS       {server_tls:8.0f}/s   ratio TLS/plaintext {server_tls / plain_rate:.2f} "
          "(no client certificates)")
    print(f"  mTLS      {tls_rate:8.0f}/s   ratio mTLS/plaintext {tls_rate / plain_rate:.2f} "
          "(goal >= 0.9)")
    print(f"new connection + one get ({args.connects * args.rounds} each), p50 / p99:")
    for name, values in connects.items():
        print(f"  {name:9} {percentile(values, 50) * 1000:6.1f} ms / "
              f"{percentile(values, 99) * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
