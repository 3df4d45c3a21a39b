"""Skiff's version, and which agents a server of this version takes (version skew)."""

from __future__ import annotations

import re

__all__ = ["AGENT_MINORS_BEHIND", "VERSION", "skew_problem"]

VERSION = "0.1.0"  # pyproject.toml's; tests/unit/kernel/test_version.py keeps them equal
# An agent may be this many minor versions older than the apiserver, never newer
# (Kubernetes' kubelet skew policy allows three; a young project promises less).
AGENT_MINORS_BEHIND = 2

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def _parse(version: str) -> tuple[int, int, int] | None:
    match = _SEMVER.match(version.strip())
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def skew_problem(agent: str, server: str = VERSION) -> str | None:
    """Why an agent of version `agent` may not join a server of version `server`, or None."""
    a, s = _parse(agent), _parse(server)
    if a is None:
        return f"the agent's version {agent!r} is not a version (expected MAJOR.MINOR.PATCH)"
    assert s is not None
    if a[:2] > s[:2]:
        return (f"the agent ({agent}) is newer than the apiserver ({server}): upgrade the "
                f"server first, or install the agent of version {server}")
    if a[0] != s[0] or s[1] - a[1] > AGENT_MINORS_BEHIND:
        oldest = f"{s[0]}.{max(0, s[1] - AGENT_MINORS_BEHIND)}"
        return (f"the agent ({agent}) is older than the apiserver ({server}) supports "
                f"(agents {oldest}.0 to {server}): upgrade the agent")
    return None
