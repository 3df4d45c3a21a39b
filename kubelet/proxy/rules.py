"""The service proxy's iptables rules, planned as iptables-restore input: pure.

The shape of kube-proxy's iptables mode (pkg/proxy/iptables/proxier.go), with Skiff's
names:

    nat     PREROUTING, OUTPUT  -> SKIFF-SERVICES
            SKIFF-SERVICES      -d CLUSTER_IP -p P --dport PORT        -> SKIFF-SVC-<hash>
                                (last) dst-type LOCAL, not 127/8       -> SKIFF-NODEPORTS
            SKIFF-NODEPORTS     -p P --dport NODE_PORT -> SKIFF-MARK-MASQ, SKIFF-SVC-<hash>
            SKIFF-SVC-<hash>    not from a pod: SKIFF-MARK-MASQ; then [affinity: `-m recent
                                --rcheck`]; endpoint i of n with probability 1/(n-i)
                                                                       -> SKIFF-SEP-<hash>
            SKIFF-SEP-<hash>    from the endpoint itself (hairpin): SKIFF-MARK-MASQ;
                                [affinity: `-m recent --set`] DNAT --to-destination IP:PORT
            SKIFF-MARK-MASQ     MARK 0x4000: SKIFF-POSTROUTING (the pod network's chain,
                                kubelet/network/rules.py) masquerades marked packets first
    filter  INPUT, FORWARD, OUTPUT (NEW connections) -> SKIFF-SERVICES
            SKIFF-SERVICES      a service port without endpoints: REJECT (its cluster IP
                                unless the node holds it, and its node port on the node's
                                addresses); then any other address of the service range
                                that is not local: REJECT

Chain names are kube-proxy's: the first 16 characters of the base32 of a sha256 of
`ns/name:port` + the protocol (and + `IP:PORT` for an endpoint), so a rule's chain stays
the same as long as what it serves does.

Writing: a full sync reads iptables-save, declares (creates, or empties) and fills every
chain of the proxy's that differs from what it should be (every one at the kubelet's
start), deletes the chains of the proxy's that are no longer wanted (stale SKIFF-SVC-/
SKIFF-SEP- chains from before a restart included), and puts the jumps in place; between
full syncs, a change set writes only the chains whose rules changed since the last write
and deletes those that went. Either is one `iptables-restore
--noflush`: the kernel applies all of it or none. Built-in chains get only the jumps to
SKIFF-SERVICES, placed after Skiff's other jumps (the pod network's, which insists on
being first) and before anyone else's (Docker's); no other chain is ever touched.

Localhost node ports (kube-proxy's route_localnet) are not served: they need
`route_localnet=1`, which lets 127/8 traffic leave the host (CVE-2020-8558). A node port
answers on every other address of the node.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from kubelet.network.rules import SERVICE_MASQ_MARK, parse_save
from kubelet.proxy.model import Endpoint, ServicePortInfo

SERVICES_CHAIN = "SKIFF-SERVICES"
NODEPORTS_CHAIN = "SKIFF-NODEPORTS"
MARK_MASQ_CHAIN = "SKIFF-MARK-MASQ"
SVC_PREFIX = "SKIFF-SVC-"
SEP_PREFIX = "SKIFF-SEP-"
MASQ_MARK = SERVICE_MASQ_MARK  # kube-proxy's bit, 0x4000
JUMP_COMMENT = "skiff service portals"
TABLES = ("nat", "filter")

# The proxy's fixed chains per table (besides SKIFF-SVC-*/SKIFF-SEP-* in nat).
FIXED_CHAINS: dict[str, tuple[str, ...]] = {
    "nat": (SERVICES_CHAIN, NODEPORTS_CHAIN, MARK_MASQ_CHAIN),
    "filter": (SERVICES_CHAIN,),
}

# table -> built-in chains that jump to SKIFF-SERVICES, with the jump's own matches.
JUMPS: dict[str, tuple[tuple[str, str], ...]] = {
    "nat": (("PREROUTING", ""), ("OUTPUT", "")),
    "filter": (("INPUT", "-m conntrack --ctstate NEW "),
               ("FORWARD", "-m conntrack --ctstate NEW "),
               ("OUTPUT", "-m conntrack --ctstate NEW ")),
}

Chains = dict[str, list[str]]  # chain -> its rule lines, in order


@dataclass
class Ruleset:
    """The whole desired content of the proxy's chains, per table."""

    tables: dict[str, Chains] = field(default_factory=lambda: {t: {} for t in TABLES})


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def service_chain(p: ServicePortInfo) -> str:
    return SVC_PREFIX + _hash(p.key + p.protocol.lower())


def endpoint_chain(p: ServicePortInfo, ep: Endpoint) -> str:
    return SEP_PREFIX + _hash(p.key + p.protocol.lower() + str(ep))


def probability(n: int) -> str:
    """1/n as iptables stores it (a u32 fraction of 2^31) and iptables-save prints it."""
    stored = int(0x80000000 / n + 0.5)
    return f"{stored / 0x80000000:.11f}"


def is_owned(table: str, chain: str) -> bool:
    return chain in FIXED_CHAINS.get(table, ()) or (
        table == "nat" and chain.startswith((SVC_PREFIX, SEP_PREFIX)))


def _q(text: str) -> str:
    # iptables-save (nf_tables) quotes every comment; legacy only those with spaces, so
    # there a resync rewrites the chains whose comments have none (a cost, not a fault).
    return f'"{text}"'


@dataclass(frozen=True)
class PortRules:
    """What one service port adds: lines of the dispatch chains, and chains of its own
    (its endpoints' first, then its own)."""

    services: tuple[str, ...] = ()
    nodeports: tuple[str, ...] = ()
    rejects: tuple[str, ...] = ()
    chains: tuple[tuple[str, tuple[str, ...]], ...] = ()


@functools.lru_cache(maxsize=16384)
def port_rules(p: ServicePortInfo, cluster_cidr: IPv4Network) -> PortRules:
    """One service port's rules; cached, since most ports are unchanged from one sync to
    the next (a sync at 1,000 services builds only what changed)."""
    proto = p.protocol.lower()
    svc = service_chain(p)
    dport = f"-m {proto} --dport {p.port}"
    if not p.endpoints:
        # Not when this node holds the address itself: then what listens there serves it
        # (skiff-dns on the cluster DNS address, the kube-dns Service's, on every node).
        rejects = [f"-A {SERVICES_CHAIN} -d {p.cluster_ip}/32 -p {proto} -m comment "
                   f'--comment "{p.key} has no endpoints" -m addrtype ! --dst-type LOCAL '
                   f"{dport} -j REJECT --reject-with icmp-port-unreachable"]
        if p.node_port:
            rejects.append(
                f"-A {SERVICES_CHAIN} -p {proto} -m comment --comment "
                f'"{p.key} has no endpoints" -m addrtype --dst-type LOCAL '
                f"-m {proto} --dport {p.node_port} -j REJECT --reject-with "
                "icmp-port-unreachable")
        return PortRules(rejects=tuple(rejects))
    services = (f"-A {SERVICES_CHAIN} -d {p.cluster_ip}/32 -p {proto} -m comment --comment "
                f'"{p.key} cluster IP" {dport} -j {svc}',)
    nodeports: tuple[str, ...] = ()
    if p.node_port:
        nodeports = (f"-A {NODEPORTS_CHAIN} -p {proto} -m comment --comment {_q(p.key)} "
                     f"-m {proto} --dport {p.node_port} -j {MARK_MASQ_CHAIN}",
                     f"-A {NODEPORTS_CHAIN} -p {proto} -m comment --comment {_q(p.key)} "
                     f"-m {proto} --dport {p.node_port} -j {svc}")
    rules = [f"-A {svc} ! -s {cluster_cidr} -d {p.cluster_ip}/32 -p {proto} "
             f'-m comment --comment "{p.key} cluster IP" {dport} -j {MARK_MASQ_CHAIN}']
    seps = [(ep, endpoint_chain(p, ep)) for ep in p.endpoints]
    if p.affinity_timeout:
        rules += [f'-A {svc} -m comment --comment "{p.key} -> {ep}" -m recent --rcheck '
                  f"--seconds {p.affinity_timeout} --reap --name {sep} "
                  f"--mask 255.255.255.255 --rsource -j {sep}" for ep, sep in seps]
    chains: list[tuple[str, tuple[str, ...]]] = []
    n = len(seps)
    for i, (ep, sep) in enumerate(seps):
        chance = (f"-m statistic --mode random --probability {probability(n - i)} "
                  if i < n - 1 else "")
        rules.append(f'-A {svc} -m comment --comment "{p.key} -> {ep}" {chance}-j {sep}')
        recent = (f"-m recent --set --name {sep} --mask 255.255.255.255 --rsource "
                  if p.affinity_timeout else "")
        chains.append((sep, (
            f"-A {sep} -s {ep.ip}/32 -m comment --comment {_q(p.key)} -j {MARK_MASQ_CHAIN}",
            f"-A {sep} -p {proto} -m comment --comment {_q(p.key)} {recent}"
            f"-m {proto} -j DNAT --to-destination {ep}")))
    chains.append((svc, tuple(rules)))
    return PortRules(services, nodeports, (), tuple(chains))


def build(ports: list[ServicePortInfo], *, cluster_cidr: IPv4Network,
          service_cidr: IPv4Network | None) -> Ruleset:
    """The proxy's chains for these service ports."""
    rs = Ruleset()
    nat, flt = rs.tables["nat"], rs.tables["filter"]
    services: list[str] = []
    nodeports: list[str] = []
    rejects: list[str] = []
    nat[MARK_MASQ_CHAIN] = [f"-A {MARK_MASQ_CHAIN} -j MARK --set-xmark {MASQ_MARK}"]
    for p in ports:
        made = port_rules(p, cluster_cidr)
        services += made.services
        nodeports += made.nodeports
        rejects += made.rejects
        for chain, lines in made.chains:
            nat[chain] = list(lines)
    services.append(
        f'-A {SERVICES_CHAIN} ! -d 127.0.0.0/8 -m comment --comment "skiff service '
        'nodeports; NOTE: this must be the last rule in this chain" -m addrtype '
        f"--dst-type LOCAL -j {NODEPORTS_CHAIN}")
    if service_cidr is not None:
        rejects.append(
            f"-A {SERVICES_CHAIN} -d {service_cidr} -m comment --comment "
            '"skiff: no service at this address and port" -m addrtype ! --dst-type LOCAL '
            "-j REJECT --reject-with icmp-port-unreachable")
    nat[SERVICES_CHAIN] = services
    nat[NODEPORTS_CHAIN] = nodeports
    flt[SERVICES_CHAIN] = rejects
    return rs


# ---- the jumps from built-in chains ----

def jump_rule(table: str, builtin: str, matches: str) -> str:
    return (f'-A {builtin} {matches}-m comment --comment "{JUMP_COMMENT}" '
            f"-j {SERVICES_CHAIN}")


def _jump_target(rule: str) -> str:
    try:
        words = shlex.split(rule)
    except ValueError:
        return ""
    for i, w in enumerate(words[:-1]):
        if w in ("-j", "-g", "--jump", "--goto"):
            return words[i + 1]
    return ""


def _fix_jumps(table: str, builtin_rules: Mapping[str, list[str]]) -> list[str]:
    """The lines that put each jump to SKIFF-SERVICES in place: exactly one, preceded
    only by jumps to Skiff's other chains; nothing when that holds already."""
    lines: list[str] = []
    for builtin, matches in JUMPS[table]:
        wanted = jump_rule(table, builtin, matches)
        rules = builtin_rules.get(builtin, [])
        ours = [r for r in rules if _jump_target(r) == SERVICES_CHAIN]
        others = [r for r in rules if _jump_target(r) != SERVICES_CHAIN]
        lead = 0
        while lead < len(others) and _jump_target(others[lead]).startswith("SKIFF-"):
            lead += 1
        if ours == [wanted] and all(_jump_target(r).startswith("SKIFF-")
                                    for r in rules[:rules.index(wanted)]):
            continue
        lines += ["-D" + r[2:] for r in ours]
        lines.append(f"-I {builtin} {lead + 1}" + wanted[len(f"-A {builtin}"):])
    return lines


# ---- restore input ----

def plan_full(desired: Ruleset, saves: Mapping[str, str], *, force: bool = False
              ) -> str | None:
    """Against what iptables-save shows: every chain of the proxy's that differs from what
    it should be (every one, with `force`: the kubelet's start) declared and filled, the
    stale ones deleted, the jumps put in place; None when all is in place. The rules are
    spelled as iptables-save prints them, so that a resync of an unchanged host writes
    nothing."""
    out: list[str] = []
    for table in TABLES:
        state = parse_save(saves.get(table, ""))
        chains = desired.tables[table]
        write = [c for c, rules in chains.items()
                 if force or c not in state.chains or state.rules.get(c, []) != rules]
        stale = sorted(c for c in state.chains if is_owned(table, c) and c not in chains)
        jumps = _fix_jumps(table, state.rules)
        if write or stale or jumps:
            out += _table_block(table, chains, write, stale, jumps)
    return "\n".join(out) + "\n" if out else None


def plan_changes(desired: Ruleset, written: Ruleset) -> str | None:
    """Only what changed since `written`; None when nothing did."""
    out: list[str] = []
    for table in TABLES:
        want, have = desired.tables[table], written.tables[table]
        changed = [c for c, rules in want.items() if have.get(c) != rules]
        gone = [c for c in have if c not in want]
        if changed or gone:
            out += _table_block(table, want, changed, gone)
    return "\n".join(out) + "\n" if out else None


def _table_block(table: str, chains: Chains, write: list[str], delete: list[str],
                 jumps: list[str] | None = None) -> list[str]:
    """One table's part of an iptables-restore --noflush input: the chains of `write`
    declared (emptied) and filled from `chains`, those of `delete` emptied and deleted,
    then `jumps`."""
    return [f"*{table}",
            *(f":{c} - [0:0]" for c in [*write, *delete]),
            *(rule for c in write for rule in chains[c]),
            *(f"-X {c}" for c in delete),
            *(jumps or []),
            "COMMIT"]


def plan_cleanup(saves: Mapping[str, str]) -> str | None:
    """Removes the jumps to the proxy's chains and the chains; None when there are none."""
    out: list[str] = []
    for table in TABLES:
        state = parse_save(saves.get(table, ""))
        owned = sorted(c for c in state.chains if is_owned(table, c))
        jumps = [r for builtin, _ in JUMPS[table] for r in state.rules.get(builtin, [])
                 if _jump_target(r) == SERVICES_CHAIN]
        if not owned and not jumps:
            continue
        out.append(f"*{table}")
        out += ["-D" + r[2:] for r in jumps]
        out += [f":{c} - [0:0]" for c in owned]
        out += [f"-X {c}" for c in owned]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else None


def proxy_rules(saves: Mapping[str, str]) -> list[str]:
    """Every rule line of the proxy's (its chains' rules and the jumps), for tests."""
    found: list[str] = []
    for table in TABLES:
        state = parse_save(saves.get(table, ""))
        for chain, rules in state.rules.items():
            if is_owned(table, chain):
                found += rules
            else:
                found += [r for r in rules if _jump_target(r) == SERVICES_CHAIN]
    return found
