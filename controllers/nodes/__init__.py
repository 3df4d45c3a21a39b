"""The controllers that look after nodes, one per module: ``nodelifecycle`` (health,
taints by condition, NoExecute evictions) and ``podgc`` (pods no kubelet will finish)."""
