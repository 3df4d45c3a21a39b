"""The cluster's certificates: a CA, what it issues, signing requests, and kubeadm's pin."""

from __future__ import annotations

import ipaddress
import subprocess

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from skiff import pki


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.new_ca()


def test_a_server_certificate_names_every_address_and_name(ca: pki.KeyPair) -> None:
    issued = pki.issue(ca, common_name="kube-apiserver", usage=pki.Usage.SERVER,
                       dns_names=["localhost", "cp-1"], ips=["127.0.0.1", "192.0.2.7"])
    cert = issued.certificate()
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "cp-1"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("192.0.2.7")]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert pki.signed_by(issued.cert, ca.cert)
    assert not pki.signed_by(issued.cert, pki.new_ca().cert)


def test_a_client_certificate_carries_user_and_groups(ca: pki.KeyPair) -> None:
    issued = pki.issue(ca, common_name="system:node:web-1", organizations=["system:nodes"])
    subject = pki.subject_of(issued.cert)
    assert (subject.common_name, subject.organizations) == ("system:node:web-1",
                                                            ("system:nodes",))
    assert subject.serial > 0 and subject.not_after is not None


def test_the_signer_decides_the_subject_not_the_request(ca: pki.KeyPair) -> None:
    key = pki.new_key()
    request = pki.new_request(key, "admin", ["system:masters"])  # asks for too much
    asked, _ = pki.read_request(request)
    assert asked.common_name == "admin"
    cert = pki.sign_request(ca, request, common_name="system:node:n1",
                            organizations=["system:nodes"])
    assert pki.subject_of(cert).common_name == "system:node:n1"
    assert pki.signed_by(cert, ca.cert)
    # The certificate is for the request's key: it pairs with `key`.
    assert pki.KeyPair(cert, key).private_key().public_key() == \
        pki.KeyPair(cert, key).certificate().public_key()


def test_a_request_that_is_not_one_is_refused() -> None:
    with pytest.raises(pki.PkiError, match="not a PEM certificate signing request"):
        pki.read_request(b"garbage")


def test_the_ca_pin_is_kubeadms(ca: pki.KeyPair) -> None:
    """kubeadm documents the pin as: openssl x509 -pubkey | openssl rsa/pkey -pubin
    -outform der | sha256sum."""
    pubkey = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=ca.cert,
                            capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pubkey,
                         capture_output=True, check=True).stdout
    digest = subprocess.run(["sha256sum"], input=der, capture_output=True,
                            check=True).stdout.split()[0].decode()
    assert pki.ca_cert_hash(ca.cert) == f"sha256:{digest}"


def test_renewal_is_due_when_a_third_of_the_lifetime_is_left(ca: pki.KeyPair) -> None:
    import datetime
    issued = pki.issue(ca, common_name="system:node:n", validity=datetime.timedelta(days=90))
    cert = issued.certificate()
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert pki.renewal_time(issued.cert) == cert.not_valid_after_utc - lifetime / 3
    assert pki.renewal_time(issued.cert, 3600) == \
        cert.not_valid_after_utc - datetime.timedelta(hours=1)
