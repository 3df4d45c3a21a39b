"""Removing the service proxy's chains and the jumps to them, and nothing else
(`skiff-kubelet --cleanup-services`, and `--cleanup-pod-network`, which `skiff down
--purge` and the uninstall script run)."""

from __future__ import annotations

from kubelet.network.host import Host, HostError, ToolMissing
from kubelet.proxy.rules import TABLES, plan_cleanup


async def cleanup_services(host: Host) -> tuple[list[str], list[str]]:
    """Returns (what was removed, what could not be), one line each."""
    try:
        saves = {table: await host.iptables_save(table) for table in TABLES}
        text = plan_cleanup(saves)
        if text is None:
            return [], []
        await host.iptables_restore(text)
    except ToolMissing:
        return [], []  # without iptables, no rules of Skiff's can exist
    except HostError as err:
        return [], [f"iptables (services): {err}"]
    return ["removed the service proxy's iptables chains (SKIFF-SERVICES, SKIFF-NODEPORTS, "
            "SKIFF-MARK-MASQ, SKIFF-SVC-*, SKIFF-SEP-*) and the jumps to them"], []
