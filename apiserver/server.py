"""The gRPC face of the apiserver: requests in, registry calls, replies or statuses out.

Every request is authorized for its caller (skiff.daemon.auth.caller(), set by the
server's authentication) before the registry sees it: see apiserver.authorization."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import platform
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from apiserver import errors, storage
from apiserver.authorization import AlwaysAllow, Attributes, Authorizer, check
from apiserver.deadlines import DEFAULT_REQUEST_TIMEOUT, request_budget
from apiserver.join import JoinService
from apiserver.proxy import KubeletProxy
from apiserver.registry import Registry
from apiserver.storage import deadline
from apiserver.watchcache import Expired, TooNew
from skiff.api import convert, kinds
from skiff.api.meta import meta
from skiff.api.v1 import kubelet_pb2 as kapi
from skiff.api.v1 import service_pb2 as api
from skiff.daemon.auth import caller
from skiff.version import VERSION

log = logging.getLogger(__name__)

SERVICE = "skiff.api.v1.Api"
R = TypeVar("R")


def _pack(obj: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(obj, type_url_prefix="type.googleapis.com/")
    return packed


def _kind(name: str) -> kinds.Kind:
    try:
        return kinds.lookup(name)
    except kinds.UnknownKindError as err:
        raise errors.bad_request(str(err)) from None


def _object_in(packed: any_pb2.Any, manifest_json: bytes) -> tuple[Message, list[str]]:
    """The object of a Create or Update, from a typed Any or a Kubernetes manifest."""
    if manifest_json:
        try:
            data = json.loads(manifest_json)
        except ValueError as err:
            raise errors.bad_request(f"manifest is not valid JSON: {err}") from None
        try:
            return convert.from_dict(data)
        except kinds.UnknownKindError as err:
            raise errors.bad_request(f"{convert.describe(data)}: {err}") from None
        except convert.ConversionError as err:
            raise errors.bad_request(f"{err.subject} is invalid: " + "; ".join(err.errors)
                                     ) from None
    if not packed.type_url:
        raise errors.bad_request("the request carries no object")
    try:
        kind = kinds.by_type_url(packed.type_url)
        return kind.message.FromString(packed.value), []
    except kinds.UnknownKindError as err:
        raise errors.bad_request(str(err)) from None
    except DecodeError as err:
        raise errors.bad_request(f"cannot decode {packed.type_url}: {err}") from None


# The verbs that write, as the Timeout message names them: their outcome is unknown when
# etcd does not answer in time.
_WRITES = {"Join": "join", "Create": "create", "Update": "update", "UpdateStatus": "update",
           "Delete": "delete", "Bind": "binding"}


def _handles_errors(method: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Runs a unary verb within its deadline (see apiserver.deadlines) and turns what
    went wrong into a gRPC status."""
    write = method.__name__ in _WRITES
    verb = _WRITES.get(method.__name__, method.__name__.lower())

    @functools.wraps(method)
    async def wrapper(self: ApiService, request: Any, context: grpc.aio.ServicerContext) -> R:
        budget = request_budget(context.time_remaining(), self.request_timeout)
        try:
            with deadline.within(budget):
                async with asyncio.timeout(budget):
                    return await method(self, request, context)
        except (TimeoutError, storage.Timeout):
            err = errors.storage_timeout(verb, budget, write=write)
            log.warning("%s timed out after %.3gs: etcd did not answer", verb, budget)
            await context.abort(err.code, err.message)
        except errors.ApiError as err:
            await errors.abort(context, err)
        except storage.Unavailable as err:
            await errors.abort(context, errors.unavailable(str(err)))
        except storage.StorageError as err:
            log.exception("storage error")
            await errors.abort(context, errors.internal_error(str(err)))
        raise AssertionError("unreachable")  # context.abort raises
    return wrapper


def _attributes(verb: str, obj: Message, subresource: str = "") -> Attributes:
    """What a write of `obj` is, for the authorizer."""
    kind = kinds.by_message(obj)
    m = meta(obj)
    namespace = (m.namespace or "default") if kind.namespaced else ""
    return Attributes(verb, kind, namespace, m.name, subresource)


def _scope(kind: kinds.Kind, namespace: str) -> str:
    return (namespace or "default") if kind.namespaced else ""


class ApiService:
    def __init__(self, registry: Registry, proxy: KubeletProxy | None = None, *,
                 authorizer: Authorizer | None = None,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                 joins: JoinService | None = None) -> None:
        self.registry = registry
        self.joins = joins  # None: this apiserver signs no certificates
        # The most a unary request may take, whatever deadline its caller sent.
        self.request_timeout = request_timeout
        self.authorizer: Authorizer = authorizer or AlwaysAllow()
        # Logs, Exec and PortForward: streams proxied to the kubelet of the pod's node.
        self.proxy = proxy or KubeletProxy(registry, authorizer=self.authorizer)

    def _authorize(self, attributes: Attributes) -> None:
        check(self.authorizer, caller(), attributes)

    @_handles_errors
    async def Create(self, request: api.CreateRequest, context: Any) -> api.ObjectReply:
        obj, warnings = _object_in(request.object, request.manifest_json)
        self._authorize(_attributes("create", obj))
        created = await self.registry.create(obj, dry_run=request.dry_run)
        return api.ObjectReply(object=_pack(created), warnings=warnings)

    @_handles_errors
    async def Get(self, request: api.GetRequest, context: Any) -> api.ObjectReply:
        kind = _kind(request.kind)
        self._authorize(Attributes("get", kind, _scope(kind, request.namespace), request.name))
        obj = await self.registry.get(kind, request.namespace, request.name,
                                      resource_version=request.resource_version)
        return api.ObjectReply(object=_pack(obj))

    @_handles_errors
    async def List(self, request: api.ListRequest, context: Any) -> api.ListReply:
        kind = _kind(request.kind)
        self._authorize(Attributes("list", kind, request.namespace if kind.namespaced else ""))
        f = self.registry.filter(kind, request.namespace, request.label_selector,
                                 request.field_selector)
        entries, revision = await self.registry.list_entries(
            kind, f, resource_version=request.resource_version)
        reply = api.ListReply(resource_version=str(revision))
        type_url = kind.type_url
        for entry in entries:
            item = reply.items.add()
            item.type_url = type_url
            item.value = entry.data
        return reply

    async def _update(self, request: api.UpdateRequest, status: bool) -> api.ObjectReply:
        obj, warnings = _object_in(request.object, request.manifest_json)
        self._authorize(_attributes("update", obj, "status" if status else ""))
        updated = await self.registry.update(obj, status=status, dry_run=request.dry_run)
        return api.ObjectReply(object=_pack(updated), warnings=warnings)

    @_handles_errors
    async def Update(self, request: api.UpdateRequest, context: Any) -> api.ObjectReply:
        return await self._update(request, status=False)

    @_handles_errors
    async def UpdateStatus(self, request: api.UpdateRequest, context: Any) -> api.ObjectReply:
        return await self._update(request, status=True)

    @_handles_errors
    async def Delete(self, request: api.DeleteRequest, context: Any) -> api.ObjectReply:
        kind = _kind(request.kind)
        self._authorize(Attributes("delete", kind, _scope(kind, request.namespace),
                                   request.name))
        obj = await self.registry.delete(
            kind, request.namespace, request.name,
            grace_period=request.grace_period_seconds
            if request.HasField("grace_period_seconds") else None,
            propagation=request.propagation_policy,
            precondition_uid=request.precondition_uid,
            precondition_rv=request.precondition_resource_version, dry_run=request.dry_run)
        return api.ObjectReply(object=_pack(obj))

    @_handles_errors
    async def Bind(self, request: api.BindRequest, context: Any) -> api.ObjectReply:
        self._authorize(Attributes("create", kinds.lookup("Pod"),
                                   request.namespace or "default", request.name, "binding"))
        pod = await self.registry.bind(request.namespace, request.name, request.node_name,
                                       request.uid)
        return api.ObjectReply(object=_pack(pod))

    @_handles_errors
    async def Version(self, request: api.VersionRequest, context: Any) -> api.VersionReply:
        return api.VersionReply(version=VERSION,
                                etcd_version=await self.registry.store.version(),
                                python_version=platform.python_version(),
                                unix_time=time.time())

    @_handles_errors
    async def Join(self, request: api.JoinRequest, context: Any) -> api.JoinReply:
        self._authorize(Attributes("join", kinds.by_kind("Node"), "", request.node_name))
        if self.joins is None:
            raise errors.failed_precondition(
                "this apiserver signs no certificates, so no host can join: start it with "
                "--cluster-signing-cert-file and --cluster-signing-key-file")
        return await self.joins.join(request, caller())

    @_handles_errors
    async def WhoAmI(self, request: api.WhoAmIRequest, context: Any) -> api.WhoAmIReply:
        who = caller()
        return api.WhoAmIReply(username=who.user, groups=list(who.groups))

    async def Watch(self, request: api.WatchRequest,
                    context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        """Streams pre-serialized WatchResponse messages (see watchcache)."""
        cache = self.registry.cache
        try:
            kind = _kind(request.kind)
            self._authorize(Attributes("watch", kind,
                                       request.namespace if kind.namespaced else ""))
            f = self.registry.filter(kind, request.namespace, request.label_selector,
                                     request.field_selector)
            rv = request.resource_version
            if rv and not rv.isdigit():
                raise errors.bad_request(f'resourceVersion: Invalid value: "{rv}"')
            start = int(rv) if rv and rv != "0" else None
            if start is not None:
                await cache.wait_for(start, timeout=3.0)
            watcher = cache.watch(kind.kind, f, start, request.allow_bookmarks)
        except errors.ApiError as err:
            await errors.abort(context, err)
            return
        except Expired as err:
            await errors.abort(context, errors.expired(str(err)))
            return
        except TooNew as err:
            await errors.abort(context, errors.resource_version_too_large(rv, str(err)))
            return
        try:
            while True:
                batch = await watcher.next_batch()
                if batch is None:
                    return
                yield batch
        finally:
            cache.unwatch(kind.kind, watcher)


def method_handlers(service: ApiService) -> dict[str, grpc.RpcMethodHandler]:
    """The method table; Watch's and Logs' responses are already bytes, so no serializer.

    Registered with the server method by method (`add_registered_method_handlers`), not
    as one generic handler: gRPC then waits for the next call of each method apart, so
    calls of one method queue only behind calls of the same method. With one generic
    handler every call waits at one door, in order of arrival: another client's `get`
    waited behind the 400 creates of a flood (bench/apiserver_flood.py)."""
    def unary(name: str, request_type: type[Message], reply_type: type[Message]
              ) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            getattr(service, name), request_deserializer=request_type.FromString,
            response_serializer=reply_type.SerializeToString)

    return {
        "Create": unary("Create", api.CreateRequest, api.ObjectReply),
        "Get": unary("Get", api.GetRequest, api.ObjectReply),
        "List": unary("List", api.ListRequest, api.ListReply),
        "Update": unary("Update", api.UpdateRequest, api.ObjectReply),
        "UpdateStatus": unary("UpdateStatus", api.UpdateRequest, api.ObjectReply),
        "Delete": unary("Delete", api.DeleteRequest, api.ObjectReply),
        "Bind": unary("Bind", api.BindRequest, api.ObjectReply),
        "Version": unary("Version", api.VersionRequest, api.VersionReply),
        "WhoAmI": unary("WhoAmI", api.WhoAmIRequest, api.WhoAmIReply),
        "Join": unary("Join", api.JoinRequest, api.JoinReply),
        "Watch": grpc.unary_stream_rpc_method_handler(
            service.Watch, request_deserializer=api.WatchRequest.FromString,
            response_serializer=None),
        "Logs": grpc.unary_stream_rpc_method_handler(
            service.proxy.Logs, request_deserializer=kapi.LogsRequest.FromString,
            response_serializer=None),
        "Exec": grpc.stream_stream_rpc_method_handler(
            service.proxy.Exec, request_deserializer=kapi.ExecRequest.FromString,
            response_serializer=kapi.ExecResponse.SerializeToString),
        "PortForward": grpc.stream_stream_rpc_method_handler(
            service.proxy.PortForward,
            request_deserializer=kapi.PortForwardRequest.FromString,
            response_serializer=kapi.PortForwardResponse.SerializeToString),
    }
