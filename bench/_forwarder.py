"""A bare gRPC server that only forwards each Create to etcd: the ceiling the apiserver's
throughput is compared with (it validates, defaults and caches nothing).

Usage: python bench/_forwarder.py ETCD_ENDPOINT PORT
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apiserver.storage import EtcdStore
from skiff.api.v1 import core_pb2
from skiff.api.v1 import service_pb2 as api


async def main(endpoint: str, port: int) -> None:
    store = EtcdStore([endpoint])

    async def create(request: api.CreateRequest, context: object) -> api.ObjectReply:
        obj = core_pb2.ConfigMap.FromString(request.object.value)
        key = f"/forward/{obj.metadata.namespace}/{obj.metadata.name}".encode()
        await store.create(key, request.object.value)
        return api.ObjectReply(object=request.object)

    async def version(request: api.VersionRequest, context: object) -> api.VersionReply:
        return api.VersionReply(version="forwarder")

    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("skiff.api.v1.Api", {
        "Create": grpc.unary_unary_rpc_method_handler(
            create, request_deserializer=api.CreateRequest.FromString,
            response_serializer=api.ObjectReply.SerializeToString),
        "Version": grpc.unary_unary_rpc_method_handler(
            version, request_deserializer=api.VersionRequest.FromString,
            response_serializer=api.VersionReply.SerializeToString),
    })])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
