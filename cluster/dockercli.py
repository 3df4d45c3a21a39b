"""The docker command, for the tooling that makes node containers and their image.

`cluster` may not import the Docker SDK (the import contracts keep it to the kubelet's
runtime), and what it does with Docker is what a person would type anyway: build an image,
run a container, exec in it. Every call has a time limit and turns a failure into a
ClusterError whose message is docker's own.
"""

from __future__ import annotations

import subprocess

from cluster.errors import ClusterError

__all__ = ["docker", "docker_ok"]


def docker(*args: str, input: str | None = None, timeout: float = 120.0,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs `docker ARGS...`; with `check`, a non-zero exit raises ClusterError with docker's
    error output. A missing docker command or a call over `timeout` seconds always raises."""
    try:
        result = subprocess.run(["docker", *args], input=input, capture_output=True, text=True,
                                timeout=timeout)
    except FileNotFoundError:
        raise ClusterError("the docker command is not installed (apt-get install docker.io)"
                           ) from None
    except subprocess.TimeoutExpired:
        raise ClusterError(f"docker {' '.join(args)} did not finish within {timeout:g} s"
                           ) from None
    if check and result.returncode != 0:
        raise ClusterError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result


def docker_ok(*args: str, timeout: float = 120.0) -> bool:
    """True when `docker ARGS...` exits 0 (an existence check: inspect, info)."""
    return docker(*args, timeout=timeout, check=False).returncode == 0
