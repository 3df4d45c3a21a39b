"""The pytest plugin: options, the `skiff_cluster` and `skiff_namespace` fixtures, and
what a failing test's report gets.

Loaded by every pytest run in an environment where skiff is installed (entry point
`pytest11`), so it does nothing until a test asks for its fixtures, and imports nothing
heavy (no gRPC, no Docker calls) before then. docs/testing.md shows it in use.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_skiff.session import SkiffCluster

_CLUSTER = pytest.StashKey["SkiffCluster"]()
_NAMESPACE_PREFIX = "test-"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("skiff", "Skiff clusters for tests (the skiff_cluster fixture)")
    group.addoption("--skiff-nodes", type=int, default=None, metavar="N",
                    help="nodes of the cluster the session makes (default: ini skiff_nodes, "
                         "else 1)")
    group.addoption("--skiff-cluster", default=None, metavar="NAME",
                    help="use the running cluster NAME (see skiff cluster list) instead of "
                         "making one; it is never deleted")
    group.addoption("--skiff-keep", action="store_true", default=False,
                    help="keep the cluster the session made (and the tests' namespaces), "
                         "and print how to reach and delete it")
    group.addoption("--skiff-image", default=None, metavar="IMAGE",
                    help="node image for the cluster (default: this installation's, built "
                         "when missing)")
    parser.addini("skiff_nodes", "nodes of the cluster the session makes", default="1")
    parser.addini("skiff_name_prefix", "prefix of the names of clusters the session makes "
                  "(PREFIX-xxxxxx)", default="pytest")


@pytest.fixture(scope="session")
def skiff_cluster(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[SkiffCluster]:
    """A running Skiff cluster for the whole session (made on first use, deleted at the
    end), with a client and helpers: apply, get, list, delete, wait_for, logs, events,
    load_image, run (the skiff CLI)."""
    # The client uses gRPC, whose fork handlers can crash a child forked while calls are in
    # flight (Docker and the CLI run as subprocesses); nothing here uses gRPC after a fork.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
    from pytest_skiff import lifecycle
    from pytest_skiff.terminal import terminal_say

    config = request.config
    nodes = config.getoption("skiff_nodes")
    options = lifecycle.Options(
        nodes=int(nodes if nodes is not None else config.getini("skiff_nodes")),
        reuse=config.getoption("skiff_cluster"),
        keep=bool(config.getoption("skiff_keep")),
        image=config.getoption("skiff_image"),
        prefix=str(config.getini("skiff_name_prefix")))
    say = terminal_say(config)
    try:
        cluster = lifecycle.open_cluster(options, tmp_path_factory.mktemp("skiff"), say)
    except lifecycle.Unavailable as err:
        pytest.skip(str(err))
    config.stash[_CLUSTER] = cluster
    try:
        yield cluster
    finally:
        del config.stash[_CLUSTER]
        lifecycle.close_cluster(cluster, keep=options.keep, say=say)


@pytest.fixture
def skiff_namespace(skiff_cluster: SkiffCluster, request: pytest.FixtureRequest
                    ) -> Iterator[str]:
    """A fresh namespace for one test (deleted afterwards, with everything in it, unless
    --skiff-keep): tests sharing the session's cluster stay out of each other's way."""
    name = namespace_name(request.node.name)
    skiff_cluster.create_namespace(name)
    yield name
    if not request.config.getoption("skiff_keep"):
        skiff_cluster.delete("Namespace", name)


def namespace_name(test_name: str) -> str:
    """`test-<the test's name as a DNS label>-<random>`, at most 63 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower().removeprefix("test_")).strip("-")
    return f"{_NAMESPACE_PREFIX}{slug[:48].rstrip('-')}-{uuid.uuid4().hex[:6]}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    cluster = item.config.stash.get(_CLUSTER, None)
    if cluster is not None:
        cluster.touched.namespaces.clear()  # each test's report looks at its own


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # A failing setup counts: a fixture that deploys the app and waits for it is common.
    if report.when in ("setup", "call") and report.failed and "skiff_cluster" in getattr(
            item, "fixturenames", ()):
        cluster = item.config.stash.get(_CLUSTER, None)
        if cluster is not None:
            from pytest_skiff.report import failure_sections

            namespaces = cluster.touched.namespaces or ["default"]
            try:
                report.sections.extend(failure_sections(cluster, namespaces))
            except Exception as err:  # the test's own failure comes first
                report.sections.append(("skiff", f"(events and logs not gathered: {err!r})"))
    return report
