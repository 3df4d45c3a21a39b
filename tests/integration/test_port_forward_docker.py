"""`skiff port-forward` through the whole real chain: the CLI (a subprocess) listens on this
host's loopback; each connection is a stream to the apiserver, proxied to a `skiff-kubelet`
process, which connects inside the pod's network namespace on the real Docker engine.

The pod's web server listens on the pod's 127.0.0.1 only (unreachable from outside the pod),
and a second container answers how many bytes it read once the client half-closed (a
request/response exchange that needs end of file to pass through). Traffic goes only to
this host's loopback and to the pods started here.
"""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from typing import IO, Any

import pytest
from fixtures.cli import ENV, REPO, Cli
from fixtures.kubelet import KubeletProcess, kubelet, kubelet_factory  # noqa: F401
from test_kubelet_pods import GRACE, running_and_ready, wait_pod

from cluster.process import free_ports
from skiff.api.v1 import core_pb2
from skiff.client.client import Client

PAGE = "hello from the pod's loopback"
FORWARDING = re.compile(r"^Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)$")


class Forwarding:
    """A `skiff port-forward` process; its stdout and stderr lines read as they come."""

    def __init__(self, cli: Cli, *args: str) -> None:
        self.proc = subprocess.Popen(cli.argv("port-forward", *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=REPO, env=ENV)
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _read(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
        assert stream is not None
        for line in stream:
            lines.put(line.rstrip("\n"))

    def ports(self, count: int) -> dict[int, int]:
        """remote -> local, from the first `count` `Forwarding from 127.0.0.1` lines."""
        found: dict[int, int] = {}
        seen: list[str] = []
        while len(found) < count:
            try:
                line = self.out.get(timeout=30)
            except queue.Empty:
                raise AssertionError(f"no Forwarding lines: {seen} {self.stderr()}") from None
            seen.append(line)
            m = FORWARDING.match(line)
            if m:
                found[int(m.group(2))] = int(m.group(1))
        return found

    def wait_line(self, lines: queue.Queue[str], text: str, timeout: float = 30) -> str:
        seen: list[str] = []
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line with {text!r}: {seen}") from None
            seen.append(line)
            if text in line:
                return line

    def stderr(self) -> list[str]:
        lines = []
        while not self.err.empty():
            lines.append(self.err.get())
        return lines

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def forwardings() -> Iterator[list[Forwarding]]:
    started: list[Forwarding] = []
    yield started
    for f in started:
        f.kill()


def get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=20) as response:
        return response.read().decode().strip()


def exchange(port: int, data: bytes) -> bytes:
    """Sends `data`, half-closes, reads until the other side closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def web_pod(ns: str, node: str, image: str, name: str = "pf-web", **spec: Any
            ) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": GRACE, **spec,
                 "containers": [
                     {"name": "web", "image": image, "imagePullPolicy": "Never",
                      "command": ["sh", "-c", f"mkdir -p /www && echo \"{PAGE}\" > "
                                  "/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"],
                      "ports": [{"name": "http", "containerPort": 8080}]},
                     {"name": "count", "image": image, "imagePullPolicy": "Never",
                      "command": ["nc", "-ll", "-p", "9000", "-e", "wc", "-c"],
                      "ports": [{"name": "count", "containerPort": 9000}]}]},
    }


def service(ns: str, name: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": app}, "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "count", "port": 90, "targetPort": 9000}]},
    }


async def start_web(client: Client, ns: str, node: str, image: str) -> core_pb2.Pod:
    await client.create_manifest(web_pod(ns, node, image))
    await client.create_manifest(service(ns, "pf-web", "pf-web"))
    return await wait_pod(client, ns, "pf-web", running_and_ready, "Running", timeout=60)


async def test_pod_and_service_forwarding(kubelet: KubeletProcess, client: Client,  # noqa: F811
                                          ns: str, busybox_image: str, cli: Cli,
                                          forwardings: list[Forwarding]) -> None:
    pod = await start_web(client, ns, kubelet.node_name, busybox_image)
    # The server is on the pod's loopback only: nothing outside the pod reaches it.
    with pytest.raises(OSError):
        socket.create_connection((pod.status.pod_ip, 8080), timeout=3).close()

    fwd = Forwarding(cli, "-n", ns, "pod/pf-web", ":8080", ":count")
    forwardings.append(fwd)
    ports = fwd.ports(2)
    assert set(ports) == {8080, 9000}
    assert get(ports[8080]) == PAGE
    fwd.wait_line(fwd.out, f"Handling connection for {ports[8080]}")
    # End of file reaches the pod's side, and its answer still comes back.
    assert exchange(ports[9000], b"x" * 100_000) == b"100000\n"

    # Two connections at once: the second is answered while the first is still open.
    with socket.create_connection(("127.0.0.1", ports[8080]), timeout=20) as first, \
            socket.create_connection(("127.0.0.1", ports[8080]), timeout=20) as second:
        second.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert PAGE in read_all(second).decode()
        first.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert PAGE in read_all(first).decode()
    assert fwd.stop() == 0

    # A service's port becomes the pod's: 80 -> the named targetPort http (8080), and a
    # bare port keeps the service port's number locally.
    local = free_ports(1)[0]
    svc = Forwarding(cli, "-n", ns, "svc/pf-web", ":80", f"{local}:count",
                     "--address", "127.0.0.1")
    forwardings.append(svc)
    ports = svc.ports(2)
    assert set(ports) == {8080, 9000} and ports[9000] == local
    assert get(ports[8080]) == PAGE
    assert exchange(local, b"abc") == b"3\n"

    # A deployment's pod (its selector's; no controller runs here, the pod is there).
    await client.create_manifest({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "pf-deploy", "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": "pf-web"}}, "template": {
            "metadata": {"labels": {"app": "pf-web"}},
            "spec": {"containers": [{"name": "web", "image": busybox_image}]}}}})
    deploy = Forwarding(cli, "-n", ns, "deployment/pf-deploy", ":http", "--address",
                        "127.0.0.1")
    forwardings.append(deploy)
    assert get(deploy.ports(1)[8080]) == PAGE
    assert deploy.stop() == 0

    # The pod going away ends the command, as kubectl's "lost connection to pod".
    await client.delete(core_pb2.Pod, "pf-web", ns)
    assert svc.proc.wait(60) == 1
    assert "error: lost connection to pod" in svc.stderr()


async def test_port_forward_errors(kubelet: KubeletProcess, client: Client,  # noqa: F811
                                   ns: str, busybox_image: str, cli: Cli,
                                   forwardings: list[Forwarding]) -> None:
    pod = await start_web(client, ns, kubelet.node_name, busybox_image)
    await client.create_manifest(service(ns, "pf-nobody", "nobody"))
    pending = web_pod(ns, "skiff-pf-no-such-node", busybox_image, name="pf-pending")
    await client.create_manifest(pending)

    def fails(*args: str) -> str:
        result = cli("port-forward", "-n", ns, *args)
        assert result.returncode == 1, (result.stdout, result.stderr)
        return result.stderr

    assert 'pods "nope" not found' in fails("pod/nope", "8080")
    assert 'services "nope" not found' in fails("svc/nope", "80")
    assert "Service pf-web does not have a service port 81" in fails("svc/pf-web", "81")
    assert "Service 'pf-web' does not have a named port 'nope'" in fails("svc/pf-web", "nope")
    assert "Pod 'pf-web' does not have a named port 'nope'" in fails("pf-web", "8080:nope")
    assert "no pods found for service/pf-nobody" in fails(
        "svc/pf-nobody", "80", "--pod-running-timeout", "1s")
    assert ("unable to forward port because pod is not running. Current status=Pending"
            in fails("pod/pf-pending", "8080"))
    assert "invalid port format '1:2:3'" in fails("pf-web", "1:2:3")
    assert "TYPE/NAME and list of ports are required" in fails("pf-web")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = fails("pf-web", f"{port}:8080", "--address", "127.0.0.1")
    assert "address already in use" in err
    assert f"unable to listen on any of the requested ports: [{{{port} 8080}}]" in err

    # Nothing listens on 7777 in the pod: that connection is closed and the error said;
    # the command goes on serving the other port.
    fwd = Forwarding(cli, "-n", ns, "pf-web", ":7777", ":8080", "--address", "127.0.0.1")
    forwardings.append(fwd)
    ports = fwd.ports(2)
    with socket.create_connection(("127.0.0.1", ports[7777]), timeout=20) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):  # closed, whichever way
            assert read_all(sock) == b""
    line = fwd.wait_line(fwd.err, "an error occurred forwarding")
    assert line.startswith(f"an error occurred forwarding {ports[7777]} -> 7777: error "
                           f"forwarding port 7777 to pod pf-web, uid {pod.metadata.uid}: "
                           "failed to connect to localhost:7777 inside namespace"), line
    assert "connection refused" in line
    assert fwd.proc.poll() is None
    assert get(ports[8080]) == PAGE
    assert fwd.stop() == 0


async def test_host_network_pod(kubelet: KubeletProcess, client: Client,  # noqa: F811
                                ns: str, busybox_image: str, cli: Cli,
                                forwardings: list[Forwarding]) -> None:
    """A hostNetwork pod's port is the node's own loopback (here: this host's)."""
    port = free_ports(1)[0]
    await client.create_manifest({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pf-host", "namespace": ns},
        "spec": {"nodeName": kubelet.node_name, "hostNetwork": True,
                 "terminationGracePeriodSeconds": GRACE, "containers": [
                     {"name": "web", "image": busybox_image, "imagePullPolicy": "Never",
                      "command": ["sh", "-c", f"mkdir -p /tmp/www && echo \"{PAGE}\" > "
                                  f"/tmp/www/index.html && exec httpd -f -p 127.0.0.1:{port} "
                                  "-h /tmp/www"]}]}})
    await wait_pod(client, ns, "pf-host", running_and_ready, "Running", timeout=60)
    fwd = Forwarding(cli, "-n", ns, "pod/pf-host", f":{port}")
    forwardings.append(fwd)
    assert get(fwd.ports(1)[port]) == PAGE
    assert fwd.stop() == 0
