"""Joining this host to a cluster (`skiff join`), kubeadm's way.

1. Discovery: read the certificates the server presents, before trusting anything, and
   find among them the CA whose hash is the one given (`--ca-cert-hash`); the server's own
   certificate must be signed by it. Nothing is sent before that.
2. Trade the join token, over TLS to that CA, for this node's client certificate
   (system:node:NAME) and its kubelet's serving certificate; the keys never leave the host.
3. Keep them in the agent's state directory: pki/ (keys 0600) and kubelet.conf (0600), the
   client config the agent runs with (`skiff agent`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cluster.certs import host_addresses, uncovered_addresses
from cluster.errors import ClusterError
from cluster.process import write_atomic
from skiff import pki
from skiff.api import bootstrap
from skiff.api.v1 import service_pb2 as api
from skiff.client import errors
from skiff.client.client import Client
from skiff.client.config import ClientConfig
from skiff.client.transport import ClientCredentials
from skiff.version import VERSION

__all__ = ["AgentState", "join", "reissue_if_moved", "renew_if_due"]

DEFAULT_STATE_DIR = "/var/lib/skiff/agent"


@dataclass(frozen=True)
class AgentState:
    """The files a joined host keeps (and `skiff agent` runs from)."""

    dir: Path

    @property
    def pki(self) -> Path:
        return self.dir / "pki"

    @property
    def ca(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def client_config(self) -> Path:
        return self.dir / "kubelet.conf"

    @property
    def settings(self) -> Path:
        """What the join was told that the agent needs too (the node's address)."""
        return self.dir / "agent.json"

    def _settings(self) -> dict[str, str]:
        try:
            loaded = json.loads(self.settings.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}

    def node_ip(self) -> str | None:
        return self._settings().get("node_ip") or None

    def join_url(self) -> str | None:
        """The server's URL this host joined at (or last followed it to)."""
        return self._settings().get("join_url") or None

    def update_settings(self, **values: str) -> None:
        write_atomic(self.settings, json.dumps({**self._settings(), **values}))

    @property
    def serving_cert(self) -> Path:
        return self.pki / "kubelet.crt"

    @property
    def serving_key(self) -> Path:
        return self.pki / "kubelet.key"

    def node_name(self) -> str | None:
        """The node this state joined as, if it did."""
        if not self.client_config.exists():
            return None
        config = ClientConfig.load(self.client_config)
        if config.cert is None:
            return None
        return pki.subject_of(config.cert).common_name.removeprefix("system:node:")


def discover(url: str, ca_cert_hash: str, timeout: float = 10.0) -> tuple[str, bytes]:
    """The server's address (host:port) and its CA, checked against the pinned hash."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme != "https" or not parts.hostname or not parts.port:
        raise ClusterError(f"{url}: expected https://HOST:PORT (the join command's address)")
    if not ca_cert_hash.startswith("sha256:") or len(ca_cert_hash) != 71:
        raise ClusterError(f"--ca-cert-hash {ca_cert_hash}: expected sha256: and 64 hex "
                           "digits (as skiff token create prints it)")
    address = f"{parts.hostname}:{parts.port}"
    try:
        chain = pki.fetch_server_chain(parts.hostname, parts.port, timeout)
    except OSError as err:
        raise ClusterError(f"cannot reach the server at {address}: {err}") from None
    if not chain:
        raise ClusterError(f"the server at {address} presented no certificate")
    presented = [pki.ca_cert_hash(cert) for cert in chain]
    for cert, digest in zip(chain, presented, strict=True):
        if digest == ca_cert_hash.lower() and pki.signed_by(chain[0], cert):
            return address, cert
    raise ClusterError(
        f"the server at {address} is not the cluster you meant: its CA does not match "
        f"--ca-cert-hash {ca_cert_hash} (it presents {', '.join(presented[1:] or presented)}); "
        "check the hash skiff token create printed")


def _exchange(address: str, credentials: ClientCredentials, node_name: str,
              node_ip: str | None, state: AgentState, refusal: str,
              addresses: list[str] | None = None) -> api.JoinReply:
    """Sends new signing requests for `node_name` with `credentials` (a join token, or the
    node's current certificate) and keeps what comes back in `state`."""
    client_key, serving_key = pki.new_key(), pki.new_key()
    addresses = addresses or _node_addresses(node_ip)
    request = api.JoinRequest(
        node_name=node_name, version=VERSION, unix_time=int(time.time()),
        addresses=[*addresses, socket.gethostname()],
        client_csr=pki.new_request(client_key, f"system:node:{node_name}", ["system:nodes"]),
        serving_csr=pki.new_request(serving_key, f"system:node:{node_name}", ["system:nodes"]))

    async def call() -> api.JoinReply:
        async with Client(address, credentials=credentials) as client:
            return await client.join(request, timeout=30)

    try:
        reply = asyncio.run(call())
    except errors.ApiError as err:
        raise ClusterError(f"{refusal}: {err.message}") from None
    # Made only now: a refused join leaves nothing behind.
    state.pki.mkdir(parents=True, exist_ok=True, mode=0o700)
    state.dir.chmod(0o700)
    write_atomic(state.ca, reply.ca_certificate, 0o644)
    write_atomic(state.serving_cert, reply.serving_certificate, 0o644)
    write_atomic(state.serving_key, serving_key, 0o600)
    ClientConfig(server=reply.server, ca=reply.ca_certificate, cert=reply.client_certificate,
                 key=client_key).save(state.client_config)
    state.update_settings(node_ip=node_ip or "")
    return reply


def _node_addresses(node_ip: str | None) -> list[str]:
    """What the kubelet's serving certificate must name: every address of the host, since
    the apiserver dials the kubelet at the address its Node reports (--node-ip, or the
    detected one)."""
    return list(dict.fromkeys([*([node_ip] if node_ip else []), *host_addresses()]))


def _follow_server(state: AgentState, url: str, ca_cert_hash: str) -> str | None:
    """Points the joined node's client config at the host of `url` when that is not the
    host it joined at (the server came back at another address, and the agent was given
    its new URL: install-agent.sh again, whose join and the agent's every start pass it
    here). The apiserver's port stays; the server at `url` must show the pinned CA first.
    A host that joined by a name keeps the address the cluster gave it until that name
    changes. Says what it did."""
    joined = state.join_url()
    host = _host(url)
    if joined is None or host is None or host == _host(joined):
        return None  # the same server (or a join before Skiff kept its URL)
    discover(url, ca_cert_hash)  # that server is this cluster's: it shows the pinned CA
    config = ClientConfig.load(state.client_config)
    port = config.address.rpartition(":")[2]
    server = f"https://{f'[{host}]' if ':' in host else host}:{port}"
    dataclasses.replace(config, server=server).save(state.client_config)
    state.update_settings(join_url=url)
    return f"the cluster's server moved from {_host(joined)} to {host}: {server} from now on"


def _host(url: str) -> str | None:
    return urlsplit(url if "://" in url else f"https://{url}").hostname


def _credential_refused(state: AgentState, timeout: float = 10.0) -> str | None:
    """Why the cluster no longer takes the node certificate in `state` (revoked by `skiff
    delete node`, or replaced by a later join under the name), or None: it does, or the
    cluster cannot be asked now (an agent keeps its credential through a server's outage)."""
    try:
        config = ClientConfig.load(state.client_config)
        credentials = config.credentials()
    except (OSError, ValueError) as err:
        return f"its client config {state.client_config} is unreadable: {err}"

    async def ask() -> None:
        async with Client(config.address, credentials=credentials) as client:
            await client.whoami(timeout=timeout)

    try:
        asyncio.run(ask())
    except errors.Unauthenticated as err:
        return err.message
    except errors.ApiError:
        return None
    return None


def join(url: str, token: str, ca_cert_hash: str, *, node_name: str, state: AgentState,
         node_ip: str | None = None, force: bool = False) -> str:
    """Joins this host as `node_name`; returns what to tell the user."""
    try:
        parsed = bootstrap.JoinToken.parse(token)
    except bootstrap.TokenError as err:
        raise ClusterError(f"--token: {err}") from None
    already = state.node_name()
    if already is not None and not force:
        if already != node_name:
            raise ClusterError(f"this host already joined as node {already} (state in "
                               f"{state.dir}); remove that directory, or pass --force")
        joined_ca = pki.ca_cert_hash(state.ca.read_bytes()) if state.ca.exists() else None
        if joined_ca is not None and joined_ca != ca_cert_hash.lower():
            raise ClusterError(f"this host already joined another cluster as node {node_name}"
                               f" (its CA is {joined_ca}, not --ca-cert-hash {ca_cert_hash}; "
                               f"state in {state.dir}); remove that directory, or pass --force")
        moved = _follow_server(state, url, ca_cert_hash)
        if moved:
            print(moved, flush=True)
        refused = _credential_refused(state)
        if refused is None:
            return (f"this host already joined as node {node_name} (state in {state.dir}): "
                    "nothing to do; --force joins again")
        print(f"node {node_name} joined before, but the cluster refuses its certificate "
              f"now ({refused}): joining again", flush=True)
    address, ca = discover(url, ca_cert_hash)
    reply = _exchange(address, ClientCredentials(token=str(parsed), ca=ca), node_name,
                      node_ip, state, "the cluster refused to join this host")
    state.update_settings(join_url=url)
    return (f"This host joined the cluster at {reply.server} as node {node_name}.\n"
            f"Start its agent: skiff agent --state-dir {state.dir}")


def renew_if_due(state: AgentState, renew_before: float | None = None) -> str | None:
    """Renews the node's certificates with its current one when due; says what it did."""
    name = state.node_name()
    config = ClientConfig.load(state.client_config)
    if name is None or config.cert is None:
        return None
    if datetime.datetime.now(datetime.UTC) < pki.renewal_time(config.cert, renew_before):
        return None
    reply = _exchange(config.address, config.credentials(), name, state.node_ip(), state,
                      "the cluster refused to renew this node's certificate")
    expires = pki.subject_of(reply.client_certificate).not_after
    return f"renewed the certificates of node {name} (valid until {expires:%Y-%m-%d %H:%M}Z)"


def reissue_if_moved(state: AgentState, node_ip: str | None = None) -> str | None:
    """Trades the node's current certificate for new ones when its kubelet's serving
    certificate does not name an address the host has now (it came back from a reboot, or
    its container from a restart, with another address: the apiserver would refuse the
    kubelet's certificate at the new one, and logs and exec would fail). Says what it did;
    when the cluster cannot be asked now, says that and the agent runs on with the old
    certificate (its next start tries again)."""
    name = state.node_name()
    if name is None or not state.serving_cert.exists():
        return None
    addresses = _node_addresses(node_ip or state.node_ip())
    missing = uncovered_addresses(state.serving_cert.read_bytes(), addresses)
    if not missing:
        return None
    config = ClientConfig.load(state.client_config)
    try:
        _exchange(config.address, config.credentials(), name, state.node_ip(), state,
                  "the cluster refused to renew this node's certificate", addresses)
    except (ClusterError, OSError) as err:
        return (f"warning: this host's address {', '.join(missing)} is not in node {name}'s "
                f"serving certificate, and new certificates could not be had now ({err}); "
                "logs and exec of its pods may fail until the agent starts again")
    return (f"node {name} has the new address {', '.join(missing)}: its certificates were "
            "issued again to name it")
