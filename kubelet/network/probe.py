"""The agents probe each other's pod networks: can this node's pods reach every other's?

Each node answers on its pods bridge's gateway address (the first address of its podCIDR,
on the host) at PROBE_PORT, with its node name. At every pod network sync, each node
connects to every other node's gateway address *from its own gateway address*: a packet
from one pod network to another, routed by the routes Skiff wrote, through the forwarding
rules, not masqueraded (an answer must come back to an address in this node's podCIDR).

The outcome is the Node condition PodNetworkReachable (True: every peer answered, with the
peers; False: which did not and why), which `skiff doctor` shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping

log = logging.getLogger(__name__)

DEFAULT_PROBE_PORT = 10262
CONDITION = "PodNetworkReachable"
PROBE_TIMEOUT = 2.0

ConditionSpec = tuple[str, str, str]  # status, reason, message


class PeerProbes:
    def __init__(self, node_name: str, port: int, timeout: float = PROBE_TIMEOUT) -> None:
        self.node_name = node_name
        self.port = port
        self.timeout = timeout
        self.results: dict[str, str] = {}  # peer -> "" (answered) or why not
        self._server: asyncio.Server | None = None
        self._listening_on = ""

    async def listen(self, gateway: str) -> None:
        """Answers probes on `gateway` (again, when the bridge's gateway changed)."""
        if self._listening_on == gateway and self._server is not None:
            return
        await self.close()
        try:
            self._server = await asyncio.start_server(self._answer, host=gateway,
                                                      port=self.port, reuse_address=True)
        except OSError as err:
            log.warning("cannot answer pod network probes on %s:%d: %s", gateway, self.port,
                        err)
            return
        self._listening_on = gateway
        log.info("answering pod network probes on %s:%d", gateway, self.port)

    async def _answer(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            writer.write(f"{self.node_name}\n".encode())
            await writer.drain()
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError):
                await self._server.wait_closed()
        self._server, self._listening_on = None, ""

    async def probe(self, source: str, peers: Mapping[str, str]) -> dict[str, str]:
        """Connects from `source` to each peer's gateway ({node: address}); remembers and
        returns {node: "" if it answered as itself, else why not}."""
        async def one(node: str, address: str) -> tuple[str, str]:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    address, self.port, local_addr=(source, 0)), self.timeout)
            except TimeoutError:
                return node, f"no answer from {address}:{self.port} in {self.timeout:g}s"
            except OSError as err:
                why = os.strerror(err.errno) if err.errno else str(err)
                return node, f"{address}:{self.port}: {why}"
            try:
                line = await asyncio.wait_for(reader.readline(), self.timeout)
            except (TimeoutError, OSError) as err:
                return node, f"{address}:{self.port} did not say who it is: {err}"
            finally:
                writer.close()
            answered = line.decode(errors="replace").strip()
            return node, "" if answered == node else (
                f"{address}:{self.port} answered as {answered or 'nobody'}")

        found = dict(await asyncio.gather(*(one(n, a) for n, a in sorted(peers.items()))))
        for node, why in found.items():
            if why and self.results.get(node) != why:
                log.warning("cannot reach node %s's pod network: %s", node, why)
        self.results = found
        return found

    def condition(self) -> ConditionSpec | None:
        """The Node's PodNetworkReachable condition; None before any probe."""
        if not self.results:
            return None
        failed = {n: why for n, why in self.results.items() if why}
        if failed:
            return ("False", "PeersUnreachable", "cannot reach the pod networks of: " +
                    "; ".join(f"{n} ({why})" for n, why in sorted(failed.items())))
        return ("True", "PeersReachable", f"reaches the pod networks of {len(self.results)} "
                f"node(s): {', '.join(sorted(self.results))}")
