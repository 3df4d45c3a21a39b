"""Node networking, to come: the pod network (each pod's address and its routes between
nodes), the service proxy (a Service's virtual IP and node ports to its endpoints), and
the cluster DNS (names of Services and pods). The next issues fill this package; the
pod workers (kubelet/pods/) will ask it for a sandbox's network.
"""
