"""How long the apiserver works on one request before it answers Timeout.

The caller says how long it will wait (its gRPC deadline: the client library sends one per
verb, overridable per call); the server caps that with its --request-timeout (Kubernetes'
flag, 60 s by default), which also applies to callers that send no deadline. The server
stops a little before the caller's deadline, so that its answer (Kubernetes' Timeout,
naming etcd) arrives before the caller gives up on its own with a bare DEADLINE_EXCEEDED.
Watches are long-running and have no such budget, as in Kubernetes.
"""

from __future__ import annotations

__all__ = ["DEFAULT_REQUEST_TIMEOUT", "request_budget"]

DEFAULT_REQUEST_TIMEOUT = 60.0

# Time kept back for the answer to reach the caller: a tenth of what it allows, at most
# half a second (loopback and LAN answers take milliseconds).
_ANSWER_SHARE = 0.1
_ANSWER_MARGIN = 0.5


def request_budget(time_remaining: float | None, cap: float) -> float:
    """Seconds the server may spend on a request whose caller allows `time_remaining`
    (None: no deadline), at most `cap`."""
    if time_remaining is None:
        return cap
    margin = min(_ANSWER_MARGIN, time_remaining * _ANSWER_SHARE)
    return max(0.0, min(cap, time_remaining - margin))
