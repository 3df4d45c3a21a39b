"""The apiserver to etcd over TLS: etcd demands a client certificate from the cluster CA,
and plaintext to an etcd beyond loopback is refused before anything is sent."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.apiserver import ApiServerProcess

from cluster.etcd import find_etcd
from cluster.process import free_ports
from skiff import pki
from skiff.api.v1 import core_pb2
from skiff.client.client import Client

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tls_etcd(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An etcd that serves only TLS and checks client certificates; (endpoint, pki dir)."""
    ca = pki.new_ca("etcd-ca")
    server = pki.issue(ca, common_name="etcd", usage=pki.Usage.SERVER, ips=["127.0.0.1"],
                       dns_names=["localhost"])
    client = pki.issue(ca, common_name="kube-apiserver-etcd-client")
    files = tmp_path / "pki"
    files.mkdir()
    for name, data in {"ca.crt": ca.cert, "server.crt": server.cert, "server.key": server.key,
                       "client.crt": client.cert, "client.key": client.key}.items():
        (files / name).write_bytes(data)
    port, peer = free_ports(2)
    binary, _ = find_etcd()
    url = f"https://127.0.0.1:{port}"
    with open(tmp_path / "etcd.log", "wb") as log:
        proc = subprocess.Popen([
            binary, "--name", "tls", "--data-dir", str(tmp_path / "etcd"),
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"tls=http://127.0.0.1:{peer}",
            "--cert-file", str(files / "server.crt"), "--key-file", str(files / "server.key"),
            "--trusted-ca-file", str(files / "ca.crt"), "--client-cert-auth",
            "--logger", "zap", "--log-outputs", "stderr"], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield url, files
    finally:
        proc.terminate()
        proc.wait(10)


async def test_the_apiserver_stores_through_an_etcd_that_demands_certificates(
        tls_etcd: tuple[str, Path], tmp_path: Path) -> None:
    url, files = tls_etcd
    apiserver = ApiServerProcess(url, tmp_path / "apiserver.log", extra_args=(
        "--etcd-cafile", str(files / "ca.crt"), "--etcd-certfile", str(files / "client.crt"),
        "--etcd-keyfile", str(files / "client.key"))).start()
    try:
        async with Client(apiserver.address) as client:
            cm = core_pb2.ConfigMap()
            cm.metadata.name, cm.metadata.namespace = "over-tls", "default"
            cm.data["k"] = "v"
            deadline = time.monotonic() + 30
            while True:  # the apiserver waits for etcd to elect itself
                try:
                    await client.create(cm)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            got = await client.get(core_pb2.ConfigMap, "over-tls", "default")
            assert got.data["k"] == "v"
    finally:
        apiserver.stop()


def test_plaintext_to_an_etcd_beyond_loopback_is_refused_at_start() -> None:
    out = subprocess.run([sys.executable, "-m", "apiserver.main", "--etcd-servers",
                          "192.0.2.1:2379", "--port", "0"], cwd=REPO, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == (
        "skiff-apiserver: etcd at 192.0.2.1:2379 is beyond loopback: talk to it over TLS "
        "(--etcd-cafile, and --etcd-certfile/--etcd-keyfile if etcd checks clients)")
