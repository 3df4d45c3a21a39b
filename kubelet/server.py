"""The kubelet's own gRPC server: logs of this node's containers, commands run in them, and
TCP connections to its pods' ports (port-forward).

Only the apiserver calls it (`skiff logs` and `skiff exec` go CLI -> apiserver -> here): the
apiserver has already checked the pod and the container name against the pod's spec and
passes the pod's uid, so a pod deleted and created again under the same name is never
confused with the old one. Called directly (without a uid), the pod is found by the
namespace and name labels of its containers.

Which container: the named one, else the pod's only app container; `previous` means the
attempt before the newest, which the kubelet keeps (exited) until the next restart for this
purpose. Messages follow the kubelet's and kubectl's wording.

Port-forward: one PortForward stream is one TCP connection, made by the runtime inside the
pod's sandbox's network namespace to localhost:PORT. The caller half-closing its stream
shuts down the write side of the connection (the pod's server reads end of file, as with
kubectl); the pod's side closing ends the stream.

When a token is configured, every call must carry `authorization: Bearer <token>` (the
apiserver's --kubelet-token-file): exec is a root shell on the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from kubelet.runtime import (
    LABEL_INIT,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    ContainerInfo,
    ContainerRuntime,
    ExecSession,
    NotFound,
    PortForwardError,
    RuntimeError_,
    RuntimeUnavailable,
    State,
)
from skiff import pki
from skiff.api.v1 import kubelet_pb2 as kapi
from skiff.api.v1 import kubelet_pb2_grpc
from skiff.daemon import serving
from skiff.daemon.auth import (
    APISERVER,
    KUBELET_CLIENT,
    Authenticator,
    CertificateAuthenticator,
    TokenAuthenticator,
    Union,
)

log = logging.getLogger(__name__)
# Generated code without type information (grpc_tools writes no stubs for services).
_add_kubelet_servicer: Any = kubelet_pb2_grpc.add_KubeletServicer_to_server

DEFAULT_PORT = 10250
_READ_SIZE = 32 * 1024  # bytes of a port-forward connection read (and sent) at once
# gRPC refuses messages over 4 MiB by default: a runtime handing over a bigger chunk (a
# fake runtime's whole log, say) is sent in pieces.
_MAX_CHUNK = 1024 * 1024


class KubeletError(Exception):
    """A request the kubelet cannot serve: the status code and a message for the user."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _runtime_error(err: RuntimeError_) -> KubeletError:
    if isinstance(err, NotFound):
        return KubeletError(grpc.StatusCode.NOT_FOUND, err.message)
    if isinstance(err, RuntimeUnavailable | PortForwardError):
        return KubeletError(grpc.StatusCode.UNAVAILABLE, err.message)
    # The engine refused, e.g. "container ... is not running".
    return KubeletError(grpc.StatusCode.FAILED_PRECONDITION, err.message)


def choose_container(pod: str, app_names: list[str], init_names: list[str],
                     container: str) -> str:
    """The container a request means: the named one, else the pod's only app container."""
    if container:
        return container
    if len(app_names) == 1:
        return app_names[0]
    message = (f"a container name must be specified for pod {pod}, "
               f"choose one of: [{' '.join(app_names)}]")
    if init_names:
        message += f" or one of the init containers: [{' '.join(init_names)}]"
    raise KubeletError(grpc.StatusCode.INVALID_ARGUMENT, message)


class KubeletService:
    def __init__(self, runtime: ContainerRuntime) -> None:
        self.runtime = runtime

    async def find(self, namespace: str, pod: str, pod_uid: str, container: str, *,
                   previous: bool = False) -> ContainerInfo:
        """The runtime's container for a request, or KubeletError saying why there is none."""
        try:
            infos = await self.runtime.list_containers()
        except RuntimeError_ as err:
            raise _runtime_error(err) from None

        def of_pod(info: ContainerInfo) -> bool:
            if info.is_sandbox:
                return False
            if pod_uid:
                return info.pod_uid == pod_uid
            return (info.labels.get(LABEL_POD_NAMESPACE) == namespace
                    and info.labels.get(LABEL_POD_NAME) == pod)

        ours = [info for info in infos if of_pod(info)]
        # Spec order is the apiserver's business; here the order of names is only for
        # the message, so make it stable.
        app_names = sorted({i.name for i in ours if i.labels.get(LABEL_INIT) != "true"})
        init_names = sorted({i.name for i in ours if i.labels.get(LABEL_INIT) == "true"})
        if not ours and not container:
            raise KubeletError(grpc.StatusCode.NOT_FOUND,
                               f'pod "{pod}" has no containers on this node')
        name = choose_container(pod, app_names, init_names, container)
        attempts = sorted((i for i in ours if i.name == name),
                          key=lambda i: (i.attempt, i.created_at))
        if previous:
            if len(attempts) < 2:
                raise KubeletError(grpc.StatusCode.NOT_FOUND,
                                   f'previous terminated container "{name}" in pod "{pod}" '
                                   "not found")
            return attempts[-2]
        if not attempts:
            raise KubeletError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'container "{name}" in pod "{pod}" is waiting to start')
        return attempts[-1]

    # ---- Logs ----

    async def Logs(self, request: kapi.LogsRequest, context: grpc.aio.ServicerContext
                   ) -> AsyncIterator[kapi.LogChunk]:
        try:
            info = await self.find(request.namespace, request.pod, request.pod_uid,
                                   request.container, previous=request.previous)
        except KubeletError as err:
            await context.abort(err.code, err.message)
            return
        tail = request.tail_lines if request.HasField("tail_lines") else None
        if tail is not None and tail < 0:  # kubectl's --tail=-1: everything
            tail = None
        stream = self.runtime.logs(info.id, follow=request.follow, tail=tail,
                                   timestamps=request.timestamps)
        try:
            # Ends when the runtime's stream does (with follow: when the container stops);
            # a caller that goes away cancels this generator, and closing the runtime's
            # stream ends its reader.
            async for chunk in stream:
                for start in range(0, len(chunk), _MAX_CHUNK):
                    yield kapi.LogChunk(data=chunk[start:start + _MAX_CHUNK])
        except RuntimeError_ as err:
            failure = _runtime_error(err)
            await context.abort(failure.code, failure.message)
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()

    # ---- Exec ----

    async def Exec(self, requests: AsyncIterator[kapi.ExecRequest],
                   context: grpc.aio.ServicerContext) -> AsyncIterator[kapi.ExecResponse]:
        try:
            session, start = await self._start_exec(requests)
        except KubeletError as err:
            await context.abort(err.code, err.message)
            return
        pump = asyncio.create_task(_pump_input(requests, session, start.stdin),
                                   name=f"exec-input-{start.namespace}/{start.pod}")
        output = session.output()
        try:
            async for stream, data in output:
                yield (kapi.ExecResponse(stderr=data) if stream == 2
                       else kapi.ExecResponse(stdout=data))
            yield kapi.ExecResponse(exit_code=await session.exit_code())
        except RuntimeError_ as err:
            # The command had started: the caller gets what it printed, then the reason.
            yield kapi.ExecResponse(error=err.message)
        finally:
            pump.cancel()
            with contextlib.suppress(Exception):
                await output.aclose()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump

    async def _start_exec(self, requests: AsyncIterator[kapi.ExecRequest]
                          ) -> tuple[ExecSession, kapi.ExecStart]:
        try:
            first = await anext(aiter(requests))
        except StopAsyncIteration:
            raise KubeletError(grpc.StatusCode.INVALID_ARGUMENT,
                               "the exec stream ended before its start message") from None
        if first.WhichOneof("message") != "start":
            raise KubeletError(grpc.StatusCode.INVALID_ARGUMENT,
                               "the first message of an exec stream must be its start")
        start = first.start
        if not start.command:
            raise KubeletError(grpc.StatusCode.INVALID_ARGUMENT,
                               "you must specify at least one command for the container")
        info = await self.find(start.namespace, start.pod, start.pod_uid, start.container)
        if info.state != State.RUNNING:
            raise KubeletError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'container "{info.name}" in pod "{start.pod}" is not running')
        log.info("exec in %s/%s container %s: %s (tty=%s, stdin=%s)", start.namespace,
                 start.pod, info.name, list(start.command), start.tty, start.stdin)
        try:
            session = await self.runtime.exec_stream(info.id, list(start.command),
                                                     tty=start.tty, stdin=start.stdin)
        except RuntimeError_ as err:
            raise _runtime_error(err) from None
        return session, start


    # ---- PortForward ----

    async def PortForward(self, requests: AsyncIterator[kapi.PortForwardRequest],
                          context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[kapi.PortForwardResponse]:
        try:
            start = await self._start_port_forward(requests)
            sandbox = await self.find_sandbox(start.namespace, start.pod, start.pod_uid)
            try:
                sock = await self.runtime.port_forward_socket(sandbox.id, start.port)
            except RuntimeError_ as err:
                failure = _runtime_error(err)
                raise KubeletError(failure.code,
                                   f"error forwarding port {start.port} to pod {start.pod}, "
                                   f"uid {sandbox.pod_uid}: {failure.message}") from None
        except KubeletError as err:
            await context.abort(err.code, err.message)
            return
        log.debug("port-forward to %s/%s port %d", start.namespace, start.pod, start.port)
        reader, writer = await asyncio.open_connection(sock=sock, limit=_READ_SIZE)
        pump = asyncio.create_task(_pump_to_pod(requests, writer),
                                   name=f"port-forward-{start.namespace}/{start.pod}")
        try:
            while data := await reader.read(_READ_SIZE):
                yield kapi.PortForwardResponse(data=data)
        except OSError as err:  # reset by the pod's side: the stream just ends
            log.debug("port-forward to %s/%s: %s", start.namespace, start.pod, err)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            writer.close()

    @staticmethod
    async def _start_port_forward(requests: AsyncIterator[kapi.PortForwardRequest]
                                  ) -> kapi.PortForwardStart:
        try:
            first = await anext(aiter(requests))
        except StopAsyncIteration:
            raise KubeletError(grpc.StatusCode.INVALID_ARGUMENT, "the port-forward stream "
                               "ended before its start message") from None
        if first.WhichOneof("message") != "start":
            raise KubeletError(grpc.StatusCode.INVALID_ARGUMENT,
                               "the first message of a port-forward stream must be its start")
        if not 0 < first.start.port < 65536:
            raise KubeletError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"invalid port {first.start.port}: must be 1-65535")
        return first.start

    async def find_sandbox(self, namespace: str, pod: str, pod_uid: str) -> ContainerInfo:
        """The pod's running sandbox (the newest, should an old one linger), or KubeletError."""
        try:
            infos = await self.runtime.list_containers()
        except RuntimeError_ as err:
            raise _runtime_error(err) from None

        def of_pod(info: ContainerInfo) -> bool:
            if pod_uid:
                return info.pod_uid == pod_uid
            return (info.labels.get(LABEL_POD_NAMESPACE) == namespace
                    and info.labels.get(LABEL_POD_NAME) == pod)

        sandboxes = sorted((i for i in infos if i.is_sandbox and of_pod(i)),
                           key=lambda i: (i.attempt, i.created_at))
        if not sandboxes:
            raise KubeletError(grpc.StatusCode.NOT_FOUND,
                               f'pod "{pod}" has no sandbox on this node')
        if sandboxes[-1].state != State.RUNNING:
            raise KubeletError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'the sandbox of pod "{pod}" is not running')
        return sandboxes[-1]


async def _pump_to_pod(requests: AsyncIterator[kapi.PortForwardRequest],
                       writer: asyncio.StreamWriter) -> None:
    """The caller's bytes into the connection; the caller's end of stream is end of file
    for the pod's side (its write is shut down, the connection stays open for its answer)."""
    try:
        async for request in requests:
            if request.WhichOneof("message") == "data" and request.data:
                writer.write(request.data)
                await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError as err:  # the pod's side is gone; the reading side ends the stream
        log.debug("port-forward input stopped: %s", err)


async def _pump_input(requests: AsyncIterator[kapi.ExecRequest], session: ExecSession,
                      stdin: bool) -> None:
    """The caller's stream after the start message, into the session."""
    try:
        async for request in requests:
            kind = request.WhichOneof("message")
            if kind == "stdin" and stdin:
                await session.write(request.stdin)
            elif kind == "stdin_closed" and stdin:
                await session.close_stdin()
            elif kind == "resize":
                await session.resize(request.resize.rows, request.resize.columns)
        # The caller will send nothing more: that is end of file for the command's stdin
        # (otherwise `echo x | skiff exec -i pod -- cat` would wait forever).
        if stdin:
            await session.close_stdin()
    except RuntimeError_ as err:  # the command is gone; its output tells the rest
        log.debug("exec input stopped: %s", err)


def listen_addresses(address: str, *, local: bool) -> list[str]:
    """Where the server listens: `address` and, with `local`, the loopback address of its
    family too, for tools on the node itself (`skiff up` checks the kubelet is up there;
    Kubernetes' kubelet serves its health on localhost). Loopback reaches no other host,
    so the server is still on no interface but the node's."""
    ip = ipaddress.ip_address(address)
    loopback = "::1" if ip.version == 6 else "127.0.0.1"
    if not local or ip.is_loopback or ip.is_unspecified:
        return [address]
    return [address, loopback]


def _apiserver_only(subject: pki.Subject) -> bool:
    # Exec is a root shell on the node: of the certificates the cluster CA signed, only
    # the apiserver's kubelet client certificate may call (not an admin's, not a node's).
    return subject.common_name == KUBELET_CLIENT.user


async def start_kubelet_server(runtime: ContainerRuntime, port: int, token: str | None, *,
                               address: str, local: bool = False,
                               credentials: serving.ServerCredentials = serving.INSECURE
                               ) -> grpc.aio.Server:
    """Serves the Kubelet service on address:port (and, with `local`, on loopback: see
    `listen_addresses`), started; stop it with `.stop(grace)`. With `credentials` that
    name a client CA, callers must present the apiserver's kubelet client certificate."""
    authenticators: list[Authenticator] = []
    if token:
        authenticators.append(TokenAuthenticator.single(token, APISERVER))
    if credentials.client_ca is not None:
        authenticators.append(CertificateAuthenticator(accept=_apiserver_only))
    # Two kubelets on one port would split the calls between them: serving fails instead.
    server = serving.new_server(
        authenticator=Union(authenticators) if authenticators else None,
        hint="only the apiserver may call a kubelet (its --kubelet-client-certificate, or "
             "the token of its --kubelet-token-file)",
        transport_identities=credentials.client_ca is not None,
        options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)])
    _add_kubelet_servicer(KubeletService(runtime), server)
    endpoints = [f"[{a}]:{port}" if ":" in a else f"{a}:{port}"
                 for a in listen_addresses(address, local=local)]
    try:
        for endpoint in endpoints:
            serving.add_port(server, endpoint, credentials)
    except OSError as err:
        raise OSError(f"kubelet server {err} (see --address and --port)") from None
    await server.start()
    log.info("kubelet server listening on %s%s%s", " and ".join(endpoints),
             " (TLS)" if credentials.tls else "", " (token required)" if token else "")
    return server
