"""skiff-dns: the cluster DNS server (Kubernetes DNS-Based Service Discovery)."""
