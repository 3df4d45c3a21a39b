"""Removing what the pod network made on this host, and nothing else: Skiff's iptables
jumps and chains, Skiff's routes inside the cluster CIDR, and the node's pods bridge when
no running container uses it. `skiff-kubelet --cleanup-pod-network` runs it (kube-proxy's
`--cleanup`); `skiff down --purge` and the uninstall script call that.

The chains and routes belong to the host, not to one node: on a host where several
kubelets share them (tests), cleaning up removes them for all.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from kubelet.network.bridge import network_name
from kubelet.network.host import Host, HostError, ToolMissing
from kubelet.network.rules import TABLES, plan_cleanup
from kubelet.runtime import ContainerRuntime, RuntimeError_


async def cleanup_pod_network(host: Host, cluster: IPv4Network, *,
                              runtime: ContainerRuntime | None = None,
                              node_name: str = "") -> tuple[list[str], list[str]]:
    """Removes Skiff's rules and routes (and, given a runtime and a node name, that node's
    pods network). Returns (what was removed, what could not be), one line each."""
    done: list[str] = []
    problems: list[str] = []
    try:
        saves = {table: await host.iptables_save(table) for table in TABLES}
        text = plan_cleanup(saves)
        if text is not None:
            await host.iptables_restore(text)
            done.append("removed the iptables chains SKIFF-FORWARD and SKIFF-POSTROUTING "
                        "and the jumps to them")
    except ToolMissing:
        pass  # without iptables, no rules of Skiff's can exist
    except HostError as err:
        problems.append(f"iptables: {err}")
    try:
        ours = [r for r in await host.routes()
                if r.is_skiffs and r.destination.subnet_of(cluster)]
        for route in ours:
            await host.delete_route(route)
        if ours:
            done.append(f"removed {len(ours)} route(s) to other nodes' pods: "
                        + ", ".join(r.describe() for r in ours))
    except ToolMissing:
        pass
    except HostError as err:
        problems.append(f"routes: {err}")
    if runtime is not None and node_name:
        name = network_name(node_name)
        try:
            if await runtime.inspect_network(name) is not None:
                await runtime.remove_network(name)
                done.append(f"removed the pods network {name}")
        except RuntimeError_ as err:
            problems.append(err.message)
    return done, problems
