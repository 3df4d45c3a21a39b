"""`FakeHost`: the `Host` protocol in memory, for unit tests and for simulated nodes
(`--fake-runtime` kubelets), which must never change the routes or rules of the machine
they run on.

It keeps addresses and routes as lists, and each iptables table as chains of rule lines,
changed by a small interpreter of iptables-restore input (`*table`, `:CHAIN`, `-A`, `-I`,
`-D`, `-X`, `COMMIT`) that fails the whole transaction, as the real one does, when a
rule to delete is not there.

Knobs: `addresses`, `routes` (lists, changeable at any time), `fail` (method name ->
message: that call raises HostError), `calls` (method names, oldest first).
"""

from __future__ import annotations

import copy
import shlex
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from kubelet.network.host import ROUTE_PROTOCOL, HostError, InterfaceAddress, Route

_BUILTIN = {"filter": ["INPUT", "FORWARD", "OUTPUT"],
            "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]}


class FakeHost:
    def __init__(self, addresses: list[InterfaceAddress] | None = None,
                 routes: list[Route] | None = None) -> None:
        self.addresses_: list[InterfaceAddress] = list(addresses if addresses is not None
                                                       else [address("lo", "127.0.0.1/8")])
        self.routes_: list[Route] = list(routes or [])
        # table -> chain -> rule lines ("-A CHAIN ..."), chains in creation order
        self.tables: dict[str, dict[str, list[str]]] = {
            t: {c: [] for c in chains} for t, chains in _BUILTIN.items()}
        self.fail: dict[str, str] = {}
        self.calls: list[str] = []

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        if method in self.fail:
            raise HostError(self.fail[method])

    async def addresses(self) -> list[InterfaceAddress]:
        self._enter("addresses")
        return list(self.addresses_)

    async def routes(self) -> list[Route]:
        self._enter("routes")
        return list(self.routes_)

    async def replace_route(self, destination: IPv4Network, gateway: IPv4Address) -> None:
        self._enter("replace_route")
        device = next((a.interface for a in self.addresses_ if gateway in a.network), "")
        if not device:
            raise HostError(f"ip route replace {destination} via {gateway}: Nexthop has "
                            "invalid gateway")
        self.routes_ = [r for r in self.routes_ if r.destination != destination]
        self.routes_.append(Route(destination, gateway, device, ROUTE_PROTOCOL))

    async def delete_route(self, route: Route) -> None:
        self._enter("delete_route")
        self.routes_ = [r for r in self.routes_
                        if not (r.destination == route.destination and r.is_skiffs)]

    async def iptables_save(self, table: str) -> str:
        self._enter("iptables_save")
        chains = self.tables.get(table, {})
        lines = [f"*{table}"]
        lines += [f":{c} {'ACCEPT' if c in _BUILTIN[table] else '-'} [0:0]" for c in chains]
        lines += [rule for rules in chains.values() for rule in rules]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    async def iptables_restore(self, rules: str) -> None:
        self._enter("iptables_restore")
        tables = copy.deepcopy(self.tables)
        table: dict[str, list[str]] = {}
        for number, line in enumerate(rules.splitlines(), 1):
            if not line.strip() or line.startswith("#") or line == "COMMIT":
                continue
            if line.startswith("*"):
                table = tables.setdefault(line[1:], {})
                continue
            if line.startswith(":"):
                table[line[1:].split()[0]] = []  # made, or emptied
                continue
            words = shlex.split(line)
            op, chain = words[0], words[1]
            if chain not in table:
                raise HostError(f"iptables-restore: line {number} failed: no chain {chain}")
            if op == "-A":
                table[chain].append(line)
            elif op == "-I":
                at = int(words[2]) - 1 if len(words) > 2 and words[2].isdigit() else 0
                rest = words[3:] if len(words) > 2 and words[2].isdigit() else words[2:]
                table[chain].insert(at, _spell("-A", chain, rest))
            elif op == "-D":
                wanted = _spell("-A", chain, words[2:])
                if wanted not in table[chain]:
                    raise HostError(f"iptables-restore: line {number} failed: Bad rule "
                                    "(does a matching rule exist in that chain?)")
                table[chain].remove(wanted)
            elif op == "-X":
                del table[chain]
            else:
                raise HostError(f"iptables-restore: line {number}: fake cannot do {op}")
        self.tables = tables


def _spell(op: str, chain: str, words: list[str]) -> str:
    # iptables-save's spelling: only words with spaces are quoted, in double quotes.
    return " ".join([op, chain, *(f'"{w}"' if " " in w else w for w in words)])


def address(interface: str, cidr: str) -> InterfaceAddress:
    """`address("eth0", "192.0.2.2/24")`."""
    return InterfaceAddress(interface, IPv4Interface(cidr))
