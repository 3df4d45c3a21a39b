"""Helpers for integration tests against the session's real apiserver."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from skiff.api.v1 import core_pb2
from skiff.client.client import Client


@pytest.fixture
async def client(apiserver) -> AsyncIterator[Client]:  # type: ignore[no-untyped-def]
    c = apiserver.client()
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def ns(client: Client) -> str:
    """A fresh namespace for one test, so tests sharing the apiserver do not collide."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    namespace = core_pb2.Namespace()
    namespace.metadata.name = name
    await client.create(namespace)
    return name
