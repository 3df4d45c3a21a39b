"""The pod network's packet-filter rules, planned as iptables-restore input: pure.

Skiff owns two chains and one jump to each, and never edits any other chain:

    filter  FORWARD      -> SKIFF-FORWARD       accept what is forwarded to pods (the
                                                cluster CIDR)
    nat     POSTROUTING  -> SKIFF-POSTROUTING   marked by the service proxy: MASQUERADE;
                                                pod to pod: RETURN (the source address is
                                                kept); pods to anywhere else: MASQUERADE

Why each is where it is:

* FORWARD's policy is DROP once Docker runs, and Docker accepts only what its bridges
  send out, or replies: a connection that another node's pod (or host) opens to a pod
  here would be dropped, and traffic between two Docker bridges on one host is dropped by
  Docker's isolation chains. SKIFF-FORWARD accepts what goes to a pod address, so its
  jump must come before Docker's (DOCKER-USER, DOCKER-ISOLATION-STAGE-1). What pods send
  elsewhere is left to Docker's own rules (its bridge's `-i BRIDGE ! -o BRIDGE -j ACCEPT`,
  after DOCKER-USER and the isolation chains), so an admin's DOCKER-USER rules and the
  isolation of other Docker networks still hold for pods' outbound traffic; flannel
  accepts `-s` the pod range too, which would bypass both. Docker moves its own jumps
  back to the top whenever it creates a network or restarts, so the kubelet checks the
  order at every resync and puts its jump first again (one transaction), as kube-proxy
  keeps its own first.
* Docker masquerades everything that leaves a bridge with a rule of its own in
  POSTROUTING (`-s SUBNET ! -o BRIDGE -j MASQUERADE`), which would hide a pod's address
  from the pods of other nodes. A RETURN in a chain of Skiff's only returns to
  POSTROUTING, where that rule would still match; so the pods bridge is made with
  Docker's masquerading off (kubelet/network/bridge.py), and SKIFF-POSTROUTING does it
  instead, after its RETURN for traffic between pod addresses. Its rules name only the
  cluster CIDR, so several kubelets sharing one host (tests) write the same rules.

Every change is one `iptables-restore --noflush` transaction: it declares Skiff's chain
(which creates it, or empties it), removes every jump to it from the built-in chain,
inserts the one jump at the top and appends the chain's rules. A plan compares what
`iptables-save` shows with what it would write, in iptables-save's own spelling, and writes
nothing when all is in place.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network

FORWARD_CHAIN = "SKIFF-FORWARD"
POSTROUTING_CHAIN = "SKIFF-POSTROUTING"
JUMP_COMMENT = "skiff pod network"
# The mark the service proxy (kubelet/proxy/rules.py) sets on packets to masquerade.
SERVICE_MASQ_MARK = "0x4000/0x4000"

# table -> (the built-in chain that jumps, Skiff's chain)
CHAINS: dict[str, tuple[str, str]] = {
    "filter": ("FORWARD", FORWARD_CHAIN),
    "nat": ("POSTROUTING", POSTROUTING_CHAIN),
}
TABLES = tuple(CHAINS)


def chain_rules(cluster: IPv4Network) -> dict[str, list[str]]:
    """Skiff's chains' rules per table, spelled as iptables-save prints them."""
    c = str(cluster)
    return {
        "filter": [
            f'-A {FORWARD_CHAIN} -d {c} -m comment --comment "skiff: forwarded to pods" '
            "-j ACCEPT",
        ],
        "nat": [
            # The service proxy marks what must leave with the node's address (a pod
            # reaching a service that lands on itself, node ports, the host reaching a
            # cluster IP): first, before pod-to-pod traffic is let through unchanged.
            f"-A {POSTROUTING_CHAIN} -m comment --comment "
            f'"skiff: service traffic requiring SNAT" -m mark --mark {SERVICE_MASQ_MARK} '
            "-j MASQUERADE",
            f"-A {POSTROUTING_CHAIN} -s {c} -d {c} -m comment --comment "
            '"skiff: pod to pod keeps its source address" -j RETURN',
            f"-A {POSTROUTING_CHAIN} -s {c} ! -d {c} -m comment --comment "
            '"skiff: pods to elsewhere leave as the node" -j MASQUERADE',
        ],
    }


def jump_rule(table: str) -> str:
    builtin, chain = CHAINS[table]
    return f'-A {builtin} -m comment --comment "{JUMP_COMMENT}" -j {chain}'


@dataclass
class TableState:
    """One table as iptables-save shows it: its chains, and each chain's rules in order
    (the `-A ...` lines)."""

    chains: set[str] = field(default_factory=set)
    rules: dict[str, list[str]] = field(default_factory=dict)


def parse_save(text: str) -> TableState:
    state = TableState()
    for line in text.splitlines():
        if line.startswith(":"):
            state.chains.add(line[1:].split()[0])
        elif line.startswith("-A "):
            chain = line.split()[1]
            state.rules.setdefault(chain, []).append(line)
    return state


def jumps_to(rule: str, chain: str) -> bool:
    try:
        words = shlex.split(rule)
    except ValueError:
        return False
    return any(w in ("-j", "-g", "--jump", "--goto") and words[i + 1] == chain
               for i, w in enumerate(words[:-1]))


def _in_place(table: str, cluster: IPv4Network, state: TableState) -> bool:
    builtin, chain = CHAINS[table]
    builtin_rules = state.rules.get(builtin, [])
    jumps = [r for r in builtin_rules if jumps_to(r, chain)]
    return (chain in state.chains and builtin_rules[:1] == [jump_rule(table)]
            and len(jumps) == 1 and state.rules.get(chain, []) == chain_rules(cluster)[table])


def _rebuild(table: str, cluster: IPv4Network, state: TableState) -> list[str]:
    builtin, chain = CHAINS[table]
    lines = [f"*{table}", f":{chain} - [0:0]"]  # made if missing, emptied if not
    lines += ["-D" + r[2:] for r in state.rules.get(builtin, []) if jumps_to(r, chain)]
    lines.append(f"-I {builtin} 1" + jump_rule(table)[len(f"-A {builtin}"):])
    lines += chain_rules(cluster)[table]
    lines.append("COMMIT")
    return lines


def plan_rules(cluster: IPv4Network, saves: Mapping[str, str], *, force: bool = False
               ) -> str | None:
    """The iptables-restore input that puts Skiff's chains and jumps in place, given each
    table's iptables-save; None when they are in place already. `force`: rebuild both
    tables whatever is there (the kubelet's start)."""
    lines: list[str] = []
    for table in TABLES:
        state = parse_save(saves.get(table, ""))
        if force or not _in_place(table, cluster, state):
            lines += _rebuild(table, cluster, state)
    return "\n".join(lines) + "\n" if lines else None


def plan_cleanup(saves: Mapping[str, str]) -> str | None:
    """The iptables-restore input that removes Skiff's jumps and chains (and touches
    nothing else); None when there is nothing of Skiff's."""
    lines: list[str] = []
    for table in TABLES:
        builtin, chain = CHAINS[table]
        state = parse_save(saves.get(table, ""))
        jumps = [r for r in state.rules.get(builtin, []) if jumps_to(r, chain)]
        if chain not in state.chains and not jumps:
            continue
        lines.append(f"*{table}")
        lines += ["-D" + r[2:] for r in jumps]
        if chain in state.chains:
            lines += [f":{chain} - [0:0]", f"-X {chain}"]  # emptied, then deleted
        lines.append("COMMIT")
    return "\n".join(lines) + "\n" if lines else None


def skiff_rules(saves: Mapping[str, str]) -> list[str]:
    """Every rule line of Skiff's (its chains' rules and the jumps to them), for reports
    and tests."""
    found = []
    for table in TABLES:
        builtin, chain = CHAINS[table]
        state = parse_save(saves.get(table, ""))
        found += [r for r in state.rules.get(builtin, []) if jumps_to(r, chain)]
        found += state.rules.get(chain, [])
    return found
