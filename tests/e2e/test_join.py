"""Joining a host, as a user does it: `skiff up --token-port`, `skiff token create`, then
`skiff join` and `skiff agent` with the printed command (a second agent on this machine,
under its own node name and state directory, stands for the other host). Every way a join
can go wrong says so on its own line; `skiff delete node` revokes the node's certificate."""

from __future__ import annotations

import dataclasses
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_skiff_up import REPO, cluster_args, cluster_dns, down, remove_node_leftovers, skiff

from cluster.multinode import JOIN_COMMAND
from cluster.process import free_ports
from skiff import pki
from skiff.api import bootstrap
from skiff.api.v1 import core_pb2
from skiff.api.v1 import service_pb2 as api
from skiff.client import errors
from skiff.client.client import Client
from skiff.client.config import ClientConfig
from skiff.client.transport import ClientCredentials


class Server:
    def __init__(self, data: Path, config: Path) -> None:
        self.data = data
        self.config = config

    def token(self, *flags: str) -> tuple[str, str, str]:
        """A new join token: (url, token, ca hash) from the printed command."""
        out = skiff("token", "create", *flags, config=self.config)
        assert out.returncode == 0, out.stderr
        match = JOIN_COMMAND.match(out.stdout.strip())
        assert match, out.stdout
        return match[1], match[2], match[3]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("join-server")
    token_port = free_ports(1)[0]
    started = skiff("up", "-d", *cluster_args(data), "--token-port", str(token_port))
    assert started.returncode == 0, started.stderr
    try:
        yield Server(data, data / "config")
    finally:
        down(data)


class Agent:
    """A joined host's agent: a process of ours, stopped by its PID."""

    def __init__(self, state: Path, node: str) -> None:
        self.state, self.node = state, node
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.state.with_suffix(".log")

    def start(self, *flags: str) -> None:
        port = free_ports(1)[0]
        self.log = open(self.log_file, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "agent", "--state-dir", str(self.state),
             "--port", str(port), *flags], cwd=REPO, stdout=self.log,
            stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        remove_node_leftovers(self.node)


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[list[Agent]]:
    made: list[Agent] = []
    yield made
    for agent in made:
        agent.stop()


def join(url: str, token: str, ca_hash: str, state: Path, node: str, *extra: str
         ) -> subprocess.CompletedProcess[str]:
    return skiff("join", url, "--token", token, "--ca-cert-hash", ca_hash, "--state-dir",
                 str(state), "--node-name", node, "--node-ip", "127.0.0.1", *extra)


def until(what: str, check: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def node_ready(config: Path, node: str) -> bool:
    out = skiff("get", "node", node, config=config)
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    return bool(rows) and rows[0][1] == "Ready"


def test_a_joined_host_runs_pods_and_is_known_by_its_node_certificate(
        server: Server, agents: list[Agent], tmp_path: Path, busybox_image: str) -> None:
    url, token, ca_hash = server.token("--description", "e2e")
    listed = skiff("token", "list", config=server.config).stdout
    assert f"{token.split('.')[0]}.<secret not stored>" in listed and "e2e" in listed
    state = tmp_path / "agent"
    joined = join(url, token, ca_hash, state, "joined-1")
    assert joined.returncode == 0, joined.stderr
    assert "as node joined-1" in joined.stdout
    for secret in (state / "kubelet.conf", state / "pki" / "kubelet.key"):
        assert secret.stat().st_mode & 0o777 == 0o600
    again = join(url, token, ca_hash, state, "joined-1")
    assert again.returncode == 0 and "nothing to do" in again.stdout

    who = yaml.safe_load(skiff("auth", "whoami", "-o", "yaml",
                               config=state / "kubelet.conf").stdout)["status"]["userInfo"]
    assert (who["username"], who["groups"]) == (
        "system:node:joined-1", ["system:nodes", "system:authenticated"])

    agent = Agent(state, "joined-1")
    agents.append(agent)
    agent.start()
    until("the joined node Ready", lambda: node_ready(server.config, "joined-1"))
    pod = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "on-joined"},
        "spec": {"nodeName": "joined-1", "terminationGracePeriodSeconds": 0, "containers": [{
            "name": "app", "image": busybox_image, "imagePullPolicy": "Never",
            "command": ["sh", "-c", "echo hello-from-joined; sleep 3600"]}]}})
    assert skiff("apply", "-f", "-", config=server.config, stdin=pod).returncode == 0
    try:
        until("its pod's logs through the apiserver", lambda: "hello-from-joined" in skiff(
            "logs", "on-joined", config=server.config).stdout)
    finally:
        skiff("delete", "pod", "on-joined", config=server.config)

    # Deleting the node revokes its certificate; joining again replaces it.
    old = tmp_path / "old-kubelet.conf"
    shutil.copy(state / "kubelet.conf", old)
    agent.stop()
    assert skiff("delete", "node", "joined-1", config=server.config).returncode == 0
    revoked = skiff("auth", "whoami", config=old)
    assert revoked.returncode == 1
    assert "the certificate of node joined-1 was revoked when its Node was deleted" in \
        revoked.stderr
    rejoined = join(url, token, ca_hash, state, "joined-1", "--force")
    assert rejoined.returncode == 0, rejoined.stderr
    assert skiff("auth", "whoami", config=state / "kubelet.conf").returncode == 0
    replaced = skiff("auth", "whoami", config=old)
    assert "was replaced when a host joined again" in replaced.stderr
    assert skiff("token", "delete", token, config=server.config).stdout == \
        f'bootstrap token "{token.split(".")[0]}" deleted\n'


def test_the_agent_renews_the_nodes_certificates_when_due(
        server: Server, agents: list[Agent], tmp_path: Path) -> None:
    url, token, ca_hash = server.token()
    state = tmp_path / "agent"
    assert join(url, token, ca_hash, state, "renewer").returncode == 0
    old = tmp_path / "old-kubelet.conf"
    shutil.copy(state / "kubelet.conf", old)
    agent = Agent(state, "renewer")
    agents.append(agent)
    agent.start("--renew-before", "8761h")  # longer than the certificate lives: due now
    until("the renewed node Ready", lambda: node_ready(server.config, "renewer"))
    assert "renewed the certificates of node renewer" in agent.log_file.read_text()
    assert (state / "kubelet.conf").read_bytes() != old.read_bytes()
    assert skiff("auth", "whoami", config=state / "kubelet.conf").returncode == 0
    assert "was replaced" in skiff("auth", "whoami", config=old).stderr


def test_each_way_a_join_goes_wrong_says_so(server: Server, tmp_path: Path) -> None:
    url, token, ca_hash = server.token()
    state = tmp_path / "agent"

    def refused(*args: str) -> str:
        out = join(*args)  # type: ignore[arg-type]
        assert out.returncode == 1, out.stdout
        assert not (state / "kubelet.conf").exists()
        return out.stderr.strip()

    assert "no join token abcdef" in refused(url, "abcdef.0123456789abcdef", ca_hash, state, "x")
    assert f"join token {token.split('.')[0]}: wrong secret" in refused(
        url, token.split(".")[0] + ".0123456789abcdef", ca_hash, state, "x")
    stranger = "sha256:" + "0" * 64
    assert "is not the cluster you meant: its CA does not match --ca-cert-hash" in refused(
        url, token, stranger, state, "x")
    port = free_ports(1)[0]
    assert f"cannot reach the server at 127.0.0.1:{port}" in refused(
        f"https://127.0.0.1:{port}", token, ca_hash, state, "x")
    assert "--token: a join token looks like" in refused(url, "nope", ca_hash, state, "x")
    short_url, short, _ = server.token("--ttl", "1s")
    time.sleep(1.5)
    assert f"join token {short.split('.')[0]} expired at" in refused(
        short_url, short, ca_hash, state, "x")
    # The skiff up node is alive: its name is taken.
    up_node = yaml.safe_load((server.data / "cluster.json").read_text())["node_name"]
    taken = refused(url, token, ca_hash, state, up_node)
    assert f'node "{up_node}" is already in the cluster and its agent is alive' in taken
    assert f"skiff delete node {up_node}" in taken


async def test_a_join_token_joins_and_does_nothing_else(server: Server) -> None:
    """Version skew and clocks, and the token's scope, through the Join call itself."""
    url, token, _ = server.token()
    ca = ClientConfig.load(server.config).ca
    assert ca is not None

    def request(**changes: object) -> api.JoinRequest:
        key = pki.new_key()
        csr = pki.new_request(key, "system:node:skew", ["system:nodes"])
        fields: dict[str, object] = {"node_name": "skew", "client_csr": csr,
                                     "serving_csr": csr, "addresses": ["127.0.0.1"],
                                     "version": "0.1.0", "unix_time": int(time.time())}
        fields.update(changes)
        return api.JoinRequest(**fields)  # type: ignore[arg-type]

    async with Client(url.removeprefix("https://"),
                      credentials=ClientCredentials(token=token, ca=ca)) as client:
        with pytest.raises(errors.FailedPrecondition,
                           match=r"the agent \(0\.2\.0\) is newer than the apiserver \(0\.1\.0\)"):
            await client.join(request(version="0.2.0"))
        with pytest.raises(errors.FailedPrecondition,
                           match=r"the agent \(1\.0\.0\) is newer"):
            await client.join(request(version="1.0.0"))
        with pytest.raises(errors.FailedPrecondition,
                           match=r"the clock of this host is 36\d\ds behind the apiserver.s"):
            await client.join(request(unix_time=int(time.time()) - 3600))
        with pytest.raises(errors.Forbidden, match="may only ask for a certificate of "
                                                   "system:node:skew"):
            key = pki.new_key()
            await client.join(request(client_csr=pki.new_request(key, "admin",
                                                                 ["system:masters"])))
        with pytest.raises(errors.Forbidden,
                           match="a join token may only be used to join a host"):
            await client.list(core_pb2.Secret, bootstrap.TOKEN_NAMESPACE)


def test_doctor_checks_the_host_and_says_how_to_fix_what_fails(server: Server,
                                                               tmp_path: Path) -> None:
    out = skiff("doctor", "--data-dir", str(server.data))
    lines = out.stdout.splitlines()
    node = yaml.safe_load((server.data / "cluster.json").read_text())["node_name"]
    for expected in ("[ok] docker: dockerd answers", "[ok] apiserver: https://127.0.0.1:",
                     "[ok] clock: ", f"[ok] node {node}: podCIDR: 10.244.",
                     f"[ok] node {node}: version: agent v0.1.0-skiff, apiserver 0.1.0",
                     f"[ok] cluster DNS: {cluster_dns(server.data)}:53 answers on this node"):
        assert any(line.startswith(expected) for line in lines), out.stdout
    # An apiserver that does not answer: one failure, how to fix it, exit 1.
    gone = tmp_path / "gone"
    admin = ClientConfig.load(server.config)
    dataclasses.replace(admin, server=f"https://127.0.0.1:{free_ports(1)[0]}").save(gone)
    down_ = skiff("--config", str(gone), "doctor")
    assert down_.returncode == 1
    assert down_.stdout.splitlines()[0].startswith("[FAIL] apiserver: https://127.0.0.1:")
    assert "fix: check the client config" in down_.stdout
