"""Node networking. The pod network is here (docs/decisions/0012-pod-network.md): each
node's pods on a bridge with its podCIDR (bridge.py), Skiff's iptables chains (rules.py),
host routes to the other nodes' podCIDRs (routes.py), checked against the host's own
networks (cidrs.py), kept converged by `PodNetwork` (manager.py) through the runtime
interface and the host's `ip`/`iptables` (host.py; fake.py in memory), and removed by
cleanup.py. The pod workers ask it which network a sandbox joins (state.py).

The service proxy (a Service's virtual IP and node ports to its endpoints) is
kubelet/proxy/; it marks what SKIFF-POSTROUTING masquerades. To come: the cluster DNS.
"""
