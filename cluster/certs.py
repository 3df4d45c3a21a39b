"""The certificates of a cluster started from a data directory, and its clients' configs.

`skiff up` (and the server install) call `ensure`: the cluster CA is made once and kept;
each certificate is issued when missing, when it expires within RENEW_BEFORE, or, for the
serving certificates, when the names and addresses it must cover changed (a host that
got a new address). Keys are 0600 in DATA/pki (0700); client configs are 0600 and hold the
CA and their client's certificate (kubeadm's admin.conf, scheduler.conf, ...).

Who is who (the common name is the user, organizations the groups; skiff.daemon.auth):
admin (system:masters), system:kube-scheduler, system:kube-controller-manager,
system:node:NAME (system:nodes), and kube-apiserver-kubelet-client, the only caller a
kubelet accepts.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from cluster.process import write_atomic
from skiff import pki
from skiff.client.config import HTTPS, ClientConfig, Kubeconfig
from skiff.daemon.auth import (
    ADMIN,
    CONTROLLER_MANAGER,
    KUBELET_CLIENT,
    SCHEDULER,
    Identity,
    node_identity,
)

__all__ = ["RENEW_BEFORE", "ClusterPki", "host_addresses", "uncovered_addresses"]

RENEW_BEFORE = datetime.timedelta(days=30)

# The context `skiff up` adds to its admin config (kind names its `kind-NAME`).
LOCAL_CONTEXT = "skiff"


def host_addresses() -> list[str]:
    """This host's addresses the apiserver may be reached by: loopback and, best effort,
    the address of the default route and the host name's."""
    found = ["127.0.0.1"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, \
            contextlib.suppress(OSError):
        probe.connect(("10.255.255.255", 1))  # no packet is sent: picks the route only
        found.append(str(probe.getsockname()[0]))
    with contextlib.suppress(OSError):
        found += [str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None,
                                                                 socket.AF_INET)]
    return list(dict.fromkeys(found))


def _covers(cert: x509.Certificate, dns_names: Iterable[str], ips: Iterable[str]) -> bool:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_dns = set(sans.get_values_for_type(x509.DNSName))
    have_ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    return set(dns_names) <= have_dns and {str(ipaddress.ip_address(i)) for i in ips} <= have_ips


def uncovered_addresses(cert_pem: bytes, ips: Iterable[str]) -> list[str]:
    """The addresses of `ips` that the certificate `cert_pem` does not name (all of them
    when it is unreadable)."""
    ips = list(dict.fromkeys(ips))
    try:
        sans = x509.load_pem_x509_certificate(cert_pem).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return ips
    have = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    return [ip for ip in ips if str(ipaddress.ip_address(ip)) not in have]


@dataclass(frozen=True)
class ClusterPki:
    """The files under `dir` (DATA/pki)."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    def ca(self) -> pki.KeyPair:
        """The cluster CA, made on first use."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not (self.ca_cert.exists() and self.ca_key.exists()):
            made = pki.new_ca()
            write_atomic(self.ca_key, made.key, 0o600)
            write_atomic(self.ca_cert, made.cert, 0o644)
        return pki.KeyPair(self.ca_cert.read_bytes(), self.ca_key.read_bytes())

    def _current(self, name: str, dns_names: Iterable[str] = (), ips: Iterable[str] = ()
                 ) -> pki.KeyPair | None:
        """`name`'s certificate and key if they are there, from this CA, not about to
        expire and covering `dns_names` and `ips`."""
        cert_file, key_file = self.cert(name), self.key(name)
        if not (cert_file.exists() and key_file.exists()):
            return None
        pair = pki.KeyPair(cert_file.read_bytes(), key_file.read_bytes())
        try:
            cert = pair.certificate()
        except ValueError:
            return None
        now = datetime.datetime.now(datetime.UTC)
        fresh = cert.not_valid_after_utc - now > RENEW_BEFORE
        ours = pki.signed_by(pair.cert, self.ca_cert.read_bytes())
        return pair if fresh and ours and _covers(cert, dns_names, ips) else None

    def ensure(self, name: str, who: Identity, usage: pki.Usage = pki.Usage.CLIENT, *,
               dns_names: Iterable[str] = (), ips: Iterable[str] = ()) -> pki.KeyPair:
        """`name`'s certificate (for `who`) and key, issued again when needed. A serving
        certificate's file holds the chain: it, then the CA."""
        dns_names, ips = list(dns_names), list(ips)
        current = self._current(name, dns_names, ips)
        if current is not None:
            return current
        ca = self.ca()
        organizations = [g for g in who.groups if g != "system:authenticated"]
        issued = pki.issue(ca, common_name=who.user, organizations=organizations,
                           usage=usage, dns_names=dns_names, ips=ips)
        chain = issued.cert + (ca.cert if usage is not pki.Usage.CLIENT else b"")
        write_atomic(self.key(name), issued.key, 0o600)
        write_atomic(self.cert(name), chain, 0o644)
        return pki.KeyPair(chain, issued.key)

    # ---- a single-host cluster's set ----

    def ensure_local_cluster(self, *, node_name: str, node_ips: Iterable[str],
                             server: str, configs: dict[str, Path],
                             admin_context: str = LOCAL_CONTEXT) -> None:
        """Every certificate and client config of a cluster whose control plane and one
        node run on this host. `configs` maps admin, scheduler, controller-manager and
        kubelet to where their client configs go. The admin's is added to its file as the
        context `admin_context`, made current, beside the contexts already there (a user's
        other clusters); each daemon's file holds its own config alone."""
        addresses = list(dict.fromkeys(["127.0.0.1", *node_ips]))
        names = ["localhost", socket.gethostname(), node_name]
        self.ensure("apiserver", Identity("kube-apiserver"), pki.Usage.SERVER,
                    dns_names=names, ips=addresses)
        self.ensure("apiserver-kubelet-client", KUBELET_CLIENT)
        self.ensure("kubelet", Identity(f"{node_name}"), pki.Usage.SERVER,
                    dns_names=["localhost", node_name], ips=addresses)
        who = {"admin": ADMIN, "scheduler": SCHEDULER, "controller-manager": CONTROLLER_MANAGER,
               "kubelet": node_identity(node_name)}
        ca = self.ca_cert.read_bytes()
        for client, path in configs.items():
            pair = self.ensure(f"{client}-client", who[client])
            config = ClientConfig(server=HTTPS + server, ca=ca, cert=pair.cert, key=pair.key)
            if client == "admin":
                Kubeconfig.load_or_new(path).add_context(admin_context, config).save(path)
            else:
                config.save(path)
