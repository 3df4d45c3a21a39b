"""The processes of a Skiff cluster and their command lines.

Each daemon's command line is built here and nowhere else: `skiff up`, the test fixtures and
the benchmarks all call these functions, so a new flag is added once.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cluster.certs import ClusterPki
from cluster.etcd import etcd_argv, etcd_is_healthy
from cluster.process import child_env, port_is_free, write_atomic

__all__ = [
    "DEFAULT_CLUSTER_DNS",
    "READY_TIMEOUT_SECONDS",
    "ClusterConfig",
    "ComponentSpec",
    "ListenSocket",
    "ReadinessCheck",
    "apiserver_command",
    "cluster_components",
    "controller_manager_command",
    "daemon_command",
    "dns_cleanup_command",
    "dns_command",
    "kubelet_cleanup_command",
    "kubelet_command",
    "ports_in_use",
    "python_daemon",
    "scheduler_command",
    "tcp_ready",
]

READY_TIMEOUT_SECONDS = 30.0

ReadinessCheck = Callable[[], bool]
PathLike = str | Path


# --- command lines --------------------------------------------------------------------------


def daemon_command(module: str, *flags: str) -> list[str]:
    """A Skiff daemon run as `python -m module flags...` with this interpreter, so that it
    runs from the same environment (and the same checkout) as its caller."""
    return [sys.executable, "-m", module, *flags]


def _client_flags(config: PathLike | None, server: str | None) -> list[str]:
    """How a daemon finds the apiserver: a client config file, or a plain address."""
    flags = []
    if config is not None:
        flags += ["--config", str(config)]
    if server is not None:
        flags += ["--server", server]
    return flags


def apiserver_command(
    *,
    etcd_servers: str,
    port: int,
    bind_address: str | None = None,
    token_file: PathLike | None = None,
    kubelet_token_file: PathLike | None = None,
    pki: ClusterPki | None = None,
    cluster_dns: str = "",
    log_level: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """`apiserver.main` over etcd at `etcd_servers` (host:port), serving on `port`; with
    `pki`, over TLS with its certificates, to callers with certificates from its CA; with
    `cluster_dns`, keeping the kube-dns Service at that cluster IP."""
    flags = ["--etcd-servers", etcd_servers]
    if cluster_dns:
        flags += ["--kube-dns-service-ip", cluster_dns]
    if bind_address is not None:
        flags += ["--bind-address", bind_address]
    flags += ["--port", str(port)]
    if token_file is not None:
        flags += ["--token-file", str(token_file)]
    if kubelet_token_file is not None:
        flags += ["--kubelet-token-file", str(kubelet_token_file)]
    if pki is not None:
        flags += ["--cluster-signing-cert-file", str(pki.ca_cert),
                  "--cluster-signing-key-file", str(pki.ca_key),
                  "--tls-cert-file", str(pki.cert("apiserver")),
                  "--tls-private-key-file", str(pki.key("apiserver")),
                  "--client-ca-file", str(pki.ca_cert),
                  "--kubelet-client-certificate", str(pki.cert("apiserver-kubelet-client")),
                  "--kubelet-client-key", str(pki.key("apiserver-kubelet-client")),
                  "--kubelet-certificate-authority", str(pki.ca_cert)]
    if log_level is not None:
        flags += ["--log-level", log_level]
    return daemon_command("apiserver.main", *flags, *extra)


def scheduler_command(
    *, config: PathLike | None = None, server: str | None = None, extra: Sequence[str] = ()
) -> list[str]:
    return daemon_command("scheduler.main", *_client_flags(config, server), *extra)


def controller_manager_command(
    *, config: PathLike | None = None, server: str | None = None, extra: Sequence[str] = ()
) -> list[str]:
    return daemon_command("controllers.main", *_client_flags(config, server), *extra)


def kubelet_command(
    *,
    root_dir: PathLike,
    port: int,
    config: PathLike | None = None,
    server: str | None = None,
    node_name: str | None = None,
    node_ip: str | None = None,
    kubelet_token_file: PathLike | None = None,
    pki: ClusterPki | None = None,
    tls: tuple[PathLike, PathLike, PathLike] | None = None,
    cluster_dns: str = "",
    fake_runtime: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """`kubelet.main`; with `pki` (a local cluster's) or `tls` (certificate, key, client CA:
    a joined host's), its server speaks TLS and answers only the apiserver's kubelet client
    certificate."""
    flags = _client_flags(config, server)
    flags += ["--root-dir", str(root_dir), "--port", str(port)]
    if kubelet_token_file is not None:
        flags += ["--kubelet-token-file", str(kubelet_token_file)]
    if pki is not None:
        tls = (pki.cert("kubelet"), pki.key("kubelet"), pki.ca_cert)
    if tls is not None:
        flags += ["--tls-cert-file", str(tls[0]), "--tls-private-key-file", str(tls[1]),
                  "--client-ca-file", str(tls[2])]
    if node_name:
        flags += ["--node-name", node_name]
    if node_ip is not None:
        flags += ["--node-ip", node_ip]
    if cluster_dns:
        flags += ["--cluster-dns", cluster_dns]
    if fake_runtime:
        flags.append("--fake-runtime")
    return daemon_command("kubelet.main", *flags, *extra)


def dns_command(
    *,
    config: PathLike | None = None,
    server: str | None = None,
    bind_address: str | None = None,
    port: int | None = None,
    cluster_domain: str | None = None,
    resolv_conf: PathLike | None = None,
    upstreams: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> list[str]:
    """`clusterdns.main` (skiff-dns): the cluster DNS on `bind_address:port` (default
    10.96.0.10:53), forwarding other names to `upstreams` (host:port), or else to the
    resolvers of `resolv_conf` (default /etc/resolv.conf, loopback stubs skipped)."""
    flags = _client_flags(config, server)
    if bind_address is not None:
        flags += ["--bind-address", bind_address]
    if port is not None:
        flags += ["--port", str(port)]
    if cluster_domain is not None:
        flags += ["--cluster-domain", cluster_domain]
    if resolv_conf is not None:
        flags += ["--resolv-conf", str(resolv_conf)]
    for upstream in upstreams:
        flags += ["--upstream", upstream]
    return daemon_command("clusterdns.main", *flags, *extra)


def dns_cleanup_command(address: str | None = None) -> list[str]:
    """`clusterdns.main --cleanup`: removes the cluster DNS address skiff-dns put on this
    host (`address`, else every one) and exits; 1 when it could not."""
    flags = ["--cleanup"] + (["--bind-address", address] if address else [])
    return daemon_command("clusterdns.main", *flags)


def kubelet_cleanup_command(*, node_name: str = "", cluster_cidr: str | None = None
                            ) -> list[str]:
    """`kubelet.main --cleanup-pod-network`: removes what the pod network made on this host
    (Skiff's iptables chains, its routes, the node's pods bridge) and exits; 1 when
    something could not be removed (kube-proxy's --cleanup)."""
    flags = ["--cleanup-pod-network"]
    if node_name:
        flags += ["--node-name", node_name]
    if cluster_cidr is not None:
        flags += ["--cluster-cidr", cluster_cidr]
    return daemon_command("kubelet.main", *flags)


# --- the components of a single-machine cluster ---------------------------------------------


@dataclass(frozen=True)
class ComponentSpec:
    """One process of the cluster: how to start it and how to tell it is ready."""

    name: str
    argv: list[str]
    log_file: Path
    # None: ready once it has stayed up for a moment (for daemons that serve nothing to probe).
    ready: ReadinessCheck | None
    ready_what: str = "to keep running"
    ready_timeout: float = READY_TIMEOUT_SECONDS
    env: dict[str, str] = field(default_factory=child_env)
    # Sockets the supervisor binds once and hands to every run of the component (socket
    # activation's protocol, skiff.daemon.activation), so that they outlive its restarts.
    listen: tuple[ListenSocket, ...] = ()


@dataclass(frozen=True)
class ListenSocket:
    protocol: str  # "udp" or "tcp"
    host: str
    port: int


DEFAULT_PORT = 6443
DEFAULT_ETCD_PORT = 2379
DEFAULT_KUBELET_PORT = 10250
# kubeadm's: the tenth address of the default service range; pods' resolv.conf names it.
DEFAULT_CLUSTER_DNS = "10.96.0.10"


@dataclass(frozen=True)
class ClusterConfig:
    data_dir: Path
    port: int = DEFAULT_PORT
    etcd_port: int = DEFAULT_ETCD_PORT
    kubelet_port: int = DEFAULT_KUBELET_PORT
    node_name: str = ""  # default: the host name, as the kubelet's own default
    token_port: int = 0  # where hosts join with tokens; 0: no joins
    bind_address: str = "127.0.0.1"
    cluster_dns: str = DEFAULT_CLUSTER_DNS  # "": no cluster DNS (pods get the host's)

    # The data directory remembers its cluster's settings (cluster.json), so that `skiff up`
    # without flags starts the same cluster again, and `skiff status`, `skiff down --purge`
    # and the detached supervisor know its ports and node.
    _SAVED = ("port", "etcd_port", "kubelet_port", "node_name", "token_port", "bind_address",
              "cluster_dns")

    @property
    def saved_file(self) -> Path:
        return self.data_dir / "cluster.json"

    def save(self) -> None:
        settings = {name: getattr(self, name) for name in self._SAVED}
        write_atomic(self.saved_file, json.dumps(settings, indent=1) + "\n")

    @classmethod
    def load(cls, data_dir: Path, **given: int | str | None) -> ClusterConfig:
        """The cluster of `data_dir`: each setting as `given` (None: not given), else as
        saved by the last `skiff up` there, else the default."""
        try:
            saved = json.loads((data_dir / "cluster.json").read_text())
        except (OSError, ValueError):
            saved = {}
        if not isinstance(saved, dict):
            saved = {}
        # A hand-edited file with a wrong type counts as not saved, not as a crash.
        settings = {name: value for name, value in saved.items()
                    if name in cls._SAVED and type(value) is type(getattr(cls, name))}
        settings.update({name: value for name, value in given.items() if value is not None})
        return cls(data_dir, **settings)

    @property
    def etcd_peer_port(self) -> int:
        # etcd's own convention: peer port = client port + 1 (2379 -> 2380).
        return self.etcd_port + 1

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def pki(self) -> ClusterPki:
        return ClusterPki(self.data_dir / "pki")

    @property
    def client_config(self) -> Path:
        """The admin's."""
        return self.data_dir / "config"

    def component_config(self, component: str) -> Path:
        """The client config of a daemon: scheduler, controller-manager or kubelet."""
        return self.data_dir / f"{component}.conf"

    def client_configs(self) -> dict[str, Path]:
        return {"admin": self.client_config,
                **{c: self.component_config(c)
                   for c in ("scheduler", "controller-manager", "kubelet")}}

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"


def tcp_ready(host: str, port: int) -> ReadinessCheck:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    return check


def python_daemon(
    cfg: ClusterConfig,
    name: str,
    argv: list[str],
    *,
    ready: ReadinessCheck | None = None,
    ready_what: str = "to keep running",
    listen: tuple[ListenSocket, ...] = (),
) -> ComponentSpec:
    """A Skiff daemon (its `daemon_command`) as a component logging to logs/<name>.log."""
    # Unbuffered, so that what a daemon printed just before it died is in its log.
    env = {**child_env(), "PYTHONUNBUFFERED": "1"}
    return ComponentSpec(
        name=name,
        argv=argv,
        log_file=cfg.logs / f"{name}.log",
        ready=ready,
        ready_what=ready_what,
        env=env,
        listen=listen,
    )


def cluster_components(cfg: ClusterConfig, etcd_binary: str) -> list[ComponentSpec]:
    """The cluster, in start order (stopped in reverse). Add a daemon with one line."""
    etcd_url = f"http://127.0.0.1:{cfg.etcd_port}"
    return [
        ComponentSpec(
            name="etcd",
            argv=etcd_argv(etcd_binary, cfg.data_dir / "etcd", cfg.etcd_port, cfg.etcd_peer_port),
            log_file=cfg.logs / "etcd.log",
            ready=lambda: etcd_is_healthy(etcd_url),
            ready_what=f"to answer {etcd_url}/health",
        ),
        python_daemon(
            cfg, "apiserver",
            apiserver_command(
                etcd_servers=f"127.0.0.1:{cfg.etcd_port}", bind_address=cfg.bind_address,
                port=cfg.port, pki=cfg.pki, cluster_dns=cfg.cluster_dns,
                extra=("--token-port", str(cfg.token_port)) if cfg.token_port else ()),
            ready=tcp_ready("127.0.0.1", cfg.port),
            ready_what=f"to accept connections on {cfg.server}",
        ),
        # The other daemons are clients of the apiserver; each is one line.
        python_daemon(cfg, "scheduler",
                      scheduler_command(config=cfg.component_config("scheduler"))),
        python_daemon(cfg, "controller-manager",
                      controller_manager_command(
                          config=cfg.component_config("controller-manager"))),
        python_daemon(
            cfg, "kubelet",
            kubelet_command(
                config=cfg.component_config("kubelet"), root_dir=cfg.data_dir / "kubelet",
                port=cfg.kubelet_port, pki=cfg.pki, node_name=cfg.node_name,
                cluster_dns=cfg.cluster_dns),
            ready=tcp_ready("127.0.0.1", cfg.kubelet_port),
            ready_what=f"to accept connections on port {cfg.kubelet_port}",
        ),
        *([python_daemon(
            cfg, "dns",
            # The node's identity, as on a joined host: it reads Services, Endpoints, Pods.
            dns_command(config=cfg.component_config("kubelet"),
                        bind_address=cfg.cluster_dns),
            ready=tcp_ready(cfg.cluster_dns, 53),
            ready_what=f"to answer on {cfg.cluster_dns}:53",
            listen=(ListenSocket("udp", cfg.cluster_dns, 53),
                    ListenSocket("tcp", cfg.cluster_dns, 53)),
        )] if cfg.cluster_dns else []),
    ]  # fmt: skip


def ports_in_use(cfg: ClusterConfig, running: Sequence[str] = ()) -> list[str]:
    """The cluster's ports something already listens on, but for those of the components
    named in `running` (they are this cluster's, kept by a `skiff up` that starts the rest)."""
    wanted = [
        ("etcd", "--etcd-port", cfg.etcd_port),
        ("etcd", "etcd peer port (--etcd-port + 1)", cfg.etcd_peer_port),
        ("apiserver", "--port", cfg.port),
        *([("apiserver", "--token-port", cfg.token_port)] if cfg.token_port else []),
        ("kubelet", "--kubelet-port", cfg.kubelet_port),
    ]
    return [f"{port} ({what})" for owner, what, port in wanted
            if owner not in running and not port_is_free(port)]
