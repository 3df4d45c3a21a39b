"""`skiff cluster`: clusters of node containers on this machine (issue 14).

A cluster NAME is a Docker network `skiff-NAME` on a free 172.30.X.0/24 and N node
containers `skiff-NAME-1..N` (cluster/nodehost.py) on it, each with its own dockerd, from
this checkout's node image (built on first use, then reused). Skiff is installed in them
exactly as on real hosts: a copy of this checkout in each; deploy/install-server.sh on
node 1 while deploy/install-package.sh puts Skiff into the others' venvs; `skiff token
create` on node 1; deploy/install-agent.sh with the printed join arguments on the others,
in parallel. The admin config comes from node 1, pointed at node 1's address on the
cluster network (which the host reaches, and which the apiserver's certificate covers:
install-server makes it with the host's addresses, and that is checked), and becomes the
context `skiff-NAME` of the user's client config.

Nodes restart with this machine's dockerd (restart policy unless-stopped) and come back
with their pods, as hosts do from a reboot; `stop_node` keeps one down until `start_node`
(node loss on purpose, for tests). A node back at another address reports it by itself;
when node 1 does, `start_node` points the agents and the user's context at it
(`follow_server`). decisions/0011 says what comes back how.

Everything made carries CLUSTER_LABEL=NAME (network, containers, their volumes), which is
what `list` and `delete` go by. Two clusters never share a name, a network or a subnet; the
ports are each node's own address's, so nothing is published on the host.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import random
import re
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml

from cluster.dockercli import docker
from cluster.errors import ClusterError
from cluster.nodehost import node_exec, remove_node, run_node, wait_ready
from cluster.nodeimage import build_image
from cluster.supervisor import Say
from skiff.client.config import ClientConfig, ConfigError, Kubeconfig

__all__ = ["CHECKOUT", "CLUSTER_LABEL", "JOIN_COMMAND", "ClusterSummary", "Created",
           "context_name", "copy_checkout", "create", "delete", "engine_subnets",
           "follow_server", "free_subnet", "get_config", "list_clusters", "load_images",
           "node_names", "server_address", "start_node", "stop_node"]

CLUSTER_LABEL = "io.skiff.cluster"
DEFAULT_NAME = "dev"
CHECKOUT = "/root/skiff"  # where each node's copy of the checkout is
REPO = Path(__file__).resolve().parents[1]
TOKEN_PORT = 9345
API_PORT = 6443
# A restart of this machine's dockerd brings the nodes back as a reboot brings back hosts;
# a node stopped on purpose (stop-node, `docker stop`) stays down.
RESTART_POLICY = ("--restart", "unless-stopped")
ADMIN_CONFIG = "/var/lib/skiff/server/config"
# What the install scripts need from a checkout: the sources and deploy/, not the rest.
_NOT_COPIED = (".git", ".venv", "tests", "bench", "__pycache__", "*.pyc", "*.egg-info",
               "build", ".mypy_cache", ".ruff_cache", ".pytest_cache")
JOIN_COMMAND = re.compile(
    r"^skiff join (https://\S+) --token (\S+) --ca-cert-hash (sha256:[0-9a-f]{64})$")
# The cluster's name is part of its nodes' names (skiff-NAME-N), which are DNS labels.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?")
_SUBNETS = ipaddress.IPv4Network("172.30.0.0/16")

T = TypeVar("T")


def context_name(name: str) -> str:
    """The client config's context for cluster `name`."""
    return f"skiff-{name}"


def network_name(name: str) -> str:
    return f"skiff-{name}"


def node_names(name: str, count: int) -> list[str]:
    return [f"skiff-{name}-{i}" for i in range(1, count + 1)]


@dataclass(frozen=True)
class Created:
    name: str
    context: str
    server: str
    nodes: list[str]
    seconds: float


@dataclass(frozen=True)
class ClusterSummary:
    name: str
    nodes: int
    status: str


class _Step:
    """Names the step under way, so a failure says which one failed."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self.current = "checking the name"
        self.started = time.monotonic()

    def __call__(self, what: str) -> None:
        self.current = what
        self.say(f"{what} ...")


def _parallel(fn: Callable[[str], T], items: Iterable[str]) -> list[T]:
    """fn over items at once; the first failure is raised after all have ended."""
    items = list(items)
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        futures = [pool.submit(fn, item) for item in items]
    return [f.result() for f in futures]


def create(name: str | None, nodes: int, *, image: str | None = None,
           config_path: Path, say: Say) -> Created:
    """Makes cluster `name` of `nodes` nodes, every node Ready, and adds its context
    (made current) to the client config at `config_path`. On failure everything made is
    removed and ClusterError names the step that failed."""
    name = name or DEFAULT_NAME
    if not _NAME.fullmatch(name):
        raise ClusterError(f"cluster name {name!r}: must be lower case letters, digits and "
                           "'-', start and end with a letter or digit, at most 42 characters")
    if nodes < 1:
        raise ClusterError(f"--nodes {nodes}: a cluster has at least one node")
    _require_checkout()
    if _labelled("container", name) or _labelled("network", name):
        raise ClusterError(f"a cluster named {name} exists already "
                           f"(`skiff cluster delete {name}` removes it)")
    step = _Step(say)
    if image is None:
        step("the node image")
        image = build_image(say=say).tag  # built once per recipe, then reused
    try:
        step(f"network {network_name(name)}")
        subnet = _make_network(name)
        names = node_names(name, nodes)
        ips = {n: str(subnet.network_address + 10 + i) for i, n in enumerate(names, 1)}
        step(f"booting {nodes} node(s) from {image}")
        _parallel(lambda n: run_node(n, network_name(name), image=image, ip=ips[n],
                                     labels={CLUSTER_LABEL: name},
                                     extra_args=RESTART_POLICY), names)
        step("copying this checkout into the nodes")
        _parallel(copy_checkout, names)
        server = names[0]
        # The agents' Skiff goes in while the server installs (pip's turn is not on the
        # way to Ready); install-agent.sh then finds it there.
        step(f"install-server.sh on {server}"
             + (", Skiff into the other nodes" if len(names) > 1 else ""))
        _parallel(lambda n: _run_ok(n, f"{CHECKOUT}/deploy/install-server.sh", "--token-port",
                                    str(TOKEN_PORT), timeout=600) if n == server else
                  _run_ok(n, f"{CHECKOUT}/deploy/install-package.sh", timeout=600), names)
        if len(names) > 1:
            step("skiff token create")
            join = _join_arguments(server)
            step(f"install-agent.sh on {', '.join(names[1:])}")
            _parallel(lambda n: _run_ok(n, f"{CHECKOUT}/deploy/install-agent.sh", *join,
                                        timeout=600), names[1:])
        step("waiting for every node to be Ready")
        wait_nodes_ready(name, names, interval=0.2)
        step("fetching the admin config")
        config = _admin_config(server, ips[server])
        step(f"checking the apiserver's certificate covers {ips[server]}")
        _check_certificate(config, ips[server])
        step(f"adding context {context_name(name)} to {config_path}")
        _add_context(config_path, context_name(name), config)
    except BaseException as err:
        failed = step.current
        say(f"step failed: {failed}; removing what was made", err=True)
        try:
            delete(name, config_path=None)
        except ClusterError as cleanup:  # the step's failure is the news; say this too
            say(f"cleaning up cluster {name} failed as well: {cleanup}", err=True)
        if isinstance(err, ClusterError | subprocess.SubprocessError | OSError | ConfigError):
            raise ClusterError(f"cluster {name}: {failed} failed: {err}") from None
        raise
    return Created(name=name, context=context_name(name), server=config.server, nodes=names,
                   seconds=time.monotonic() - step.started)


def engine_subnets() -> list[ipaddress.IPv4Network]:
    """Every IPv4 subnet of this engine's networks."""
    ids = docker("network", "ls", "--quiet").stdout.split()
    if not ids:
        return []
    subnets = []
    for network in json.loads(docker("network", "inspect", *ids).stdout):
        for config in (network.get("IPAM") or {}).get("Config") or []:
            try:
                subnet = ipaddress.ip_network(config.get("Subnet", ""), strict=False)
            except ValueError:
                continue
            if isinstance(subnet, ipaddress.IPv4Network):
                subnets.append(subnet)
    return subnets


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 172.30.0.0/16 that no network of this engine overlaps (one picked at random,
    so two runs side by side rarely race for one)."""
    taken = engine_subnets()
    free = [s for s in _SUBNETS.subnets(new_prefix=24)
            if s.network_address.packed[2] != 0 and not any(s.overlaps(t) for t in taken)]
    if not free:
        raise ClusterError("no free /24 in 172.30.0.0/16 for the cluster's network")
    return random.choice(free)


def _make_network(name: str) -> ipaddress.IPv4Network:
    """The cluster's network on a free /24 (another create taking it at the same moment
    means trying again)."""
    for _attempt in range(5):
        subnet = free_subnet()
        made = docker("network", "create", "--subnet", str(subnet), "--label",
                      f"{CLUSTER_LABEL}={name}", network_name(name), check=False)
        if made.returncode == 0:
            return subnet
        if "overlap" not in made.stderr:
            raise ClusterError(f"docker network create: {made.stderr.strip()}")
    raise ClusterError("could not find a free subnet for the cluster's network")


def _require_checkout() -> None:
    """The nodes get Skiff from this checkout, by its install scripts: a Skiff installed
    from a wheel has neither (it would copy site-packages)."""
    if not ((REPO / "pyproject.toml").is_file() and (REPO / "deploy/install-server.sh").is_file()):
        raise ClusterError(f"skiff cluster installs Skiff into its nodes from a checkout, with "
                           f"its deploy/ scripts; this Skiff runs from {REPO}, which is not "
                           "one. Use a checkout, installed with pip install -e CHECKOUT")


def copy_checkout(node: str) -> None:
    """This checkout's sources and deploy/ into CHECKOUT on `node`, for the install
    scripts."""
    excludes = [f"--exclude=./{p}" if "*" not in p and p != "__pycache__" else f"--exclude={p}"
                for p in _NOT_COPIED]
    source = subprocess.run(["tar", "-C", str(REPO), "-c", *excludes, "."], check=True,
                            capture_output=True, timeout=120).stdout
    copy = subprocess.run(["docker", "exec", "-i", node, "sh", "-c",
                           f"rm -rf {CHECKOUT} && mkdir -p {CHECKOUT} && tar -x -C {CHECKOUT}"],
                          input=source, capture_output=True, timeout=120)
    if copy.returncode != 0:
        raise ClusterError(f"copying the checkout into {node}: "
                           f"{copy.stderr.decode(errors='replace').strip()}")


def _run_ok(node: str, *argv: str, timeout: float = 120.0) -> str:
    result = node_exec(node, *argv, timeout=timeout, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr + result.stdout).strip().splitlines()[-15:])
        raise ClusterError(f"{node}: {' '.join(argv)} exited {result.returncode}:\n{tail}")
    return result.stdout


def _join_arguments(server: str) -> list[str]:
    """`skiff token create` on the server: install-agent.sh's arguments."""
    printed = _run_ok(server, "skiff", "token", "create", "--description",
                      "skiff cluster create").strip()
    match = JOIN_COMMAND.match(printed)
    if not match:
        raise ClusterError(f"skiff token create printed no join command: {printed!r}")
    return [match[1], "--token", match[2], "--ca-cert-hash", match[3]]


def _admin_config(server: str, ip: str) -> ClientConfig:
    """Node 1's admin config, its server address the node's on the cluster network."""
    text = _run_ok(server, "cat", ADMIN_CONFIG)
    loaded = yaml.safe_load(text) or {}
    if not isinstance(loaded, dict):
        raise ClusterError(f"{server}:{ADMIN_CONFIG} is not a kubeconfig")
    config = Kubeconfig(loaded, source=f"{server}:{ADMIN_CONFIG}").resolve()
    port = config.server.rsplit(":", 1)[-1] if config.server.count(":") >= 2 else str(API_PORT)
    return ClientConfig(server=f"https://{ip}:{port}", token=config.token, ca=config.ca,
                        cert=config.cert, key=config.key)


def _check_certificate(config: ClientConfig, ip: str) -> None:
    """A TLS handshake from this machine to the apiserver at `ip`, verifying its
    certificate against the cluster's CA and `ip`: what every client will do."""
    if config.ca is None:
        raise ClusterError("the admin config holds no CA")
    context = ssl.create_default_context(cadata=config.ca.decode())
    context.set_alpn_protocols(["h2"])
    host, port = config.address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=ip):
            pass
    except ssl.SSLCertVerificationError as err:
        raise ClusterError(f"the apiserver's certificate does not cover {ip}: "
                           f"{err.verify_message}") from None


def _add_context(path: Path, context: str, config: ClientConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Kubeconfig.load_or_new(path).add_context(context, config).save(path)


def _labelled(kind: str, name: str | None = None) -> list[str]:
    """Containers, volumes or networks carrying CLUSTER_LABEL (=name when given)."""
    label = f"{CLUSTER_LABEL}={name}" if name else CLUSTER_LABEL
    extra = ["--all"] if kind == "container" else []
    listed = docker(kind, "ls", *extra, "--quiet", "--filter", f"label={label}")
    return listed.stdout.split()


def list_clusters() -> list[ClusterSummary]:
    """The clusters on this engine by their labels: node containers and how many run."""
    found: dict[str, list[str]] = {}
    listed = docker("container", "ls", "--all", "--filter", f"label={CLUSTER_LABEL}",
                    "--format", f'{{{{.Label "{CLUSTER_LABEL}"}}}} {{{{.State}}}}')
    for line in listed.stdout.splitlines():
        if line.strip():
            cluster, _, state = line.partition(" ")
            found.setdefault(cluster, []).append(state.strip())
    networks = docker("network", "ls", "--filter", f"label={CLUSTER_LABEL}", "--format",
                      f'{{{{.Label "{CLUSTER_LABEL}"}}}}')
    for cluster in networks.stdout.split():
        found.setdefault(cluster, [])
    summaries = []
    for cluster, states in sorted(found.items()):
        running = states.count("running")
        if not states:
            status = "no nodes"
        elif running == len(states):
            status = "Running"
        else:
            status = f"{running}/{len(states)} running"
        summaries.append(ClusterSummary(cluster, len(states), status))
    return summaries


def delete(name: str, *, config_path: Path | None) -> bool:
    """Removes cluster `name`: its containers, volumes and network, and its context from the
    client config at `config_path` (when given). False when there was nothing of it."""
    containers = docker("container", "ls", "--all", "--filter",
                        f"label={CLUSTER_LABEL}={name}", "--format", "{{.Names}}").stdout.split()
    _parallel(remove_node, containers)
    volumes = _labelled("volume", name)
    if volumes:
        docker("volume", "rm", "--force", *volumes)
    networks = _labelled("network", name)
    for network in networks:
        docker("network", "rm", network)
    removed_context = False
    if config_path is not None and config_path.exists():
        try:
            config = Kubeconfig.load(config_path)
        except (OSError, ValueError, yaml.YAMLError):
            config = None
        if config is not None and config.remove_context(context_name(name)):
            config.save(config_path)
            removed_context = True
    return bool(containers or volumes or networks or removed_context)


def load_images(name: str, images: list[str], *, say: Say) -> list[str]:
    """Copies host images into every node of cluster `name`: saved once, loaded into the
    nodes at once (no registry). Returns the nodes loaded."""
    nodes = docker("container", "ls", "--filter", f"label={CLUSTER_LABEL}={name}",
                   "--format", "{{.Names}}").stdout.split()
    if not nodes:
        raise ClusterError(f"no running cluster named {name} (see skiff cluster list)")
    missing = [i for i in images
               if subprocess.run(["docker", "image", "inspect", i],
                                 capture_output=True).returncode != 0]
    if missing:
        raise ClusterError(f"no image {', '.join(missing)} on this machine's engine (build "
                           "or pull it first: nodes load only what the host has)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="skiff-load-") as work:
        archive = Path(work) / "images.tar"
        docker("image", "save", "--output", str(archive), *images)

        def load(node: str) -> None:
            with open(archive, "rb") as tar:
                loaded = subprocess.run(["docker", "exec", "--interactive", node, "docker",
                                         "load"], stdin=tar, capture_output=True, text=True,
                                        timeout=600)
            if loaded.returncode != 0:
                raise ClusterError(f"docker load in node {node}: {loaded.stderr.strip()}")

        _parallel(load, nodes)
    say(f"loaded {', '.join(images)} into {len(nodes)} node(s) of {name} in "
        f"{time.monotonic() - started:.1f} s")
    return nodes


def get_config(name: str) -> str:
    """The kubeconfig of cluster `name` (its context `skiff-NAME`), read from its node 1."""
    server = node_names(name, 1)[0]
    if not docker("container", "ls", "--quiet", "--filter", f"label={CLUSTER_LABEL}={name}",
                  "--filter", f"name=^{server}$").stdout.strip():
        raise ClusterError(f"cluster {name} has no running node {server}")
    config = _admin_config(server, server_address(name))
    document = Kubeconfig().add_context(context_name(name), config).document
    return yaml.safe_dump(document, default_flow_style=False, sort_keys=False)


def cluster_nodes(name: str) -> list[str]:
    """The node containers of cluster `name`, running or not, in node order; ClusterError
    when there is no such cluster."""
    listed = docker("container", "ls", "--all", "--filter", f"label={CLUSTER_LABEL}={name}",
                    "--format", "{{.Names}}").stdout.split()
    if not listed:
        raise ClusterError(f"no cluster named {name} (see skiff cluster list)")
    prefix = f"skiff-{name}-"

    def order(node: str) -> tuple[int, str]:
        number = node.removeprefix(prefix)
        return (int(number), node) if number.isdigit() else (1 << 30, node)

    return sorted(listed, key=order)


def _node_of(name: str, node: str) -> str:
    """Node `node` of cluster `name`: its container's (and Node's) name skiff-NAME-N, or N
    alone."""
    nodes = cluster_nodes(name)
    wanted = f"skiff-{name}-{node}" if node.isdigit() else node
    if wanted not in nodes:
        raise ClusterError(f"cluster {name} has no node {node} (its nodes: "
                           f"{', '.join(nodes)})")
    return wanted


def _state(container: str) -> str:
    return docker("container", "inspect", "--format", "{{.State.Status}}",
                  container).stdout.strip()


def stop_node(name: str, node: str, *, timeout: float = 60.0) -> str:
    """Stops node `node` of cluster `name` as a host is shut down: its systemd stops its
    services and its dockerd's containers, and the node stays down (its restart policy
    does not bring it back, not even when this machine's dockerd restarts) until
    start_node. Its Node turns Unknown after the node lifecycle controller's grace period
    and its pods are evicted as their tolerations say. Returns the node's name."""
    container = _node_of(name, node)
    if _state(container) != "running":
        raise ClusterError(f"node {container} is not running (it is {_state(container)})")
    docker("container", "stop", "--time", str(int(timeout)), container, timeout=timeout + 30)
    return container


def start_node(name: str, node: str, *, config_path: Path | None = None,
               timeout: float = 240.0) -> str:
    """Starts node `node` of cluster `name` again and waits until its systemd has booted,
    its dockerd answers and its Node is Ready again (a Ready condition written after the
    start, not the one from before it stopped). Returns the node's name.

    When node 1 (the server) comes back at another address (its apiserver's certificate
    is made again for it at its start), its clients follow: every running agent is
    pointed at it (follow_server) and the context in the client config at `config_path`
    too."""
    container = _node_of(name, node)
    if _state(container) == "running":
        raise ClusterError(f"node {container} is running already")
    started = time.time()
    deadline = time.monotonic() + timeout
    docker("container", "start", container)
    wait_ready(container, timeout)
    moved: list[str] = []
    if container == node_names(name, 1)[0]:
        moving = time.time()
        moved = follow_server(name, config_path=config_path,
                              timeout=max(1.0, deadline - time.monotonic()))
    wait_nodes_ready(name, [container], since=started,
                     timeout=max(1.0, deadline - time.monotonic()))
    if moved:  # back with the server at its new address
        wait_nodes_ready(name, moved, since=moving,
                         timeout=max(1.0, deadline - time.monotonic()))
    return container


# Points an agent at the server's new address, as running install-agent.sh again with the
# new URL would: the URL in its settings, then a restart, whose `skiff join` moves its client
# config to the server there (cluster/join.py). Prints "moved" when it did.
_FOLLOW_SERVER = r"""set -e
env=/etc/skiff/agent.env new="$1"
old=$(sed -n 's|^SKIFF_SERVER="https://\([^:/]*\):.*|\1|p' "$env")
if [ -z "$old" ] || [ "$old" = "$new" ]; then exit 0; fi
sed -i "s|^SKIFF_SERVER=\"https://$old:|SKIFF_SERVER=\"https://$new:|" "$env"
systemctl restart skiff-agent.service
echo moved
"""


def server_address(name: str) -> str:
    """Node 1's address on the cluster's network now."""
    server = node_names(name, 1)[0]
    inspected = json.loads(docker("container", "inspect", server).stdout)[0]
    return str(inspected["NetworkSettings"]["Networks"][network_name(name)]["IPAddress"])


def follow_server(name: str, *, config_path: Path | None, timeout: float = 240.0) -> list[str]:
    """Points cluster `name`'s clients at node 1's current address, after it changed: each
    running agent (which is then restarted) and, when `config_path` is given and holds it,
    the context skiff-NAME there. On real hosts this is running install-agent.sh again with
    the server's new URL, or giving the server a name that follows it. Waits until the
    apiserver's certificate covers the address; returns the agents that moved."""
    ip = server_address(name)
    server = node_names(name, 1)[0]
    deadline = time.monotonic() + timeout
    while True:
        try:
            config = _admin_config(server, ip)
            _check_certificate(config, ip)
            break
        except (ClusterError, OSError) as err:
            if time.monotonic() > deadline:
                raise ClusterError(f"the apiserver on {server} did not answer at {ip} "
                                   f"within {timeout:g} s: {err}") from None
            time.sleep(1.0)
    agents = [n for n in cluster_nodes(name)[1:] if _state(n) == "running"]
    moved = [n for n, out in zip(agents, _parallel(
        lambda n: _run_ok(n, "sh", "-c", _FOLLOW_SERVER, "follow-server", ip), agents),
        strict=True) if "moved" in out]
    if config_path is not None and config_path.exists():
        kubeconfig = Kubeconfig.load(config_path)
        context = context_name(name)
        if any(c.name == context for c in kubeconfig.contexts()) \
                and kubeconfig.resolve(context).server != config.server:
            current = kubeconfig.current_context
            kubeconfig.add_context(context, config, make_current=current == context)
            kubeconfig.save(config_path)
    return moved


def wait_nodes_ready(name: str, nodes: list[str], *, since: float = 0.0,
                     timeout: float = 240.0, interval: float = 1.0) -> None:
    """Waits until every Node of `nodes` in cluster `name` is Ready with a heartbeat from
    `since` (unix time) on, asking the apiserver on node 1 (the nodes share this machine's
    clock): one `skiff get nodes` a poll, whatever the number of nodes."""
    server = node_names(name, 1)[0]
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while True:
        got = node_exec(server, "skiff", "get", "nodes", "-o", "json", check=False,
                        timeout=30)
        if got.returncode == 0:
            ready = _ready_conditions(got.stdout)
            seen = {n: f"Ready={ready[n][0]}" if n in ready else "not registered"
                    for n in nodes}
            if all(n in ready and ready[n][0] == "True" and ready[n][1] >= since - 1
                   for n in nodes):
                return
        else:
            said = (got.stderr or got.stdout).strip().splitlines()
            seen = {"skiff get nodes": said[-1] if said else f"exited {got.returncode}"}
        if time.monotonic() > deadline:
            raise ClusterError(f"nodes not Ready within {timeout:g} s: {seen}")
        time.sleep(interval)


def _ready_conditions(text: str) -> dict[str, tuple[str, float]]:
    """Each Node's Ready condition, its status and heartbeat (unix time), in the JSON of a
    list of Nodes."""
    try:
        listed = json.loads(text)
    except ValueError:
        return {}
    found = {}
    for node in listed.get("items") or []:
        for condition in (node.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready":
                beat = condition.get("lastHeartbeatTime") or ""
                try:
                    when = datetime.datetime.fromisoformat(
                        beat.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    when = 0.0
                found[node["metadata"]["name"]] = (str(condition.get("status")), when)
    return found
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            beat = condition.get("lastHeartbeatTime") or ""
            try:
                when = datetime.datetime.fromisoformat(beat.replace("Z", "+00:00")).timestamp()
            except ValueError:
                when = 0.0
            return str(condition.get("status")), when
    return None
