"""Hosts joining the cluster: join tokens as identities, the Join verb that signs a node's
certificates, and the rule that makes `skiff delete node` revoke them.

- `BootstrapTokenAuthenticator`: a bearer token of the form ID.SECRET that a join token
  Secret stands for (skiff.api.bootstrap) is the identity system:bootstrap:ID in the group
  system:bootstrappers; `BootstrapScope` lets that group do nothing but join.
- `JoinService.join`: checks the host's clock and version, and that no live host holds the
  name; signs its client certificate for system:node:NAME only (marked OU=join) and its
  serving certificate for the addresses it reports; records the client certificate's
  serial on its Node (annotation NODE_CREDENTIAL), creating the Node if needed.
- `NodeCredentials.accept`: a joined node's certificate is good while its Node exists and
  names that serial. Deleting the Node revokes it; joining again under the name replaces it.
  Certificates `skiff up` issues locally carry no mark and are not tracked.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import time
from collections.abc import Iterable

from apiserver import errors
from apiserver.authorization import Attributes, Authorizer, Decision
from apiserver.codec import object_key
from apiserver.registry import Registry
from skiff import pki
from skiff.api import bootstrap, kinds
from skiff.api.meta import meta
from skiff.api.selectors import validate_dns1123_subdomain
from skiff.api.v1 import core_pb2
from skiff.api.v1 import service_pb2 as api
from skiff.daemon.auth import (
    AUTHENTICATED,
    JOINED,
    NODE_PREFIX,
    NODES,
    CallCredentials,
    Identity,
    Refused,
)
from skiff.version import VERSION, skew_problem

log = logging.getLogger(__name__)

NODE_CREDENTIAL = "skiff.io/node-credential"  # the serial (hex) of the node's certificate
MAX_CLOCK_SKEW = 300.0  # seconds; certificates are backdated an hour, tokens expire
CONFLICT_RETRIES = 5
ALIVE_WITHIN = 60.0  # seconds since a Ready heartbeat: the name's holder still runs


class BootstrapTokenAuthenticator:
    """Join tokens, looked up in the watch cache's Secrets."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def authenticate(self, call: CallCredentials) -> Identity | None:
        presented = call.bearer_token()
        if presented is None:
            return None
        try:
            token = bootstrap.JoinToken.parse(presented)
        except bootstrap.TokenError:
            return None  # not a join token: another authenticator's
        entry = self._registry.cache.kinds["Secret"].items.get(
            object_key(bootstrap.TOKEN_NAMESPACE, bootstrap.secret_name(token.id)))
        secret = entry.obj if entry is not None else None
        try:
            bootstrap.verify(secret if isinstance(secret, core_pb2.Secret) else None,
                             token, "join")
        except bootstrap.TokenError as why:
            raise Refused(str(why)) from None
        return Identity(bootstrap.BOOTSTRAP_USER_PREFIX + token.id,
                        (bootstrap.BOOTSTRAPPERS, AUTHENTICATED))


class BootstrapScope:
    """Join tokens are scoped to joining: their holders may do nothing else."""

    def __init__(self, inner: Authorizer) -> None:
        self._inner = inner

    def authorize(self, identity: Identity, attributes: Attributes) -> Decision:
        if bootstrap.BOOTSTRAPPERS in identity.groups and attributes.verb != "join":
            return Decision(False, "a join token may only be used to join a host")
        return self._inner.authorize(identity, attributes)


class NodeCredentials:
    """Which joined node certificates are still good (see the module's docstring)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def accept(self, subject: pki.Subject) -> bool:
        if JOINED not in subject.units or not subject.common_name.startswith(NODE_PREFIX):
            return True
        name = subject.common_name.removeprefix(NODE_PREFIX)
        entry = self._registry.cache.kinds["Node"].items.get(object_key("", name))
        if entry is None:
            raise Refused(f"the certificate of node {name} was revoked when its Node was "
                          "deleted: join this host again (skiff join ... --force)")
        if meta(entry.obj).annotations.get(NODE_CREDENTIAL) != f"{subject.serial:x}":
            raise Refused(f"the certificate of node {name} was replaced when a host joined "
                          "again under that name: this one no longer counts")
        return True


def _alive(node: core_pb2.Node, now: float) -> float | None:
    """Seconds since the node's last Ready heartbeat, if it is Ready and recent."""
    for c in node.status.conditions:
        if c.type == "Ready" and c.status == "True" and c.HasField("last_heartbeat_time"):
            age = now - c.last_heartbeat_time.seconds
            return age if age < ALIVE_WITHIN else None
    return None


class JoinService:
    def __init__(self, registry: Registry, ca: pki.KeyPair, server: str,
                 validity: datetime.timedelta = pki.CERT_VALIDITY) -> None:
        self._registry = registry
        self._ca = ca
        self._server = server  # https://HOST:PORT for certificate callers
        self._validity = validity  # --cluster-signing-duration

    async def join(self, request: api.JoinRequest, caller: Identity) -> api.JoinReply:
        """A host joining, or (called by the node itself, with its current certificate) a
        node renewing its certificates."""
        name = request.node_name
        renewal = caller.user == NODE_PREFIX + name
        problems = validate_dns1123_subdomain(name) if name else ["must not be empty"]
        if problems:
            raise errors.bad_request(f'node name "{name}": {"; ".join(problems)}')
        skew = request.unix_time - time.time()
        if abs(skew) > MAX_CLOCK_SKEW:
            raise errors.failed_precondition(
                f"the clock of this host is {abs(skew):.0f}s {'ahead of' if skew > 0 else 'behind'}"
                f" the apiserver's (at most {MAX_CLOCK_SKEW:.0f}s apart): certificates and "
                "tokens would not be valid; set the time (timedatectl, chrony) and join again")
        problem = skew_problem(request.version or "?", VERSION)
        if problem:
            raise errors.failed_precondition(problem)
        who = Identity(NODE_PREFIX + name, (NODES,))
        try:
            asked, _ = pki.read_request(request.client_csr)
            pki.read_request(request.serving_csr)
        except pki.PkiError as err:
            raise errors.bad_request(f"join {name}: {err}") from None
        if asked.common_name != who.user:
            raise errors.forbidden(f'a join for node "{name}" may only ask for a certificate of '
                                   f'{who.user}, not of "{asked.common_name}"')
        current = await self._current(name)
        if current is not None and not renewal:
            age = _alive(current, time.time())
            if age is not None:
                raise errors.failed_precondition(
                    f'node "{name}" is already in the cluster and its agent is alive (Ready, '
                    f"last heartbeat {age:.0f}s ago): join this host under another "
                    f"--node-name, or if it replaces that host, first run: skiff delete node "
                    f"{name}")
        ips, dns = _split_addresses(request.addresses)
        client = pki.sign_request(self._ca, request.client_csr, common_name=who.user,
                                  organizations=[NODES], units=[JOINED],
                                  validity=self._validity)
        serving = pki.sign_request(self._ca, request.serving_csr, common_name=who.user,
                                   organizations=[NODES], usage=pki.Usage.SERVER,
                                   dns_names=[name, *dns], ips=ips, validity=self._validity)
        await self._record(name, pki.subject_of(client).serial)
        log.info("node %s %s (agent %s, addresses %s)", name,
                 "renewed its certificates" if renewal else "joined", request.version,
                 ", ".join(request.addresses))
        return api.JoinReply(client_certificate=client, serving_certificate=serving,
                             ca_certificate=self._ca.cert, server=self._server)

    async def _current(self, name: str) -> core_pb2.Node | None:
        try:
            node = await self._registry.get(kinds.by_kind("Node"), "", name)
        except errors.ApiError as err:
            if err.status().reason == "NotFound":
                return None
            raise
        assert isinstance(node, core_pb2.Node)
        return node

    async def _record(self, name: str, serial: int) -> None:
        """The node's credential is now this serial (the one before it stops working)."""
        credential = f"{serial:x}"
        current = await self._current(name)
        if current is None:
            node = core_pb2.Node()
            node.metadata.name = name
            node.metadata.annotations[NODE_CREDENTIAL] = credential
            try:
                await self._registry.create(node)
                return
            except errors.ApiError as err:
                if err.status().reason != "AlreadyExists":
                    raise

        for _ in range(CONFLICT_RETRIES):
            found = await self._current(name)
            if found is None:
                raise errors.not_found(kinds.by_kind("Node"), name)
            found.metadata.annotations[NODE_CREDENTIAL] = credential
            try:
                await self._registry.update(found)
                return
            except errors.ApiError as err:
                if err.status().reason != "Conflict":
                    raise
        raise errors.conflict(kinds.by_kind("Node"), name)


def _split_addresses(addresses: Iterable[str]) -> tuple[list[str], list[str]]:
    """IP addresses and host names apart."""
    ips: list[str] = []
    names: list[str] = []
    for a in addresses:
        try:
            ips.append(str(ipaddress.ip_address(a)))
        except ValueError:
            names.append(a)
    return ips, names


async def publish_cluster_info(registry: Registry, server: str, join_server: str) -> None:
    """kube-public/cluster-info (kubeadm's): where hosts join, and where they go after."""
    namespace, name = bootstrap.CLUSTER_INFO
    wanted = {bootstrap.SERVER_KEY: server, bootstrap.JOIN_SERVER_KEY: join_server}
    kind = kinds.by_kind("ConfigMap")
    for _ in range(CONFLICT_RETRIES):
        try:
            found = await registry.get(kind, namespace, name)
        except errors.ApiError as err:
            if err.status().reason != "NotFound":
                raise
            info = core_pb2.ConfigMap()
            info.metadata.name, info.metadata.namespace = name, namespace
            info.data.update(wanted)
            try:
                await registry.create(info)
                return
            except errors.ApiError as err2:
                if err2.status().reason != "AlreadyExists":
                    raise
                continue
        assert isinstance(found, core_pb2.ConfigMap)
        if dict(found.data) == wanted:
            return
        found.data.clear()
        found.data.update(wanted)
        try:
            await registry.update(found)
            return
        except errors.ApiError as err:
            if err.status().reason != "Conflict":
                raise
