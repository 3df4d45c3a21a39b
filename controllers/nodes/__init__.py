"""The controllers that look after nodes, one per module: ``nodelifecycle`` (health,
taints by condition, NoExecute evictions), ``nodeipam`` (each node's podCIDR from the
cluster's pod range) and ``podgc`` (pods no kubelet will finish)."""
