"""The host's side of the pod network: its addresses and routes (`ip`) and its packet
filter (`iptables-save`, `iptables-restore`), behind a small protocol so that the
planners' callers can be tested with `FakeHost` (kubelet/network/fake.py) and a simulated
node never touches the machine it runs on.

`SystemHost` runs the commands. It reads with `ip -j` (JSON) and writes rules only with
`iptables-restore --noflush`, one transaction per change set (kubelet/network/rules.py
builds the text): the kernel applies all of it or none. It uses whatever `iptables` the
PATH gives, which is the one Docker itself runs, so both write to the same backend
(legacy or nf_tables).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_interface, ip_network
from typing import Any, Protocol

# The routing protocol number Skiff's routes carry (`ip route ... proto 83`), so that they
# are told from everyone else's: Skiff only ever changes or removes routes that carry it
# (and only inside the cluster CIDR). 83 is free in iproute2's rt_protos.
ROUTE_PROTOCOL = "83"

COMMAND_TIMEOUT = 30.0


class HostError(Exception):
    """A command on the host failed; the message says which and why."""


class ToolMissing(HostError):
    """`ip` or `iptables` is not installed."""


@dataclass(frozen=True)
class InterfaceAddress:
    interface: str
    address: IPv4Interface  # with its prefix: 192.0.2.2/24

    @property
    def network(self) -> IPv4Network:
        return self.address.network


@dataclass(frozen=True)
class Route:
    """A route of the main table, as `ip route` shows it."""

    destination: IPv4Network
    gateway: IPv4Address | None = None
    device: str = ""
    protocol: str = ""  # kernel, boot, static, dhcp, ... or a number (ours: ROUTE_PROTOCOL)

    @property
    def is_skiffs(self) -> bool:
        return self.protocol == ROUTE_PROTOCOL

    @property
    def is_default(self) -> bool:
        return self.destination.prefixlen == 0

    def describe(self) -> str:
        """`10.0.0.0/8 via 192.0.2.1 dev eth0`, as `ip route` prints it."""
        text = str(self.destination)
        if self.gateway is not None:
            text += f" via {self.gateway}"
        if self.device:
            text += f" dev {self.device}"
        return text


class Host(Protocol):
    async def addresses(self) -> list[InterfaceAddress]:
        """Every IPv4 address of every interface."""

    async def routes(self) -> list[Route]:
        """The IPv4 routes of the main table."""

    async def replace_route(self, destination: IPv4Network, gateway: IPv4Address) -> None:
        """Adds or replaces the route to `destination`, marked as Skiff's."""

    async def delete_route(self, route: Route) -> None:
        """Removes one of Skiff's routes; a route already gone is no error."""

    async def iptables_save(self, table: str) -> str:
        """`iptables-save -t table`: the table's chains and rules."""

    async def iptables_restore(self, rules: str) -> None:
        """Applies `rules` (iptables-restore input) with --noflush, in one transaction."""


def parse_addresses(data: list[dict[str, Any]]) -> list[InterfaceAddress]:
    """`ip -j -4 addr show` output."""
    found = []
    for link in data:
        for info in link.get("addr_info") or []:
            if info.get("family") != "inet" or "local" not in info:
                continue
            address = ip_interface(f"{info['local']}/{info.get('prefixlen', 32)}")
            if isinstance(address, IPv4Interface):
                found.append(InterfaceAddress(str(link.get("ifname", "")), address))
    return found


def parse_routes(data: list[dict[str, Any]]) -> list[Route]:
    """`ip -j -4 route show table main` output (a host route's dst has no prefix; the
    default route's dst is `default`)."""
    found = []
    for entry in data:
        dst = str(entry.get("dst", ""))
        try:
            destination = ip_network("0.0.0.0/0" if dst == "default" else dst, strict=False)
            gateway = IPv4Address(entry["gateway"]) if entry.get("gateway") else None
        except ValueError:
            continue
        if isinstance(destination, IPv4Network):
            found.append(Route(destination, gateway, str(entry.get("dev", "")),
                               str(entry.get("protocol", ""))))
    return found


class SystemHost:
    """The `Host` protocol on this machine, by running `ip` and `iptables-*`."""

    async def addresses(self) -> list[InterfaceAddress]:
        out = await _run("ip", "-j", "-4", "addr", "show")
        return parse_addresses(_json(out, "ip addr"))

    async def routes(self) -> list[Route]:
        out = await _run("ip", "-j", "-4", "route", "show", "table", "main")
        return parse_routes(_json(out, "ip route"))

    async def replace_route(self, destination: IPv4Network, gateway: IPv4Address) -> None:
        await _run("ip", "route", "replace", str(destination), "via", str(gateway),
                   "proto", ROUTE_PROTOCOL)

    async def delete_route(self, route: Route) -> None:
        args = ["ip", "route", "del", str(route.destination)]
        if route.gateway is not None:
            args += ["via", str(route.gateway)]
        args += ["proto", ROUTE_PROTOCOL]
        try:
            await _run(*args)
        except HostError as err:
            if "No such process" not in str(err):  # the kernel's words for "no such route"
                raise

    async def iptables_save(self, table: str) -> str:
        return await _run("iptables-save", "-t", table)

    async def iptables_restore(self, rules: str) -> None:
        # -w: wait for the xtables lock that Docker and others take, rather than fail.
        await _run("iptables-restore", "-w", "5", "--noflush", stdin=rules)


def _json(text: str, what: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text or "[]")
    except ValueError as err:
        raise HostError(f"{what}: cannot read its JSON output: {err}") from None
    return data if isinstance(data, list) else []


async def _run(*args: str, stdin: str | None = None) -> str:
    try:
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE if stdin is not None else None,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except FileNotFoundError:
        package = "iptables" if args[0].startswith("iptables") else "iproute2"
        raise ToolMissing(f"{args[0]} is not installed (apt-get install {package})"
                          ) from None
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), COMMAND_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise HostError(f"{' '.join(args)} did not finish within {COMMAND_TIMEOUT:g}s"
                        ) from None
    if proc.returncode != 0:
        reason = err.decode(errors="replace").strip() or f"exit code {proc.returncode}"
        raise HostError(f"{' '.join(args)}: {reason}")
    return out.decode(errors="replace")
