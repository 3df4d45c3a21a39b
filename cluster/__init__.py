"""Local-cluster tooling: start, supervise and stop Skiff's processes on this machine.

The kernel (`skiff`) is what every daemon and client imports; this package stands beside the
CLI and above the kernel. It starts the daemons (apiserver, scheduler, controller manager,
kubelet) as processes, never by importing them, so it imports the kernel only.

    components.py  the command line of each daemon (built here only), the cluster's
                   components in start order, its settings (saved in the data dir)
    etcd.py        find an etcd binary, run a single-member etcd on loopback
    process.py     free ports, child environments, log tails, atomic writes, die-with-parent
    records.py     run/: what is recorded of each process, recognising it, stopping it
    supervisor.py  start components in order, wait until ready, restart what dies, stop
    detached.py    `skiff up -d`: the supervisor as a background process
    status.py      `skiff status`: each process's state, restarts and log
    purge.py       what a stopped cluster leaves on the host; `skiff down --purge`
    local.py       the single-machine cluster of `skiff up` / `skiff down`
    dockercli.py   the docker command with a time limit and errors as ClusterError
    nodeimage.py   the node image (Debian 12, systemd, its own dockerd, a wheelhouse),
                   built offline and tagged by its recipe
    nodehost.py    hosts made as containers: start a node from that image, wait until
                   systemd and its dockerd are up, move images in, remove it

Where the next pieces go: the coming `skiff cluster` (clusters of docker-in-docker nodes),
`skiff join` (a node joining an existing cluster) and the install helpers live here too,
one module each, called by thin CLI commands.
"""
