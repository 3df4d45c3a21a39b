"""The cluster's certificates: a CA, the certificates it issues, and how a newcomer pins it.

Every hop of a cluster is TLS with certificates from one cluster CA (docs/decisions/
0009-cluster-pki.md). This module makes and reads them with the `cryptography` library and
holds no policy: who gets which name is decided by `cluster` (at `skiff up`) and by the
apiserver (when it signs a node's request).

Keys are ECDSA P-256: the handshake costs a fraction of RSA-2048's (kubeadm offers both).
A certificate's subject is Kubernetes' convention for identities: the common name is the
user, each organization a group (CN=system:node:web-1, O=system:nodes).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_VALIDITY",
    "CERT_VALIDITY",
    "KeyPair",
    "PkiError",
    "Subject",
    "Usage",
    "ca_cert_hash",
    "fetch_server_chain",
    "issue",
    "new_ca",
    "new_key",
    "new_request",
    "read_request",
    "renewal_time",
    "sign_request",
    "signed_by",
    "subject_of",
]

CA_VALIDITY = datetime.timedelta(days=3650)
CERT_VALIDITY = datetime.timedelta(days=365)
# Certificates start an hour in the past, so a host whose clock is a little behind the
# signer's accepts them (kubeadm backdates by 5 minutes; we allow the same margin as the
# join's clock check).
BACKDATE = datetime.timedelta(hours=1)


class PkiError(ValueError):
    """A certificate, key or request that cannot be used, and why."""


class Usage(Enum):
    SERVER = "server"
    CLIENT = "client"
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate and its private key, PEM-encoded."""

    cert: bytes
    key: bytes

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert)

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError("expected an ECDSA private key")
        return key


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a certificate names: Kubernetes' user (CN) and groups (O)."""

    common_name: str
    organizations: tuple[str, ...] = ()
    serial: int = 0
    not_after: datetime.datetime | None = None
    units: tuple[str, ...] = ()  # organizational units: how it was issued, not groups


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str, organizations: Iterable[str] = (), units: Iterable[str] = ()
          ) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, u) for u in units]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def new_ca(common_name: str = "skiff-ca", validity: datetime.timedelta = CA_VALIDITY
           ) -> KeyPair:
    """A self-signed CA certificate and key."""
    key_pem = new_key()
    key = KeyPair(b"", key_pem).private_key()
    name = _name(common_name)
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def _sans(dns_names: Iterable[str], ips: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(dns_names) if n]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ips) if ip]
    return names


def _certificate(ca: KeyPair, public_key: ec.EllipticCurvePublicKey, *, common_name: str,
                 organizations: Sequence[str], usage: Usage, dns_names: Iterable[str],
                 ips: Iterable[str], validity: datetime.timedelta,
                 units: Sequence[str] = ()) -> bytes:
    ca_cert, ca_key = ca.certificate(), ca.private_key()
    now = _now()
    not_after = min(now + validity, ca_cert.not_valid_after_utc)
    usages = {Usage.SERVER: [ExtendedKeyUsageOID.SERVER_AUTH],
              Usage.CLIENT: [ExtendedKeyUsageOID.CLIENT_AUTH],
              Usage.BOTH: [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]}
    builder = (x509.CertificateBuilder()
               .subject_name(_name(common_name, organizations, units))
               .issuer_name(ca_cert.subject)
               .public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - BACKDATE).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=True, key_encipherment=False, key_cert_sign=False,
                   crl_sign=False, content_commitment=False, data_encipherment=False,
                   key_agreement=False, encipher_only=False, decipher_only=False),
                   critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages[usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    sans = _sans(dns_names, ips)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)


def issue(ca: KeyPair, *, common_name: str, organizations: Sequence[str] = (),
          usage: Usage = Usage.CLIENT, dns_names: Iterable[str] = (), ips: Iterable[str] = (),
          validity: datetime.timedelta = CERT_VALIDITY) -> KeyPair:
    """A new key and a certificate for it, signed by `ca`."""
    key_pem = new_key()
    public = KeyPair(b"", key_pem).private_key().public_key()
    cert = _certificate(ca, public, common_name=common_name, organizations=organizations,
                        usage=usage, dns_names=dns_names, ips=ips, validity=validity)
    return KeyPair(cert, key_pem)


def new_request(key_pem: bytes, common_name: str, organizations: Sequence[str] = ()) -> bytes:
    """A certificate signing request (PEM) for `key_pem`, asking for that subject."""
    key = KeyPair(b"", key_pem).private_key()
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(_name(common_name, organizations))
               .sign(key, hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.PEM)


def read_request(request_pem: bytes) -> tuple[Subject, ec.EllipticCurvePublicKey]:
    """What a signing request asks for, once its signature proves it holds the key."""
    try:
        request = x509.load_pem_x509_csr(request_pem)
    except ValueError as err:
        raise PkiError(f"not a PEM certificate signing request: {err}") from None
    if not request.is_signature_valid:
        raise PkiError("the signing request's signature does not match its key")
    public = request.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise PkiError("the signing request's key must be ECDSA (P-256)")
    return _subject(request.subject), public


def sign_request(ca: KeyPair, request_pem: bytes, *, common_name: str,
                 organizations: Sequence[str] = (), usage: Usage = Usage.CLIENT,
                 dns_names: Iterable[str] = (), ips: Iterable[str] = (),
                 validity: datetime.timedelta = CERT_VALIDITY,
                 units: Sequence[str] = ()) -> bytes:
    """Signs the key of a request under the subject the signer decides (never the one the
    request asks for: the caller checks that first, with read_request)."""
    _, public = read_request(request_pem)
    return _certificate(ca, public, common_name=common_name, organizations=organizations,
                        usage=usage, dns_names=dns_names, ips=ips, validity=validity,
                        units=units)


def _subject(name: x509.Name) -> Subject:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    units = name.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return Subject(str(cns[0].value) if cns else "", tuple(str(o.value) for o in orgs),
                   units=tuple(str(u.value) for u in units))


def subject_of(cert_pem: bytes) -> Subject:
    """The user, groups, serial and expiry a certificate carries."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as err:
        raise PkiError(f"not a PEM certificate: {err}") from None
    s = _subject(cert.subject)
    return Subject(s.common_name, s.organizations, cert.serial_number,
                   cert.not_valid_after_utc, s.units)


def renewal_time(cert_pem: bytes, renew_before: float | None = None) -> datetime.datetime:
    """When a certificate should be renewed: once a third of its lifetime is left (about
    when Kubernetes' kubelet rotates its own), or `renew_before` seconds before it ends."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    margin = (datetime.timedelta(seconds=renew_before) if renew_before is not None
              else lifetime / 3)
    return cert.not_valid_after_utc - margin


def ca_cert_hash(cert_pem: bytes) -> str:
    """kubeadm's pin of a CA: `sha256:` and the hex SHA-256 of its SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def signed_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """Whether `ca_pem` issued `cert_pem` (its signature checks out)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def fetch_server_chain(host: str, port: int, timeout: float = 5.0) -> list[bytes]:
    """The certificates a TLS server presents, UNVERIFIED: what a newcomer reads before it
    trusts anything, to find the CA it then checks against a pinned hash (kubeadm's
    discovery by CA hash). Raises OSError when the server cannot be reached or speaks no
    TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])  # a gRPC server expects HTTP/2
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        # Python 3.13 makes get_unverified_chain public; 3.10-3.12 have it on the
        # underlying _ssl object.
        sslobj = getattr(tls, "_sslobj", None)
        chain = sslobj.get_unverified_chain() if sslobj is not None else None
        if not chain:
            leaf = tls.getpeercert(binary_form=True)
            return [ssl.DER_cert_to_PEM_cert(leaf).encode()] if leaf else []
        return [str(c.public_bytes()).encode() for c in chain]  # PEM text
