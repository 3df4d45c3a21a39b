"""The node's service proxy (kube-proxy's iptables mode), part of the node agent: a
Service's cluster IP and node ports lead to its ready endpoints.

    model.py      Services + Endpoints -> service ports with ready endpoints     pure
    rules.py      the proxy's chains as iptables-restore text (full, changes,     pure
                  cleanup)
    conntrack.py  stale UDP flows found (pure) and deleted (`conntrack -D`)
    proxier.py    `ServiceProxy`: informer handlers, the batched sync loop
    hairpin.py    hairpin mode on the pods bridge's ports (a pod to its own service)
    cleanup.py    removes the chains (`--cleanup-services`, `--cleanup-pod-network`)

It writes through the pod network's `Host` (kubelet/network/host.py): real iptables, or
memory for simulated nodes. See docs/decisions/0014-service-proxy.md.
"""
