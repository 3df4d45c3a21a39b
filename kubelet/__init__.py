"""The kubelet: the node agent. It registers this host as a Node, runs the pods bound to it
on a container runtime, and reports back what is true.

- main.py: the `skiff-kubelet` command line; agent.py: the `Kubelet`, its parts built in
  order (informers, node, volumes, images, pods) and their background loops.
- node.py: the Node object (capacity, Ready) and its Lease heartbeat.
- pods/: the pods of this node: the sync loop and its workers, the runtime cache (PLEG),
  the executor that carries out a plan (start or stop), the status writer.
- plan.py: what a pod needs next, to run or to stop (pure); status.py: its status (pure).
- probes.py: liveness, readiness and startup probes and the prober that runs them.
- volumes.py: pod volumes (emptyDir, secret, configMap, hostPath) and their mounts.
- images.py: pull policy, pull secrets, pull back-off; env.py: container environments.
- runtime/: the container runtime interface (CRI-shaped), on Docker and in memory.
- server.py: the kubelet's own server (logs, exec), which the apiserver calls.
- network/: node networking: the pod network (bridge, iptables chains, routes to other
  nodes); the service proxy and DNS are to come.
"""
