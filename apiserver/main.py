"""`skiff-apiserver`: the gRPC API over etcd that every other component talks to."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from apiserver import storage
from apiserver.authorization import AlwaysAllow
from apiserver.compactor import compact_forever
from apiserver.deadlines import DEFAULT_REQUEST_TIMEOUT
from apiserver.inflight import DEFAULT_MAX_MUTATING_REQUESTS, DEFAULT_MAX_REQUESTS, MaxInFlight
from apiserver.namespaces import NamespaceFinalizer, ensure_built_in
from apiserver.proxy import KubeletProxy
from apiserver.registry import Registry
from apiserver.server import SERVICE, ApiService, method_handlers
from apiserver.watchcache import WatchCache
from skiff import daemon
from skiff.api.limits import MAX_REQUEST_BYTES
from skiff.client.transport import ClientCredentials
from skiff.daemon import serving, until_signalled
from skiff.daemon.auth import TokenAuthenticator

log = logging.getLogger("apiserver")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-apiserver", description=__doc__)
    p.add_argument("--etcd-servers", default="127.0.0.1:2379",
                   help="comma-separated etcd client endpoints")
    p.add_argument("--bind-address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6443)
    p.add_argument("--token-file", help="require this bearer token (file content) on every call")
    p.add_argument("--kubelet-token-file",
                   help="send this bearer token (file content) to kubelets (logs, exec)")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12")
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
    store = storage.EtcdStore(args.etcd_servers.split(","))
    cache = WatchCache(store, history=args.watch_history)
    await cache.start()
    registry = Registry(store, cache, args.service_cluster_ip_range)
    while True:  # etcd may come up after us: wait for it rather than fail
        try:
            await cache.wait_ready(timeout=2.0)
            await ensure_built_in(registry)
            break
        except (TimeoutError, storage.StorageError) as err:
            log.warning("waiting for etcd at %s: %s", args.etcd_servers, err or "no answer")
    background = [asyncio.create_task(NamespaceFinalizer(registry).run(), name="namespaces")]
    if args.etcd_compaction_interval > 0:
        background.append(asyncio.create_task(
            compact_forever(store, args.etcd_compaction_interval), name="compactor"))
    authenticator = (TokenAuthenticator.single(_read_token(args.token_file))
                     if args.token_file else None)
    kubelet_credentials = ClientCredentials(
        token=_read_token(args.kubelet_token_file) if args.kubelet_token_file else None)
    authorizer = AlwaysAllow()  # where RBAC plugs in
    proxy = KubeletProxy(registry, kubelet_credentials, authorizer=authorizer)
    service = ApiService(registry, proxy, authorizer=authorizer,
                         request_timeout=args.request_timeout)
    inflight = MaxInFlight(args.max_requests_inflight, args.max_mutating_requests_inflight)
    address = f"{args.bind_address}:{args.port}"
    server = await serving.serve(
        address,
        lambda s: s.add_registered_method_handlers(SERVICE, method_handlers(service)),
        credentials=serving.INSECURE, authenticator=authenticator,
        hint="check the client config's token",
        interceptors=[inflight], options=[
            # Kubernetes' request limit; gRPC refuses a larger body as its length arrives.
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
        ])
    log.info("serving on %s (etcd %s)", address, args.etcd_servers)
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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    daemon.run(serve(args), args.log_level)


if __name__ == "__main__":
    main()
