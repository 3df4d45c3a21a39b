"""The error of the local-cluster tooling: its message says what went wrong and what to do."""


class ClusterError(RuntimeError):
    """A cluster could not be started or stopped; the message is one clear line (plus, when
    a component died, the tail of its log)."""
