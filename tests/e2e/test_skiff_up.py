"""The whole user path: `skiff up -d`, the CLI against it with the written config (TLS, the
cluster CA, the admin's client certificate), bad input refused with one clear line and
nothing stored, then `skiff down`."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dnslib import DNSRecord

from cluster.components import dns_cleanup_command, kubelet_cleanup_command
from cluster.process import free_ports
from skiff import pki

REPO = Path(__file__).resolve().parents[2]


def skiff(*args: str, config: Path | None = None, stdin: str | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "cli.main"]
    if config:
        argv += ["--config", str(config)]
    return subprocess.run([*argv, *args], cwd=REPO, input=stdin, capture_output=True,
                          text=True, timeout=timeout)


def node_name(data: Path) -> str:
    """The node name of the cluster in `data`: its own, so it shares nothing with another
    cluster on this host, and derived from the path so clean-up can find it again."""
    return "up-" + hashlib.sha1(str(data).encode()).hexdigest()[:8]


def cluster_dns(data: Path) -> str:
    """A cluster DNS address of its own, in the service range (10.96.0.0/12), so that the
    skiff-dns of clusters running side by side each hold and answer their own."""
    digest = hashlib.sha1(str(data).encode()).digest()
    return f"10.{100 + digest[0] % 10}.{digest[1]}.{2 + digest[2] % 250}"


def cluster_args(data: Path) -> tuple[str, ...]:
    """Flags for a private cluster: free ports (etcd's peer port is its port + 1), a node
    name and a cluster DNS address of its own."""
    while True:
        api_port, etcd_port, kubelet_port = free_ports(3)
        if etcd_port + 1 not in (api_port, kubelet_port):
            break
    return ("--data-dir", str(data), "--port", str(api_port), "--etcd-port", str(etcd_port),
            "--kubelet-port", str(kubelet_port), "--node-name", node_name(data),
            "--cluster-dns", cluster_dns(data))


def down(data: Path) -> None:
    """`skiff down`, then removes the containers, the pods bridge, and the pod network's
    rules and routes its kubelet left (down leaves pods running, as stopping k3s does, so
    that the next `up` adopts them). The next cluster's node gets the same podCIDR, which
    a bridge left here would collide with."""
    stopped = skiff("down", "--data-dir", str(data))
    assert stopped.returncode == 0, stopped.stderr
    remove_node_leftovers(node_name(data))
    subprocess.run(dns_cleanup_command(cluster_dns(data)), cwd=REPO, capture_output=True,
                   timeout=60)


def remove_node_leftovers(node: str) -> None:
    """What a stopped kubelet of `node` leaves on this host: its pods' containers, its
    pods bridge, the pod network's rules and routes."""
    label = f"label=io.skiff.node={node}"
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", label],
                         capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
    networks = subprocess.run(["docker", "network", "ls", "-q", "--filter", label],
                              capture_output=True, text=True).stdout.split()
    if networks:
        subprocess.run(["docker", "network", "rm", *networks], capture_output=True)
    subprocess.run(kubelet_cleanup_command(node_name=node), cwd=REPO, capture_output=True,
                   timeout=60)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data = tmp_path_factory.mktemp("skiff-up")
    started = skiff("up", "-d", *cluster_args(data))
    assert started.returncode == 0, started.stderr
    try:
        yield data / "config"
    finally:
        down(data)
        assert not list((data / "run").glob("*.pid"))


def test_up_writes_a_tls_config_with_the_admins_certificate(cluster: Path) -> None:
    config = yaml.safe_load(cluster.read_text())  # a kubeconfig, its context "skiff"
    assert (config["kind"], config["current-context"]) == ("Config", "skiff")
    assert config["contexts"] == [{"name": "skiff", "context": {"cluster": "skiff",
                                                                "user": "skiff"}}]
    assert config["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
    assert "certificate-authority-data" in config["clusters"][0]["cluster"]
    assert {"client-certificate-data", "client-key-data"} <= set(config["users"][0]["user"])
    data = cluster.parent
    for secret in (cluster, data / "pki" / "ca.key", data / "pki" / "apiserver.key",
                   *data.glob("*.conf")):
        assert secret.stat().st_mode & 0o777 == 0o600, secret
    who = skiff("auth", "whoami", config=cluster)
    assert who.returncode == 0, who.stderr
    assert who.stdout.split("\n")[1:3] == ["Username    admin",
                                            "Groups      [system:masters system:authenticated]"]


def test_its_dns_answers_on_the_cluster_dns_address_which_kube_dns_holds(
        cluster: Path) -> None:
    address = cluster_dns(cluster.parent)
    held = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "lo", "label",
                           "lo:skiff-dns"], capture_output=True, text=True).stdout
    assert f"{address}/32" in held
    svc = skiff("get", "svc", "kube-dns", "-n", "kube-system", config=cluster)
    assert svc.returncode == 0, svc.stderr
    assert svc.stdout.split("\n")[1].split()[:4] == ["kube-dns", "ClusterIP", address,
                                                     "<none>"]
    query = DNSRecord.question("kube-dns.kube-system.svc.cluster.local", "A")
    answer = None
    for _ in range(50):  # skiff-dns opens its sockets once its caches synced
        try:
            answer = DNSRecord.parse(query.send(address, 53, timeout=1.0))
            break
        except OSError:
            time.sleep(0.2)
    assert answer is not None and [str(r.rdata) for r in answer.rr] == [address]


@pytest.mark.parametrize(("component", "user", "groups"), [
    ("scheduler", "system:kube-scheduler", "[system:authenticated]"),
    ("controller-manager", "system:kube-controller-manager", "[system:authenticated]"),
    ("kubelet", "system:node:{node}", "[system:nodes system:authenticated]")])
def test_each_component_is_known_by_its_own_certificate(
        cluster: Path, component: str, user: str, groups: str) -> None:
    who = skiff("auth", "whoami", "-o", "yaml", config=cluster.parent / f"{component}.conf")
    assert who.returncode == 0, who.stderr
    info = yaml.safe_load(who.stdout)["status"]["userInfo"]
    assert info["username"] == user.format(node=node_name(cluster.parent))
    assert f"[{' '.join(info['groups'])}]" == groups

def test_up_runs_a_kubelet_whose_node_becomes_ready(cluster: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        out = skiff("get", "nodes", config=cluster)
        rows = [line.split() for line in out.stdout.splitlines()[1:]]
        if any(len(r) > 1 and r[1] == "Ready" for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert any(r[1] == "Ready" for r in rows), out.stdout + out.stderr


def test_a_pod_without_a_node_is_scheduled_and_runs(cluster: Path, busybox_image: str) -> None:
    manifest = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "placed"},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
            "name": "app", "image": busybox_image, "imagePullPolicy": "Never",
            "command": ["sleep", "3600"],
            "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}}}]}})
    assert skiff("apply", "-f", "-", config=cluster, stdin=manifest).returncode == 0
    try:
        deadline = time.monotonic() + 60
        while True:
            out = skiff("get", "pod", "placed", "-o", "wide", config=cluster)
            row = out.stdout.splitlines()[1].split() if out.returncode == 0 else []
            if (row and row[2] == "Running") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert row and row[2] == "Running", out.stdout + out.stderr
        pod = yaml.safe_load(skiff("get", "pod", "placed", "-o", "yaml", config=cluster).stdout)
        node = pod["spec"]["nodeName"]
        assert node.startswith("up-")
        # The controller manager gave the node a podCIDR; the kubelet's pods bridge has it.
        pod_cidr = yaml.safe_load(skiff("get", "node", node, "-o", "yaml",
                                        config=cluster).stdout)["spec"]["podCIDR"]
        assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(pod_cidr)
        described = skiff("describe", "pod", "placed", config=cluster).stdout
        assert f"Successfully assigned default/placed to {node}" in described, described
    finally:
        skiff("delete", "pod", "placed", config=cluster)


def test_without_a_client_certificate_the_server_refuses_and_says_what_to_use(
        cluster: Path, tmp_path: Path) -> None:
    server = yaml.safe_load(cluster.read_text())["clusters"][0]["cluster"]["server"]
    plain = tmp_path / "plain"  # a config of the days before TLS: an address, nothing else
    plain.write_text(yaml.safe_dump({"server": server.removeprefix("https://")}))
    plaintext = skiff("get", "ns", config=plain)
    assert plaintext.returncode == 1
    assert "if the server speaks TLS it needs a client config with https://" in \
        plaintext.stderr
    stranger = tmp_path / "stranger"  # the CA of another cluster
    config = yaml.safe_load(cluster.read_text())
    ca = pki.new_ca()
    config["clusters"][0]["cluster"]["certificate-authority-data"] = \
        base64.b64encode(ca.cert).decode()
    stranger.write_text(yaml.safe_dump(config))
    out = skiff("get", "ns", config=stranger)
    assert out.returncode == 1
    assert out.stderr.strip().endswith("TLS handshake failed: the server's certificate is not "
                                       "signed by the CA the client trusts (certificate-"
                                       "authority-data of the client config): is the config "
                                       "for this cluster?"), out.stderr


def test_logs_and_exec_go_through_the_apiserver_the_only_caller_a_kubelet_accepts(
        cluster: Path, busybox_image: str) -> None:
    manifest = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker"},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
            "name": "app", "image": busybox_image, "imagePullPolicy": "Never",
            "command": ["sh", "-c", "echo said-over-tls; sleep 3600"]}]}})
    assert skiff("apply", "-f", "-", config=cluster, stdin=manifest).returncode == 0
    try:
        deadline = time.monotonic() + 60
        while "said-over-tls" not in (logs := skiff("logs", "talker", config=cluster)).stdout:
            assert time.monotonic() < deadline, logs.stderr
            time.sleep(0.5)
        out = skiff("exec", "talker", "--", "echo", "exec-over-tls", config=cluster)
        assert out.stdout == "exec-over-tls\n", out.stderr
        # The admin's certificate is from the same CA, but a kubelet answers only the
        # apiserver's: exec is a root shell on the node.
        kubelet_port = int(cluster_flag(cluster.parent, "kubelet_port"))
        direct = subprocess.run([sys.executable, "-c", KUBELET_CALL, str(cluster),
                                 str(kubelet_port)], cwd=REPO, capture_output=True, text=True,
                                timeout=30)
        assert direct.stdout.strip() == "UNAUTHENTICATED", direct.stdout + direct.stderr
    finally:
        skiff("delete", "pod", "talker", config=cluster)


def cluster_flag(data: Path, name: str) -> object:
    return json.loads((data / "cluster.json").read_text())[name]


# Calls a kubelet's Logs directly with a client config's certificate; prints the status.
KUBELET_CALL = """
import asyncio, sys, grpc
from skiff.client.config import ClientConfig
from skiff.client.transport import open_channel
from skiff.api.v1 import kubelet_pb2 as k
async def main():
    channel = open_channel("127.0.0.1:" + sys.argv[2], ClientConfig.load(sys.argv[1]).credentials())
    request = k.LogsRequest(namespace="default", pod="talker", container="app")
    try:
        async for _ in channel.unary_stream("/skiff.api.v1.Kubelet/Logs")(
                request.SerializeToString(), timeout=10):
            print("ANSWERED")
            break
    except grpc.aio.AioRpcError as err:
        print(err.code().name)
asyncio.run(main())
"""


def test_apply_get_describe_delete(cluster: Path) -> None:
    out = skiff("apply", "-f", str(REPO / "examples" / "web.yaml"), config=cluster)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["configmap/web-page created",
                                       "deployment.apps/web created", "service/web created"]
    again = skiff("apply", "-f", str(REPO / "examples" / "web.yaml"), config=cluster)
    assert again.stdout.splitlines() == ["configmap/web-page unchanged",
                                         "deployment.apps/web unchanged",
                                         "service/web unchanged"]
    table = skiff("get", "deploy,svc", config=cluster)
    assert table.returncode == 0, table.stderr
    assert "web" in table.stdout and "ClusterIP" in table.stdout
    described = skiff("describe", "deployment", "web", config=cluster)
    assert "RollingUpdateStrategy" in described.stdout, described.stdout
    gone = skiff("delete", "-f", str(REPO / "examples" / "web.yaml"), config=cluster)
    assert gone.returncode == 0, gone.stderr
    missing = skiff("get", "deployment", "web", config=cluster)
    assert missing.returncode == 1
    assert 'deployments.apps "web" not found' in missing.stderr


@pytest.mark.parametrize("manifest,expected", [
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: x\n", "error parsing"),
    ("apiVersion: v1\nkind: Gadget\nmetadata: {name: g}\n", 'no matches for kind "Gadget"'),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: typed}\nspec:\n  containers:\n"
     "  - {name: c, image: i, ports: [{containerPort: eighty}]}\n",
     "spec.containers[0].ports[0].containerPort: expected an integer"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: Capital}\nspec:\n  containers:\n"
     "  - {name: c, image: i}\n", 'metadata.name: Invalid value: "Capital"'),
    ("apiVersion: v1\nkind: Secret\nmetadata: {name: huge}\nstringData:\n  blob: "
     # Past the 1 MiB cap on data, yet with the last-applied annotation within the 3 MiB
     # request limit (a 2 MiB one is refused as too large a request, as Kubernetes does).
     + "x" * (1200 * 1024) + "\n", "Too long: must have at most 1048576 bytes"),
])
def test_bad_input_is_one_clear_line_and_stores_nothing(cluster: Path, manifest: str,
                                                        expected: str) -> None:
    out = skiff("apply", "-f", "-", config=cluster, stdin=manifest)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and expected in errors[0], out.stderr
    for kind, name in (("pod", "x"), ("pod", "typed"), ("pod", "Capital"),
                       ("secret", "huge")):
        assert skiff("get", kind, name, config=cluster).returncode == 1


def test_down_then_up_keeps_the_data(tmp_path: Path) -> None:
    args = cluster_args(tmp_path)
    assert skiff("up", "-d", *args).returncode == 0
    config = tmp_path / "config"
    try:
        assert skiff("create", "namespace", "kept", config=config).returncode == 0
    finally:
        down(tmp_path)
    assert skiff("up", "-d", *args).returncode == 0
    try:
        deadline = time.monotonic() + 20
        while True:
            out = skiff("get", "ns", "kept", config=config)
            if out.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert out.returncode == 0, out.stderr
    finally:
        down(tmp_path)


def test_foreground_up_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up", *cluster_args(tmp_path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        pid_files = tmp_path / "run"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out = skiff("get", "ns", "default", config=tmp_path / "config") \
                if (tmp_path / "config").exists() else None
            if out is not None and out.returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail("skiff up did not come up")
        # skiff up itself, etcd, apiserver, scheduler, controller manager, kubelet, dns
        # (the last starts after the apiserver answers)
        while len(list(pid_files.glob("*.pid"))) < 7 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = [int(p.read_text()) for p in pid_files.glob("*.pid")]
        assert len(pids) == 7, sorted(p.name for p in pid_files.glob("*.pid"))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or \
                Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        assert not list(pid_files.glob("*.pid"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # What a stopped cluster leaves (pods, their network, its DNS address) goes too;
        # after a kill, also what the supervisor started.
        down(tmp_path)
