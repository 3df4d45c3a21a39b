"""TLS on a gRPC hop, through the one way Skiff serves (skiff.daemon.serving) and dials
(skiff.client.transport): certificates are identities, and what is misconfigured says so."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import grpc
import pytest

from skiff import pki
from skiff.client import errors
from skiff.client.transport import ClientCredentials, open_channel
from skiff.daemon import serving
from skiff.daemon.auth import CertificateAuthenticator, TokenAuthenticator, Union, caller

WHO = "/test.Who/Am"


@dataclasses.dataclass
class Cluster:
    ca: pki.KeyPair
    server: pki.KeyPair
    admin: pki.KeyPair


@pytest.fixture(scope="module")
def certs() -> Cluster:
    ca = pki.new_ca()
    return Cluster(ca,
                   pki.issue(ca, common_name="kube-apiserver", usage=pki.Usage.SERVER,
                             dns_names=["localhost"], ips=["127.0.0.1"]),
                   pki.issue(ca, common_name="admin", organizations=["system:masters"]))


async def _who(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    who = caller()
    return f"{who.user}|{','.join(who.groups)}".encode()


def _register(server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "test.Who", {"Am": grpc.unary_unary_rpc_method_handler(_who)})])


@dataclasses.dataclass
class Ports:
    certificates: int  # client certificates required
    tokens: int  # TLS, no client certificate: bearer tokens
    plaintext: int


@pytest.fixture
async def ports(certs: Cluster) -> AsyncIterator[Ports]:
    tls = serving.ServerCredentials(certs.server.cert + certs.ca.cert, certs.server.key,
                                    certs.ca.cert, require_client_cert=True)
    server = serving.new_server(
        authenticator=Union([TokenAuthenticator.single("s3cret"), CertificateAuthenticator()]),
        hint="show a certificate", transport_identities=True)
    _register(server)
    mtls = serving.add_port(server, "127.0.0.1:0", tls)
    token = serving.add_port(server, "127.0.0.1:0",
                             dataclasses.replace(tls, client_ca=None, require_client_cert=False))
    await server.start()
    plain = serving.new_server()
    _register(plain)
    plaintext = serving.add_port(plain, "127.0.0.1:0")
    await plain.start()
    try:
        yield Ports(mtls, token, plaintext)
    finally:
        await server.stop(None)
        await plain.stop(None)


async def call(port: int, credentials: ClientCredentials) -> str:
    channel = open_channel(f"127.0.0.1:{port}", credentials)
    try:
        reply = await channel.unary_unary(WHO)(b"", metadata=credentials.metadata, timeout=5)
        return bytes(reply).decode()
    except grpc.aio.AioRpcError as err:
        raise errors.from_rpc_error(err) from None
    finally:
        await channel.close()


async def test_a_client_certificate_is_the_callers_identity(certs: Cluster, ports: Ports
                                                           ) -> None:
    who = await call(ports.certificates, ClientCredentials(ca=certs.ca.cert,
                                                           cert=certs.admin.cert,
                                                           key=certs.admin.key))
    assert who == "admin|system:masters,system:authenticated"


async def test_a_certificate_from_another_ca_is_refused(certs: Cluster, ports: Ports) -> None:
    stranger = pki.issue(pki.new_ca(), common_name="admin", organizations=["system:masters"])
    with pytest.raises(errors.Unavailable, match="client certificate it signed"):
        await call(ports.certificates, ClientCredentials(ca=certs.ca.cert, cert=stranger.cert,
                                                         key=stranger.key))
    with pytest.raises(errors.Unavailable, match="client certificate it signed"):
        await call(ports.certificates, ClientCredentials(ca=certs.ca.cert))  # no certificate


async def test_the_token_port_takes_tokens_over_tls(certs: Cluster, ports: Ports) -> None:
    assert (await call(ports.tokens, ClientCredentials(token="s3cret", ca=certs.ca.cert))
            ).startswith("admin|")
    with pytest.raises(errors.Unauthenticated, match="show a certificate"):
        await call(ports.tokens, ClientCredentials(token="wrong", ca=certs.ca.cert))


async def test_a_server_from_another_ca_is_not_trusted(ports: Ports) -> None:
    with pytest.raises(errors.TransportSecurity, match="not signed by the CA the client"):
        await call(ports.certificates, ClientCredentials(ca=pki.new_ca().cert))


async def test_a_server_name_the_certificate_lacks_is_not_trusted(certs: Cluster,
                                                                  ports: Ports) -> None:
    with pytest.raises(errors.TransportSecurity, match="does not name the address"):
        await call(ports.tokens, ClientCredentials(ca=certs.ca.cert, server_name="elsewhere"))


async def test_tls_against_plaintext_and_plaintext_against_tls(certs: Cluster,
                                                               ports: Ports) -> None:
    with pytest.raises(errors.TransportSecurity, match="does not speak TLS"):
        await call(ports.plaintext, ClientCredentials(ca=certs.ca.cert))
    with pytest.raises(errors.Unavailable, match="if the server speaks TLS"):
        await call(ports.tokens, ClientCredentials(token="s3cret"))


async def test_plaintext_beyond_loopback_is_refused_before_listening() -> None:
    server = serving.new_server()
    with pytest.raises(serving.PlaintextRefused, match="--tls-cert-file"):
        serving.add_port(server, "0.0.0.0:0")


async def test_the_pinned_ca_is_found_in_what_the_server_presents(certs: Cluster,
                                                                  ports: Ports) -> None:
    """A newcomer reads the chain before trusting anything, even from a port that wants
    a client certificate it does not have yet; the CA in it matches the pin."""
    for port in (ports.certificates, ports.tokens):
        chain = pki.fetch_server_chain("127.0.0.1", port)
        assert [pki.ca_cert_hash(c) for c in chain][-1] == pki.ca_cert_hash(certs.ca.cert)
        assert pki.signed_by(chain[0], certs.ca.cert)


def test_credentials_that_cannot_work_are_refused_when_made(certs: Cluster) -> None:
    with pytest.raises(ValueError, match="needs its key"):
        ClientCredentials(ca=certs.ca.cert, cert=certs.admin.cert)
    with pytest.raises(ValueError, match="only sent over TLS"):
        ClientCredentials(cert=certs.admin.cert, key=certs.admin.key)
