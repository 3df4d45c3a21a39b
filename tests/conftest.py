"""Fixtures shared by every test tier.

The fixture modules live in tests/fixtures/. pytest's default import mode puts this
directory (tests/, which is not a package) on sys.path, so they load as `fixtures.*`.
"""

import os
import subprocess
from collections.abc import Iterator

import pytest

from clusterdns.address import LABEL

# Fixtures start daemons with a preexec_fn while the test process has gRPC calls in
# flight; gRPC's fork handlers then sometimes crash the child (SIGABRT, "epoll_wait error:
# Bad file descriptor"). The tests never use gRPC in a forked child, so turn them off.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

# pytest_skiff.plugin is also loaded by its entry point where skiff is installed; named here
# so that the plugin's tests run from a checkout too (loaded once either way: the entry
# point has the module's name).
pytest_plugins = ["fixtures.etcd", "fixtures.apiserver", "fixtures.docker", "fixtures.registry",
                  "fixtures.kubelet", "fixtures.fake_node", "fixtures.simcluster", "fixtures.cli",
                  "fixtures.nodes", "pytest_skiff.plugin"]


def pytest_collection_modifyitems(config: object, items: list[object]) -> None:
    """A module with a test that restarts this machine's dockerd (marker restarts_docker)
    runs last, in its own order: every other test is done with its containers by then."""
    last = {getattr(i, "module", None) for i in items
            if getattr(i, "get_closest_marker", lambda name: None)("restarts_docker")}
    if last:
        items[:] = ([i for i in items if getattr(i, "module", None) not in last]
                    + [i for i in items if getattr(i, "module", None) in last])


@pytest.fixture(scope="session", autouse=True)
def cluster_dns_addresses_are_cleaned_up() -> Iterator[None]:
    """Clusters started by tests put their DNS address on lo (clusterdns/address.py); each
    must remove it. What a test leaves is removed here, and the session errs to say so."""
    before = set(_held_dns_addresses())
    yield
    left = [a for a in _held_dns_addresses() if a not in before]
    for address in left:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo", "label", LABEL],
                       capture_output=True, check=False)
    assert not left, f"tests left cluster DNS addresses on lo ({LABEL}): {left}"


def _held_dns_addresses() -> list[str]:
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "lo"],
                             capture_output=True, text=True, check=False).stdout
    except OSError:  # no iproute2: nothing of ours can be there either
        return []
    return [line.split()[3].split("/")[0] for line in out.splitlines()
            if f" {LABEL}" in line]
