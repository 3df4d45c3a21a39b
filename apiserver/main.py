"""`skiff-apiserver`: the gRPC API over etcd that every other component talks to."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import logging
import socket
from pathlib import Path

from apiserver import storage
from apiserver.authorization import AlwaysAllow
from apiserver.compactor import compact_forever
from apiserver.deadlines import DEFAULT_REQUEST_TIMEOUT
from apiserver.inflight import DEFAULT_MAX_MUTATING_REQUESTS, DEFAULT_MAX_REQUESTS, MaxInFlight
from apiserver.join import (
    BootstrapScope,
    BootstrapTokenAuthenticator,
    JoinService,
    NodeCredentials,
    publish_cluster_info,
)
from apiserver.namespaces import NamespaceFinalizer, ensure_built_in
from apiserver.proxy import KubeletProxy
from apiserver.registry import Registry
from apiserver.server import SERVICE, ApiService, method_handlers
from apiserver.system_services import ensure_kube_dns
from apiserver.watchcache import WatchCache
from skiff import daemon, pki
from skiff.api.duration import parse_duration
from skiff.api.limits import MAX_REQUEST_BYTES
from skiff.client.transport import ClientCredentials
from skiff.daemon import serving, until_signalled
from skiff.daemon.auth import Authenticator, CertificateAuthenticator, TokenAuthenticator, Union

log = logging.getLogger("apiserver")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-apiserver", description=__doc__)
    p.add_argument("--etcd-servers", default="127.0.0.1:2379",
                   help="comma-separated etcd client endpoints")
    p.add_argument("--etcd-cafile", help="TLS to etcd, trusting this CA (required for etcd "
                   "beyond loopback)")
    p.add_argument("--etcd-certfile", help="client certificate for etcd (with --etcd-keyfile)")
    p.add_argument("--etcd-keyfile")
    p.add_argument("--bind-address", default="127.0.0.1")
    p.add_argument("--port", "--secure-port", type=int, default=6443,
                   help="the API's port; with --client-ca-file every caller must present a "
                        "client certificate signed by it")
    p.add_argument("--tls-cert-file", help="serving certificate (PEM, then its CA's): TLS, "
                   "required to bind beyond loopback")
    p.add_argument("--tls-private-key-file")
    p.add_argument("--client-ca-file", help="client certificates signed by this CA are "
                   "identities (CN the user, O the groups), and required on --port")
    p.add_argument("--token-port", type=int, default=0,
                   help="a second TLS port that asks for no client certificate: callers "
                        "show a bearer token (--token-file) instead (0: none)")
    p.add_argument("--token-file", help="the admin's bearer token (file content)")
    p.add_argument("--cluster-signing-cert-file",
                   help="the cluster CA's certificate, to sign joining nodes' certificates")
    p.add_argument("--cluster-signing-key-file", help="its key")
    p.add_argument("--cluster-signing-duration", type=_duration, default="8760h",
                   help="how long the certificates of joining nodes are valid (default "
                        "%(default)s; the agent renews when a third is left)")
    p.add_argument("--advertise-address",
                   help="the address other hosts reach this apiserver at (published in "
                        "kube-public/cluster-info; default: --bind-address, or this host's "
                        "address when that is 0.0.0.0)")
    p.add_argument("--kubelet-token-file",
                   help="send this bearer token (file content) to kubelets (logs, exec)")
    p.add_argument("--kubelet-client-certificate",
                   help="client certificate the apiserver shows kubelets (logs, exec)")
    p.add_argument("--kubelet-client-key")
    p.add_argument("--kubelet-certificate-authority",
                   help="TLS to kubelets, trusting their serving certificates by this CA")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12")
    p.add_argument("--kube-dns-service-ip", default="", metavar="IP",
                   help="keep the Service kube-system/kube-dns (the cluster DNS that "
                   "skiff-dns serves on every node) at this cluster IP, the kubelets' "
                   "--cluster-dns; created when missing at each start (default: none)")
    p.add_argument("--watch-history", type=int, default=10_000,
                   help="changes kept per kind for watches that resume from a version")
    p.add_argument("--etcd-compaction-interval", type=float, default=300.0,
                   help="seconds between compactions of etcd's history (0: never)")
    p.add_argument("--request-timeout", type=float, default=DEFAULT_REQUEST_TIMEOUT,
                   help="seconds a request (other than a watch) may take at most, whatever "
                        "deadline its caller sent; past it the answer is Timeout "
                        "(Kubernetes' --request-timeout)")
    p.add_argument("--max-requests-inflight", type=int, default=DEFAULT_MAX_REQUESTS,
                   help="reads (get, list) served at once; more are refused with "
                        "TooManyRequests (0: no limit; watches, logs and exec not counted)")
    p.add_argument("--max-mutating-requests-inflight", type=int,
                   default=DEFAULT_MAX_MUTATING_REQUESTS,
                   help="writes (create, update, delete, bind) served at once; more are "
                        "refused with TooManyRequests (0: no limit)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace, started: asyncio.Event | None = None) -> None:
    try:
        store = storage.EtcdStore(args.etcd_servers.split(","), ClientCredentials(
            ca=_read(args.etcd_cafile), cert=_read(args.etcd_certfile),
            key=_read(args.etcd_keyfile)))
    except ValueError as err:
        raise SystemExit(f"skiff-apiserver: {err}") from None
    cache = WatchCache(store, history=args.watch_history)
    await cache.start()
    registry = Registry(store, cache, args.service_cluster_ip_range)
    while True:  # etcd may come up after us: wait for it rather than fail
        try:
            await cache.wait_ready(timeout=2.0)
            await ensure_built_in(registry)
            if args.kube_dns_service_ip:
                await ensure_kube_dns(registry, args.kube_dns_service_ip)
            break
        except (TimeoutError, storage.StorageError) as err:
            log.warning("waiting for etcd at %s: %s", args.etcd_servers, err or "no answer")
    background = [asyncio.create_task(NamespaceFinalizer(registry).run(), name="namespaces")]
    if args.etcd_compaction_interval > 0:
        background.append(asyncio.create_task(
            compact_forever(store, args.etcd_compaction_interval), name="compactor"))
    kubelet_credentials = ClientCredentials(
        token=_read_token(args.kubelet_token_file) if args.kubelet_token_file else None,
        ca=_read(args.kubelet_certificate_authority),
        cert=_read(args.kubelet_client_certificate), key=_read(args.kubelet_client_key))
    authorizer = BootstrapScope(AlwaysAllow())  # where RBAC plugs in
    proxy = KubeletProxy(registry, kubelet_credentials, authorizer=authorizer)
    advertised = _advertise_address(args)
    joins = None
    if args.cluster_signing_cert_file and args.cluster_signing_key_file:
        signer = pki.KeyPair(Path(args.cluster_signing_cert_file).read_bytes(),
                             Path(args.cluster_signing_key_file).read_bytes())
        joins = JoinService(registry, signer, f"https://{advertised}:{args.port}",
                            datetime.timedelta(seconds=args.cluster_signing_duration))
    service = ApiService(registry, proxy, authorizer=authorizer,
                         request_timeout=args.request_timeout, joins=joins)
    inflight = MaxInFlight(args.max_requests_inflight, args.max_mutating_requests_inflight)
    tls = serving.ServerCredentials.from_files(args.tls_cert_file, args.tls_private_key_file,
                                               args.client_ca_file, require_client_cert=True)
    authenticators: list[Authenticator] = []
    if args.token_file:
        authenticators.append(TokenAuthenticator.single(_read_token(args.token_file)))
    if joins is not None:
        authenticators.append(BootstrapTokenAuthenticator(registry))
    if tls.client_ca is not None:
        authenticators.append(CertificateAuthenticator(accept=NodeCredentials(registry).accept))
    server = serving.new_server(
        authenticator=Union(authenticators) if authenticators else None,
        hint="use a client config with a client certificate from this cluster's CA, or "
             "the admin token on the token port",
        transport_identities=tls.client_ca is not None,
        interceptors=[inflight], options=[
            # Kubernetes' request limit; gRPC refuses a larger body as its length arrives.
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
        ])
    server.add_registered_method_handlers(SERVICE, method_handlers(service))
    address = f"{args.bind_address}:{args.port}"
    serving.add_port(server, address, tls)
    if args.token_port:
        if not tls.tls:
            raise SystemExit("--token-port needs TLS: give --tls-cert-file and "
                             "--tls-private-key-file")
        serving.add_port(server, f"{args.bind_address}:{args.token_port}",
                         dataclasses.replace(tls, client_ca=None, require_client_cert=False))
    await server.start()
    if args.token_port:
        await publish_cluster_info(registry, f"https://{advertised}:{args.port}",
                                   f"https://{advertised}:{args.token_port}")
    log.info("serving on %s%s%s (etcd %s)", address,
             " (TLS, client certificates)" if tls.client_ca else " (TLS)" if tls.tls else "",
             f", tokens on port {args.token_port}" if args.token_port else "",
             args.etcd_servers)
    if started:
        started.set()
    try:
        await until_signalled()
    finally:
        log.info("shutting down")
        await server.stop(grace=2)
        await proxy.close()
        for task in background:
            task.cancel()
        await cache.stop()
        await store.close()


def _read_token(path: str) -> str:
    return Path(path).read_text().strip()


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _advertise_address(args: argparse.Namespace) -> str:
    if args.advertise_address:
        return str(args.advertise_address)
    if args.bind_address not in ("0.0.0.0", "::"):
        return str(args.bind_address)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # sends nothing: picks the route's address
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    daemon.run(serve(args), args.log_level)


if __name__ == "__main__":
    main()
