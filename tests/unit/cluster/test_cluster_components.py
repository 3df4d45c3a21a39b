"""The daemons' command lines, built in one place (cluster.components) for `skiff up`, the
test fixtures and the benchmarks."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from cluster.components import (
    ClusterConfig,
    apiserver_command,
    cluster_components,
    controller_manager_command,
    kubelet_command,
    ports_in_use,
    scheduler_command,
)

PY = [sys.executable, "-m"]


def test_skiff_up_runs_each_daemon_with_its_flags() -> None:
    cfg = ClusterConfig(Path("/d"), port=6443, etcd_port=2379, kubelet_port=10250,
                        node_name="n1")
    argv = {c.name: c.argv for c in cluster_components(cfg, "/bin/etcd")}
    assert list(argv) == ["etcd", "apiserver", "scheduler", "controller-manager", "kubelet",
                          "dns"]
    assert argv["etcd"][:5] == ["/bin/etcd", "--name", "skiff", "--data-dir", "/d/etcd"]
    assert "http://127.0.0.1:2380" in argv["etcd"]  # the peer port is the client port + 1
    assert argv["apiserver"] == [
        *PY, "apiserver.main", "--etcd-servers", "127.0.0.1:2379",
        "--kube-dns-service-ip", "10.96.0.10", "--bind-address", "127.0.0.1", "--port", "6443",
        "--cluster-signing-cert-file", "/d/pki/ca.crt", "--cluster-signing-key-file",
        "/d/pki/ca.key", "--tls-cert-file", "/d/pki/apiserver.crt",
        "--tls-private-key-file", "/d/pki/apiserver.key",
        "--client-ca-file", "/d/pki/ca.crt",
        "--kubelet-client-certificate", "/d/pki/apiserver-kubelet-client.crt",
        "--kubelet-client-key", "/d/pki/apiserver-kubelet-client.key",
        "--kubelet-certificate-authority", "/d/pki/ca.crt"]
    # Each client its own config, holding its own certificate.
    assert argv["scheduler"] == [*PY, "scheduler.main", "--config", "/d/scheduler.conf"]
    assert argv["controller-manager"] == [*PY, "controllers.main", "--config",
                                          "/d/controller-manager.conf"]
    assert argv["kubelet"] == [*PY, "kubelet.main", "--config", "/d/kubelet.conf",
                               "--root-dir", "/d/kubelet", "--port", "10250",
                               "--tls-cert-file", "/d/pki/kubelet.crt",
                               "--tls-private-key-file", "/d/pki/kubelet.key",
                               "--client-ca-file", "/d/pki/ca.crt", "--node-name", "n1",
                               "--cluster-dns", "10.96.0.10"]
    # skiff-dns on the cluster DNS address, with the node's identity.
    assert argv["dns"] == [*PY, "clusterdns.main", "--config", "/d/kubelet.conf",
                           "--bind-address", "10.96.0.10"]


def test_without_cluster_dns_there_is_no_dns_and_pods_get_the_hosts() -> None:
    cfg = ClusterConfig(Path("/d"), cluster_dns="")
    argv = {c.name: c.argv for c in cluster_components(cfg, "/bin/etcd")}
    assert "dns" not in argv
    assert "--cluster-dns" not in argv["kubelet"]
    assert "--kube-dns-service-ip" not in argv["apiserver"]


def test_without_a_node_name_the_kubelet_uses_the_host_name() -> None:
    cfg = ClusterConfig(Path("/d"), port=1, etcd_port=2)
    kubelet = {c.name: c.argv for c in cluster_components(cfg, "etcd")}["kubelet"]
    assert "--node-name" not in kubelet


def test_commands_for_tests_and_benchmarks() -> None:
    assert apiserver_command(etcd_servers="127.0.0.1:1", port=2, log_level="WARNING",
                             extra=("--x",)) == [
        *PY, "apiserver.main", "--etcd-servers", "127.0.0.1:1", "--port", "2",
        "--log-level", "WARNING", "--x"]
    assert scheduler_command(server="127.0.0.1:2", extra=("--lease-name", "l")) == [
        *PY, "scheduler.main", "--server", "127.0.0.1:2", "--lease-name", "l"]
    assert controller_manager_command(server="a:1") == [
        *PY, "controllers.main", "--server", "a:1"]
    assert kubelet_command(server="a:1", root_dir="/r", port=3, node_name="n",
                           node_ip="127.0.0.1", fake_runtime=True) == [
        *PY, "kubelet.main", "--server", "a:1", "--root-dir", "/r", "--port", "3",
        "--node-name", "n", "--node-ip", "127.0.0.1", "--fake-runtime"]


def test_a_data_dir_remembers_its_clusters_settings(tmp_path: Path) -> None:
    assert ClusterConfig.load(tmp_path) == ClusterConfig(tmp_path)  # nothing saved: defaults
    ClusterConfig(tmp_path, port=7000, etcd_port=7001, kubelet_port=7003, node_name="n1").save()
    assert ClusterConfig.load(tmp_path) == ClusterConfig(tmp_path, 7000, 7001, 7003, "n1")
    # A flag given wins over the saved value; None means "not given".
    assert ClusterConfig.load(tmp_path, port=8000, etcd_port=None, node_name=None) == \
        ClusterConfig(tmp_path, 8000, 7001, 7003, "n1")
    (tmp_path / "cluster.json").write_text('{"port": "x", "etcd_port": 9, "other": 1}')
    assert ClusterConfig.load(tmp_path) == ClusterConfig(tmp_path, etcd_port=9)
    (tmp_path / "cluster.json").write_text("[")
    assert ClusterConfig.load(tmp_path) == ClusterConfig(tmp_path)


def test_ports_of_running_components_do_not_count_as_busy() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        cfg = ClusterConfig(Path("/d"), port=port, etcd_port=1, kubelet_port=2)
        assert ports_in_use(cfg) == [f"{port} (--port)"]
        assert ports_in_use(cfg, running=["apiserver"]) == []
