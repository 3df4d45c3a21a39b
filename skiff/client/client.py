"""The async typed client of the apiserver: messages in, messages out.

Every request but a watch has a deadline, sent to the server as the gRPC deadline: a
default per verb (`RequestTimeouts`), overridable per call (`timeout=`), and capped by
the server's --request-timeout. Reads (get, list, version) are retried with backoff
while the apiserver is unavailable, within that deadline; writes never are, nor is
anything after a Timeout: a write whose etcd call timed out may have been stored, and a
create sent twice would make two objects. A request the apiserver refused as
TooManyRequests (its bound of requests in flight) was never processed: it is retried
after the server's retry hint, writes too, within the deadline. Errors are
`skiff.client.errors` classes.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message

from skiff.api import kinds, limits
from skiff.api.limits import MAX_REQUEST_BYTES
from skiff.api.v1 import kubelet_pb2 as kapi
from skiff.api.v1 import service_pb2 as api
from skiff.api.v1 import service_pb2_grpc
from skiff.client import errors
from skiff.client.backoff import exponential_delay
from skiff.client.config import HTTPS, ClientConfig
from skiff.client.transport import RECONNECT_OPTIONS, ClientCredentials, open_channel

T = TypeVar("T", bound=Message)
R = TypeVar("R")
KindLike = kinds.Kind | type[Message] | str

_ApiStub: Any = service_pb2_grpc.ApiStub  # generated code, without type information
_READ_RETRIES = 6
# The server answers Timeout a little before the caller's deadline (apiserver.deadlines);
# a DEADLINE_EXCEEDED this close to the deadline is the caller's own timer firing.
_OWN_DEADLINE_SLACK = 0.05
# A request the apiserver refused as TooManyRequests was never processed: it is retried,
# a write as a read, as client-go does (10 times), after the server's Retry-After.
_THROTTLE_RETRIES = 10
_THROTTLE_INITIAL_DELAY = 0.5  # when the server gives no hint
_THROTTLE_MAX_DELAY = 8.0
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 256 * 1024 * 1024),
                    *RECONNECT_OPTIONS]


def throttle_delay(refusals: int, retry_after: float | None) -> float:
    """The wait before retrying a request refused `refusals` times in a row as
    TooManyRequests: the server's hint at first (never less), doubling while refusals
    go on, and up to a quarter more at random so that clients refused together do not
    come back together."""
    initial = retry_after or _THROTTLE_INITIAL_DELAY
    delay = exponential_delay(refusals, initial, max(initial, _THROTTLE_MAX_DELAY))
    return delay * random.uniform(1.0, 1.25)


def kind_of(kind: KindLike) -> kinds.Kind:
    if isinstance(kind, kinds.Kind):
        return kind
    if isinstance(kind, str):
        return kinds.lookup(kind)
    return kinds.by_type_url(kinds.TYPE_URL_PREFIX + kind.DESCRIPTOR.full_name)


def unpack(packed: any_pb2.Any) -> Message:
    return kinds.by_type_url(packed.type_url).message.FromString(packed.value)


def pack(obj: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(obj, type_url_prefix=kinds.TYPE_URL_PREFIX)
    return packed


@dataclass(frozen=True, slots=True)
class RequestTimeouts:
    """Seconds the client waits for each kind of request (watches are long-running and
    have none). Kubernetes' apiserver gives every request 60 s; a client waits less for
    one object (30 s, so that a stalled etcd is reported while the user still waits) and
    as long for a list, which may be large. Writes wait 30 s as well: past that their
    outcome is unknown either way, and a controller is better off re-reading."""

    get: float = 30.0
    list: float = 60.0
    write: float = 30.0


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: Message | None
    resource_version: str


class Client:
    def __init__(self, server: str, token: str | None = None, *,
                 credentials: ClientCredentials | None = None,
                 timeouts: RequestTimeouts | None = None) -> None:
        """A client of the apiserver at `server`, known by `credentials` (or by `token`
        alone, a shorthand for ClientCredentials(token=token)), waiting for each request
        as long as `timeouts` says."""
        self.server = server
        self.timeouts = timeouts or RequestTimeouts()
        credentials = credentials or ClientCredentials(token=token)
        self._metadata = credentials.metadata
        self._channel = open_channel(server.removeprefix(HTTPS), credentials,
                                     options=_CHANNEL_OPTIONS)
        self._stub = _ApiStub(self._channel)

    @classmethod
    def from_config(cls, path: str | None = None, server: str | None = None, *,
                    context: str | None = None,
                    timeouts: RequestTimeouts | None = None) -> Client:
        config = ClientConfig.load(path, server, context)
        return cls(config.server, credentials=config.credentials(), timeouts=timeouts)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- plumbing ----

    async def _read(self, method: Callable[..., Awaitable[R]], request: Message,
                    timeout: float) -> R:
        """A read: retried with backoff while the apiserver is unavailable, all within
        `timeout`."""
        return await self._call(method, request, timeout, retry=True)

    async def _write(self, method: Callable[..., Awaitable[R]], request: Message,
                     timeout: float | None) -> R:
        """A write: sent once. Whatever fails, it may have reached etcd."""
        return await self._call(method, request, timeout or self.timeouts.write, retry=False)

    async def _call(self, method: Callable[..., Awaitable[R]], request: Message,
                    timeout: float, *, retry: bool) -> R:
        size = request.ByteSize()
        if size > MAX_REQUEST_BYTES:  # the apiserver would refuse it: do not send it
            raise errors.RequestEntityTooLarge(
                f"Request entity too large: limit is {limits.describe(MAX_REQUEST_BYTES)}, "
                f"the request is {size} bytes")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        unavailable = throttled = 0
        while True:
            try:
                return await method(request, metadata=self._metadata,
                                    timeout=max(0.0, deadline - loop.time()))
            except grpc.aio.AioRpcError as err:
                code = err.code()
                if (code == grpc.StatusCode.DEADLINE_EXCEEDED
                        and loop.time() >= deadline - _OWN_DEADLINE_SLACK):
                    raise self._no_answer(timeout, write=not retry) from None
                error = errors.from_rpc_error(err)
                if isinstance(error, errors.TooManyRequests) and throttled < _THROTTLE_RETRIES:
                    delay = throttle_delay(throttled + 1, error.retry_after)
                    if loop.time() + delay < deadline:
                        throttled += 1
                        await asyncio.sleep(delay)
                        continue
                if (retry and isinstance(error, errors.Unavailable)
                        and unavailable < _READ_RETRIES - 1):
                    delay = exponential_delay(unavailable + 1, 0.1, math.inf)
                    if loop.time() + delay < deadline:
                        unavailable += 1
                        await asyncio.sleep(delay)
                        continue
                raise error from None

    def _no_answer(self, timeout: float, *, write: bool) -> errors.DeadlineExceeded:
        message = f"the apiserver at {self.server} did not answer within {timeout:g}s"
        if write:
            message += "; the write may have been applied: read before retrying"
        return errors.DeadlineExceeded(message)

    # ---- verbs ----

    async def create(self, obj: T, *, dry_run: bool = False, timeout: float | None = None
                     ) -> T:
        reply = await self._write(self._stub.Create,
                                  api.CreateRequest(object=pack(obj), dry_run=dry_run),
                                  timeout)
        return cast(T, unpack(reply.object))

    async def create_manifest(self, manifest: dict[str, Any], *, dry_run: bool = False,
                              timeout: float | None = None) -> tuple[Message, list[str]]:
        """Creates from a Kubernetes manifest; the server converts it and returns
        warnings for the fields it does not use."""
        reply = await self._write(self._stub.Create, api.CreateRequest(
            manifest_json=json.dumps(manifest).encode(), dry_run=dry_run), timeout)
        return unpack(reply.object), list(reply.warnings)

    @overload
    async def get(self, kind: type[T], name: str, namespace: str = "", *,
                  resource_version: str = "", timeout: float | None = None) -> T: ...
    @overload
    async def get(self, kind: kinds.Kind | str, name: str, namespace: str = "", *,
                  resource_version: str = "", timeout: float | None = None) -> Message: ...

    async def get(self, kind: KindLike, name: str, namespace: str = "", *,
                  resource_version: str = "", timeout: float | None = None) -> Message:
        """One object: the latest (from etcd), or with `resource_version` "0" whatever the
        apiserver's watch cache holds, which it can answer while etcd is stalled."""
        reply = await self._read(self._stub.Get, api.GetRequest(
            kind=kind_of(kind).kind, namespace=namespace, name=name,
            resource_version=resource_version), timeout or self.timeouts.get)
        return unpack(reply.object)

    @overload
    async def list(self, kind: type[T], namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", resource_version: str = "",
                   timeout: float | None = None) -> tuple[list[T], str]: ...
    @overload
    async def list(self, kind: kinds.Kind | str, namespace: str = "", *,
                   label_selector: str = "", field_selector: str = "",
                   resource_version: str = "", timeout: float | None = None
                   ) -> tuple[list[Message], str]: ...

    async def list(self, kind: KindLike, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", resource_version: str = "",
                   timeout: float | None = None) -> tuple[list[Any], str]:
        """Objects of a kind (all namespaces when `namespace` is empty) and the list's
        resourceVersion, from which a watch continues. Consistent (what etcd holds now)
        unless `resource_version` is "0": then whatever the apiserver's watch cache holds,
        as informers list first, which it can answer while etcd is stalled."""
        k = kind_of(kind)
        reply = await self._read(self._stub.List, api.ListRequest(
            kind=k.kind, namespace=namespace, label_selector=label_selector,
            field_selector=field_selector, resource_version=resource_version),
            timeout or self.timeouts.list)
        parse = k.message.FromString
        return [parse(item.value) for item in reply.items], reply.resource_version

    async def update(self, obj: T, *, dry_run: bool = False, timeout: float | None = None
                     ) -> T:
        reply = await self._write(self._stub.Update,
                                  api.UpdateRequest(object=pack(obj), dry_run=dry_run),
                                  timeout)
        return cast(T, unpack(reply.object))

    async def update_manifest(self, manifest: dict[str, Any], *, dry_run: bool = False,
                              timeout: float | None = None
                              ) -> tuple[Message, builtins.list[str]]:
        reply = await self._write(self._stub.Update, api.UpdateRequest(
            manifest_json=json.dumps(manifest).encode(), dry_run=dry_run), timeout)
        return unpack(reply.object), list(reply.warnings)

    async def update_status(self, obj: T, *, timeout: float | None = None) -> T:
        reply = await self._write(self._stub.UpdateStatus,
                                  api.UpdateRequest(object=pack(obj)), timeout)
        return cast(T, unpack(reply.object))

    async def delete(self, kind: KindLike, name: str, namespace: str = "", *,
                     grace_period: int | None = None, propagation: str = "",
                     uid: str = "", resource_version: str = "", dry_run: bool = False,
                     timeout: float | None = None) -> Message:
        request = api.DeleteRequest(kind=kind_of(kind).kind, namespace=namespace, name=name,
                                    propagation_policy=propagation, precondition_uid=uid,
                                    precondition_resource_version=resource_version,
                                    dry_run=dry_run)
        if grace_period is not None:
            request.grace_period_seconds = grace_period
        reply = await self._write(self._stub.Delete, request, timeout)
        return unpack(reply.object)

    async def bind(self, namespace: str, name: str, node_name: str, uid: str = "", *,
                   timeout: float | None = None) -> Message:
        reply = await self._write(self._stub.Bind, api.BindRequest(
            namespace=namespace, name=name, node_name=node_name, uid=uid), timeout)
        return unpack(reply.object)

    async def version(self, *, timeout: float | None = None) -> api.VersionReply:
        return await self._read(self._stub.Version, api.VersionRequest(),
                                timeout or self.timeouts.get)

    async def join(self, request: api.JoinRequest, *, timeout: float | None = None
                   ) -> api.JoinReply:
        """Trades this client's join token for a node's certificates (skiff join)."""
        return await self._write(self._stub.Join, request, timeout)

    async def whoami(self, *, timeout: float | None = None) -> api.WhoAmIReply:
        """Who the apiserver takes this client's credentials for."""
        return await self._read(self._stub.WhoAmI, api.WhoAmIRequest(),
                                timeout or self.timeouts.get)

    async def watch(self, kind: KindLike, namespace: str = "", *, label_selector: str = "",
                    field_selector: str = "", resource_version: str = "",
                    bookmarks: bool = False) -> AsyncIterator[WatchEvent]:
        """Changes after `resource_version` (or the current state as ADDED events, then
        changes). Ends when the server ends the stream; raises errors.Expired when the
        version is too old (relist) and errors.Unavailable when the connection drops."""
        k = kind_of(kind)
        call = self._stub.Watch(api.WatchRequest(
            kind=k.kind, namespace=namespace, label_selector=label_selector,
            field_selector=field_selector, resource_version=resource_version,
            allow_bookmarks=bookmarks), metadata=self._metadata)
        parse = k.message.FromString
        try:
            async for reply in call:
                for event in reply.events:
                    obj = parse(event.object.value) if event.HasField("object") else None
                    yield WatchEvent(event.type, obj, event.resource_version)
        except grpc.aio.AioRpcError as err:
            raise errors.from_rpc_error(err) from None
        finally:
            call.cancel()

    async def logs(self, name: str, namespace: str = "", *, container: str = "",
                   follow: bool = False, previous: bool = False, tail_lines: int | None = None,
                   timestamps: bool = False) -> AsyncIterator[bytes]:
        """A pod container's output, through the apiserver from the kubelet of its node.
        With `follow`, ends when the container stops (or the caller stops iterating)."""
        request = kapi.LogsRequest(namespace=namespace, pod=name, container=container,
                                   follow=follow, previous=previous, timestamps=timestamps)
        if tail_lines is not None:
            request.tail_lines = tail_lines
        call = self._stub.Logs(request, metadata=self._metadata)
        try:
            async for chunk in call:
                yield chunk.data
        except grpc.aio.AioRpcError as err:
            raise errors.from_rpc_error(err) from None
        finally:
            call.cancel()

    async def exec(self, name: str, command: builtins.list[str], namespace: str = "", *,
                   container: str = "", tty: bool = False, stdin: bool = False) -> ExecStream:
        """Starts `command` in a pod's container. Errors (no such pod, container not
        running, ...) are raised by the session's first read of output."""
        call = self._stub.Exec(metadata=self._metadata)
        session = ExecStream(call)
        await session._send(kapi.ExecRequest(start=kapi.ExecStart(
            namespace=namespace, pod=name, container=container, command=command, tty=tty,
            stdin=stdin)))
        return session

    async def port_forward(self, name: str, port: int, namespace: str = "", *,
                           pod_uid: str = "") -> PortForwardStream:
        """One TCP connection to `port` on the pod's loopback, through the apiserver and
        the kubelet of its node. With `pod_uid`, only that pod (not a newer one of the same
        name). Errors (no such pod, nothing listening) are raised by the first read."""
        call = self._stub.PortForward(metadata=self._metadata)
        stream = PortForwardStream(call)
        await stream._send(kapi.PortForwardRequest(start=kapi.PortForwardStart(
            namespace=namespace, pod=name, port=port, pod_uid=pod_uid)))
        return stream


class PortForwardStream:
    """A connection to a pod's port (`Client.port_forward`): write bytes, read bytes,
    half-close. One writer at a time (gRPC takes one write at a time). Writes after the
    connection ended are dropped silently: `read` says how it ended."""

    def __init__(self, call: Any) -> None:
        self._call = call

    async def _send(self, request: kapi.PortForwardRequest) -> None:
        try:
            await self._call.write(request)
        except asyncio.InvalidStateError:
            pass  # the call is over: read() reports its end
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                raise errors.from_rpc_error(err) from None

    async def write(self, data: bytes) -> None:
        if data:
            await self._send(kapi.PortForwardRequest(data=data))

    async def done_writing(self) -> None:
        """End of file for the pod's side; its answer still comes."""
        with contextlib.suppress(asyncio.InvalidStateError, grpc.aio.AioRpcError):
            await self._call.done_writing()

    async def read(self) -> bytes:
        """The next bytes from the pod's side; b"" once it closed the connection. Raises
        the API's errors (e.g. Unavailable: nothing listens on the port in the pod)."""
        while True:
            try:
                response = await self._call.read()
            except grpc.aio.AioRpcError as err:
                raise errors.from_rpc_error(err) from None
            if response is grpc.aio.EOF:
                return b""
            if response.data:
                return bytes(response.data)

    def close(self) -> None:
        """Ends the call (both directions) if it has not ended."""
        self._call.cancel()


class ExecStream:
    """A command running in a container (`Client.exec`): feed its stdin, read its output,
    get its exit code. Writes after the command ended are dropped silently: the output
    side says how it ended."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._lock = asyncio.Lock()  # gRPC takes one write at a time (stdin and resizes race)
        self.exit_code: int | None = None

    async def _send(self, request: kapi.ExecRequest) -> None:
        async with self._lock:
            try:
                await self._call.write(request)
            except asyncio.InvalidStateError:
                pass  # the call is over: output() reports its end
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.CANCELLED:
                    raise errors.from_rpc_error(err) from None

    async def write(self, data: bytes) -> None:
        if data:
            await self._send(kapi.ExecRequest(stdin=data))

    async def close_stdin(self) -> None:
        await self._send(kapi.ExecRequest(stdin_closed=True))

    async def resize(self, rows: int, columns: int) -> None:
        await self._send(kapi.ExecRequest(resize=kapi.TerminalSize(rows=rows, columns=columns)))

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        """(1, stdout bytes) and (2, stderr bytes) until the command ends; then
        `exit_code` is set. Raises the API's errors (with a TTY all output is stream 1)."""
        try:
            while True:
                response = await self._call.read()
                if response is grpc.aio.EOF:
                    if self.exit_code is None:
                        raise errors.ApiError("the exec stream ended without an exit code")
                    return
                kind = response.WhichOneof("message")
                if kind == "stdout":
                    yield 1, response.stdout
                elif kind == "stderr":
                    yield 2, response.stderr
                elif kind == "exit_code":
                    self.exit_code = response.exit_code
                    return
                elif kind == "error":
                    raise errors.ApiError(response.error)
        except grpc.aio.AioRpcError as err:
            raise errors.from_rpc_error(err) from None

    async def wait(self) -> int:
        """The exit code, once the command ends (output not yet read is dropped)."""
        async for _ in self.output():
            pass
        assert self.exit_code is not None
        return self.exit_code

    async def close(self) -> None:
        """Ends the call; the command's stdin reads end of file."""
        self._call.cancel()

    async def __aenter__(self) -> ExecStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
