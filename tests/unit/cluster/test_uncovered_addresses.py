"""cluster.certs.uncovered_addresses: which addresses a serving certificate does not name
(the agent asks for new certificates at its start when its host's address is among them)."""

from __future__ import annotations

from cluster.certs import uncovered_addresses
from skiff import pki


def test_the_addresses_a_certificate_does_not_name_are_listed_in_order() -> None:
    ca = pki.new_ca()
    cert = pki.issue(ca, common_name="system:node:n", usage=pki.Usage.SERVER,
                     dns_names=["n"], ips=["127.0.0.1", "172.30.1.12"]).cert
    assert uncovered_addresses(cert, ["127.0.0.1", "172.30.1.12"]) == []
    assert uncovered_addresses(cert, ["172.30.1.50", "127.0.0.1", "10.0.0.1", "172.30.1.50"]
                               ) == ["172.30.1.50", "10.0.0.1"]


def test_an_unreadable_certificate_names_nothing() -> None:
    assert uncovered_addresses(b"not a certificate", ["127.0.0.1"]) == ["127.0.0.1"]
