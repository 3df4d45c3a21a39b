"""Logs, Exec and PortForward: the apiserver finds the pod's node and proxies the stream to
its kubelet.

As in Kubernetes, the user only ever talks to the apiserver: it looks the pod up, checks the
container name against the pod's spec (so the messages are the same whatever the node), and
opens a gRPC stream to the kubelet at the Node's InternalIP (else its Hostname) and
`status.daemonEndpoints.kubeletEndpoint.port`, with the pod's uid so the kubelet never
serves a newer pod of the same name. Kubelet errors come back with their code and message;
a kubelet that cannot be reached is UNAVAILABLE `error dialing backend: ...`, kubectl's
words. One channel per kubelet address is kept and reused, opened with the apiserver's
kubelet client credentials (skiff.client.transport).

The caller must be allowed `get pods/log` (Logs), `create pods/exec` (Exec) or `create
pods/portforward` (PortForward: one stream per TCP connection; a caller that names the pod's
uid is refused a newer pod of the same name, as the CLI pins the pod it chose).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from apiserver import errors, storage
from apiserver.authorization import AlwaysAllow, Attributes, Authorizer, check
from apiserver.registry import Registry
from skiff.api import kinds
from skiff.api.pods import is_terminal
from skiff.api.status import StatusReason
from skiff.api.v1 import core_pb2
from skiff.api.v1 import kubelet_pb2 as kapi
from skiff.client.transport import INSECURE, RECONNECT_OPTIONS, ClientCredentials, open_channel
from skiff.daemon.auth import caller

log = logging.getLogger(__name__)

DEFAULT_KUBELET_PORT = 10250
# kubectl's annotation naming the container that logs and exec use by default.
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
_LOGS = "/skiff.api.v1.Kubelet/Logs"
_EXEC = "/skiff.api.v1.Kubelet/Exec"
_PORT_FORWARD = "/skiff.api.v1.Kubelet/PortForward"

Req = TypeVar("Req", kapi.ExecRequest, kapi.PortForwardRequest)
Resp = TypeVar("Resp", kapi.ExecResponse, kapi.PortForwardResponse)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
# A restarted kubelet is reachable again within a second, not after gRPC's long backoff.
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 16 * 1024 * 1024),
                    *RECONNECT_OPTIONS]


def container_for(pod: core_pb2.Pod, requested: str) -> str:
    """The container a request means, checked against the pod's spec: the named one, else
    the default-container annotation's, else the only one."""
    name = pod.metadata.name
    app = [c.name for c in pod.spec.containers]
    init = [c.name for c in pod.spec.init_containers]
    if requested:
        if requested not in app and requested not in init:
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    annotated = pod.metadata.annotations.get(DEFAULT_CONTAINER_ANNOTATION, "")
    if annotated in app:
        return annotated
    if len(app) == 1:
        return app[0]
    message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(app)}]"
    if init:
        message += f" or one of the init containers: [{' '.join(init)}]"
    raise errors.bad_request(message)


def kubelet_address(node: core_pb2.Node) -> str:
    """host:port of a Node's kubelet, from its status."""
    by_type = {a.type: a.address for a in node.status.addresses if a.address}
    host = by_type.get("InternalIP") or by_type.get("Hostname")
    if not host:
        raise errors.unavailable(f'error dialing backend: node "{node.metadata.name}" '
                                 "reports no address")
    port = node.status.daemon_endpoints.kubelet_endpoint.port or DEFAULT_KUBELET_PORT
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class KubeletProxy:
    """The apiserver's Logs, Exec and PortForward handlers."""

    def __init__(self, registry: Registry, credentials: ClientCredentials = INSECURE, *,
                 authorizer: Authorizer | None = None, dial_timeout: float = 10.0) -> None:
        self.registry = registry
        self.dial_timeout = dial_timeout
        self.authorizer: Authorizer = authorizer or AlwaysAllow()
        self._credentials = credentials
        self._metadata = credentials.metadata
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()

    def _authorize(self, verb: str, subresource: str, namespace: str, name: str) -> None:
        check(self.authorizer, caller(), Attributes(
            verb, kinds.lookup("Pod"), namespace or "default", name, subresource))

    # ---- finding the kubelet ----

    async def _pod_and_address(self, namespace: str, name: str
                               ) -> tuple[core_pb2.Pod, str]:
        try:
            pod = await self.registry.get(kinds.lookup("Pod"), namespace, name)
            assert isinstance(pod, core_pb2.Pod)
            if not pod.spec.node_name:
                raise errors.failed_precondition(f'pod "{name}" is not scheduled yet',
                                                 reason=StatusReason.BAD_REQUEST)
            node = await self.registry.get(kinds.lookup("Node"), "", pod.spec.node_name)
            assert isinstance(node, core_pb2.Node)
        except storage.Unavailable as err:
            raise errors.unavailable(str(err)) from None
        except storage.Timeout as err:
            raise errors.timeout(f"{errors.REQUEST_TIMED_OUT}: {err}") from None
        except storage.StorageError as err:
            log.exception("storage error")
            raise errors.internal_error(str(err)) from None
        return pod, kubelet_address(node)

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = open_channel(address, self._credentials, options=_CHANNEL_OPTIONS)
            self._channels[address] = channel
        return channel

    async def _dial(self, address: str) -> grpc.aio.Channel:
        """The channel to a kubelet, connected or failed: a refused connection fails at
        once (the call then reports why); an address that does not answer at all fails
        after dial_timeout instead of hanging the user's command."""
        channel = self._channel(address)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.dial_timeout
        state = channel.get_state(try_to_connect=True)
        while state not in (grpc.ChannelConnectivity.READY,
                            grpc.ChannelConnectivity.TRANSIENT_FAILURE):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise errors.unavailable(
                    f"error dialing backend: dial tcp {address}: i/o timeout")
            try:
                await asyncio.wait_for(channel.wait_for_state_change(state), remaining)
            except TimeoutError:
                continue
            state = channel.get_state(try_to_connect=True)
        return channel

    def _upstream_error(self, err: grpc.aio.AioRpcError, address: str, channel: grpc.aio.Channel,
                        streamed: bool) -> errors.ApiError:
        """What the user sees of a failed kubelet call: the kubelet's own status as is;
        a connection that never came up or broke as UNAVAILABLE."""
        details = err.details() or err.code().name
        if err.code() == grpc.StatusCode.UNAVAILABLE:
            if streamed:
                return errors.unavailable(f"lost the connection to the kubelet at {address}: "
                                          f"{details}")
            if channel.get_state() != grpc.ChannelConnectivity.READY:
                return errors.unavailable(f"error dialing backend: {details}")
        return errors.ApiError(err.code(), details)

    # ---- Logs ----

    async def Logs(self, request: kapi.LogsRequest, context: grpc.aio.ServicerContext
                   ) -> AsyncIterator[bytes]:
        """Streams the kubelet's LogChunk messages on as they come, already serialized."""
        try:
            self._authorize("get", "log", request.namespace, request.pod)
            pod, address = await self._pod_and_address(request.namespace, request.pod)
            forwarded = kapi.LogsRequest()
            forwarded.CopyFrom(request)
            forwarded.container = container_for(pod, request.container)
            forwarded.pod_uid = pod.metadata.uid
            channel = await self._dial(address)
        except errors.ApiError as err:
            await errors.abort(context, err)
            return
        call = channel.unary_stream(_LOGS, request_serializer=kapi.LogsRequest.SerializeToString,
                                    response_deserializer=None)(forwarded,
                                                                metadata=self._metadata)
        streamed = False
        try:
            async for chunk in call:
                streamed = True
                yield chunk
        except grpc.aio.AioRpcError as err:
            failure = self._upstream_error(err, address, channel, streamed)
            await errors.abort(context, failure)
        finally:
            call.cancel()  # the user went away: so does the kubelet's stream

    # ---- streams both ways: Exec, PortForward ----

    async def _relay(self, method: str, response_type: type[Resp], first: Req,
                     requests: AsyncIterator[Req], address: str, channel: grpc.aio.Channel,
                     context: grpc.aio.ServicerContext) -> AsyncIterator[Resp]:
        """The caller's stream (its `first` message already read) to the kubelet at
        `address` and the kubelet's back. It ends when the caller half-closes, so the
        call towards the kubelet does too (port-forward's half-close)."""

        async def upstream() -> AsyncIterator[Req]:
            yield first
            async for request in requests:
                yield request

        call = channel.stream_stream(
            method, request_serializer=_serialize,
            response_deserializer=response_type.FromString)(upstream(), metadata=self._metadata)
        streamed = False
        try:
            async for response in call:
                streamed = True
                yield response
        except grpc.aio.AioRpcError as err:
            failure = self._upstream_error(err, address, channel, streamed)
            await errors.abort(context, failure)
        finally:
            call.cancel()

    # ---- Exec ----

    async def Exec(self, requests: AsyncIterator[kapi.ExecRequest],
                   context: grpc.aio.ServicerContext) -> AsyncIterator[kapi.ExecResponse]:
        try:
            first, address, channel = await self._start_exec(requests)
        except errors.ApiError as err:
            await errors.abort(context, err)
            return

        async for response in self._relay(_EXEC, kapi.ExecResponse, first, requests,
                                          address, channel, context):
            yield response

    async def _start_exec(self, requests: AsyncIterator[kapi.ExecRequest]
                          ) -> tuple[kapi.ExecRequest, str, grpc.aio.Channel]:
        try:
            first = await anext(aiter(requests))
        except StopAsyncIteration:
            raise errors.bad_request("the exec stream ended before its start message") from None
        if first.WhichOneof("message") != "start":
            raise errors.bad_request("the first message of an exec stream must be its start")
        start = first.start
        if not start.command:
            raise errors.bad_request("you must specify at least one command for the container")
        self._authorize("create", "exec", start.namespace, start.pod)
        pod, address = await self._pod_and_address(start.namespace, start.pod)
        if is_terminal(pod):
            raise errors.failed_precondition(
                "cannot exec into a container in a completed pod; current phase is "
                f"{pod.status.phase}", reason=StatusReason.BAD_REQUEST)
        start.container = container_for(pod, start.container)
        start.pod_uid = pod.metadata.uid
        log.info("exec %s/%s container %s on %s: %s", start.namespace, start.pod,
                 start.container, address, list(start.command))
        return first, address, await self._dial(address)

    # ---- PortForward ----

    async def PortForward(self, requests: AsyncIterator[kapi.PortForwardRequest],
                          context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[kapi.PortForwardResponse]:
        try:
            first, address, channel = await self._start_port_forward(requests)
        except errors.ApiError as err:
            await errors.abort(context, err)
            return

        async for response in self._relay(_PORT_FORWARD, kapi.PortForwardResponse, first,
                                          requests, address, channel, context):
            yield response

    async def _start_port_forward(self, requests: AsyncIterator[kapi.PortForwardRequest]
                                  ) -> tuple[kapi.PortForwardRequest, str, grpc.aio.Channel]:
        try:
            first = await anext(aiter(requests))
        except StopAsyncIteration:
            raise errors.bad_request(
                "the port-forward stream ended before its start message") from None
        if first.WhichOneof("message") != "start":
            raise errors.bad_request(
                "the first message of a port-forward stream must be its start")
        start = first.start
        if not 0 < start.port < 65536:
            raise errors.bad_request(f"invalid port {start.port}: must be 1-65535")
        self._authorize("create", "portforward", start.namespace, start.pod)
        pod, address = await self._pod_and_address(start.namespace, start.pod)
        if start.pod_uid and start.pod_uid != pod.metadata.uid:
            # The pod the caller chose is gone; one of the same name replaced it.
            raise errors.ApiError(grpc.StatusCode.NOT_FOUND,
                                  f'pods "{start.pod}" not found (uid {start.pod_uid}: the '
                                  "pod was deleted or replaced)", reason=StatusReason.NOT_FOUND)
        if pod.status.phase != "Running":
            raise errors.failed_precondition(
                "unable to forward port because pod is not running. Current status="
                f"{pod.status.phase or 'Pending'}", reason=StatusReason.BAD_REQUEST)
        start.pod_uid = pod.metadata.uid
        return first, address, await self._dial(address)
