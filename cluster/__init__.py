"""Local-cluster tooling: start, supervise and stop Skiff's processes on this machine.

The kernel (`skiff`) is what every daemon and client imports; this package stands beside the
CLI and above the kernel. It starts the daemons (apiserver, scheduler, controller manager,
kubelet) as processes, never by importing them, so it imports the kernel only.

    components.py  the command line of each daemon (built here only) and the cluster's
                   components in start order
    etcd.py        find an etcd binary, run a single-member etcd on loopback
    process.py     free ports, child environments, log tails, die-with-parent
    supervisor.py  start components in order, wait until ready, record and stop them
    local.py       the single-machine cluster of `skiff up` / `skiff down`

Where the next pieces go: the coming `skiff cluster` (clusters of docker-in-docker nodes),
`skiff join` (a node joining an existing cluster) and the install helpers live here too,
one module each, called by thin CLI commands.
"""
