"""`skiff cluster` as a user runs it (issue 14, part 1): create a 2-node cluster, use it
through the context it added, list it, print its config, delete it; two clusters at once.

The CLI runs in a subprocess with a client config of the test's own ($SKIFF_CONFIG), which
already holds a context of someone else's: it must survive create and delete.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from fixtures.cli import ConfigCli
from fixtures.nodes import terminal_say

from cluster.dockercli import docker
from cluster.multinode import CLUSTER_LABEL
from skiff.client.config import ClientConfig, Kubeconfig


def new_name() -> str:
    return f"skiff-t-{uuid.uuid4().hex[:6]}"


def labelled(name: str) -> dict[str, list[str]]:
    """Everything on this engine carrying the cluster's label."""
    label = f"label={CLUSTER_LABEL}={name}"
    return {"containers": docker("ps", "-aq", "--filter", label).stdout.split(),
            "volumes": docker("volume", "ls", "-q", "--filter", label).stdout.split(),
            "networks": docker("network", "ls", "-q", "--filter", label).stdout.split()}


@pytest.fixture
def skiff(tmp_path: Path, node_image: str) -> Iterator[ConfigCli]:
    config = tmp_path / "config"
    Kubeconfig().add_context("elsewhere", ClientConfig(server="127.0.0.1:1")).save(config)
    made = ConfigCli(config)
    yield made
    # Whatever a failed test left: every cluster it named (skiff-t-...) in this config.
    for context in Kubeconfig.load(config).contexts():
        if context.name.startswith("skiff-skiff-t-"):
            made("cluster", "delete", context.name.removeprefix("skiff-"), timeout=300)


def created_line(output: str) -> str:
    """The line of create's output that says it is done, with the time it took."""
    return next(line for line in output.splitlines() if line.startswith("cluster "))


def rows(text: str) -> dict[str, list[str]]:
    return {cols[0]: cols for cols in (line.split() for line in text.splitlines()[1:]) if cols}


def test_create_use_list_get_config_and_delete_a_two_node_cluster(
        skiff: ConfigCli, request: pytest.FixtureRequest, busybox_image: str) -> None:
    say = terminal_say(request.config)
    name = new_name()
    try:
        created = skiff.ok("cluster", "create", name, "--nodes", "2", timeout=600)
        say(f"  {created_line(created)}")
        context = f"skiff-{name}"
        assert f'context "{context}" added to {skiff.config} and made current' in created

        nodes = rows(skiff.ok("--context", context, "get", "nodes"))
        assert sorted(nodes) == [f"skiff-{name}-1", f"skiff-{name}-2"]
        assert all(cols[1] == "Ready" for cols in nodes.values()), nodes
        assert skiff.ok("config", "current-context").strip() == context
        assert "elsewhere" in skiff.ok("config", "get-contexts", "-o", "name").split()

        # An image of this machine's, into both nodes; a Deployment runs on it there.
        loaded = skiff.ok("cluster", "load-image", name, busybox_image, timeout=300)
        assert f"loaded {busybox_image} into 2 node(s) of {name} in" in loaded
        say(f"  {loaded.strip()}")
        missing = skiff("cluster", "load-image", name, "skiff.test/no-such:1")
        assert missing.returncode == 1
        assert "no image skiff.test/no-such:1 on this machine's engine" in missing.stderr
        deployment = yaml.safe_dump({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "loaded"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "loaded"}},
                     "template": {"metadata": {"labels": {"app": "loaded"}}, "spec": {
                         "terminationGracePeriodSeconds": 0, "containers": [{
                             "name": "app", "image": busybox_image,
                             "imagePullPolicy": "IfNotPresent",
                             "command": ["sleep", "3600"]}]}}}})
        skiff.ok("--context", context, "apply", "-f", "-", stdin=deployment)
        deadline = time.monotonic() + 120
        while True:
            pods = rows(skiff.ok("--context", context, "get", "pods", "-o", "wide"))
            if len(pods) == 2 and all(p[2] == "Running" for p in pods.values()):
                break
            assert time.monotonic() < deadline, pods
            time.sleep(1)

        assert rows(skiff.ok("cluster", "list"))[name] == [name, "2", "Running"]
        again = skiff("cluster", "create", name)
        assert again.returncode == 1
        assert f"a cluster named {name} exists already" in again.stderr
        assert len(labelled(name)["containers"]) == 2  # the refusal took nothing away

        printed = yaml.safe_load(skiff.ok("cluster", "get-config", name))
        alone = tmp_config(skiff.config.parent / "printed", printed)
        listed = rows(ConfigCli(alone).ok("get", "nodes"))
        assert sorted(listed) == sorted(nodes)
        assert all(labelled(name).values())
    finally:
        deleted = skiff("cluster", "delete", name, timeout=300)
    assert deleted.returncode == 0, deleted.stderr
    assert f"cluster {name} deleted" in deleted.stdout
    assert labelled(name) == {"containers": [], "volumes": [], "networks": []}
    remaining = Kubeconfig.load(skiff.config)
    assert [c.name for c in remaining.contexts()] == ["elsewhere"]
    assert name not in rows(skiff.ok("cluster", "list"))
    gone = skiff("cluster", "delete", name)
    assert gone.returncode == 1 and f"no cluster named {name}" in gone.stderr


def tmp_config(path: Path, document: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def test_two_clusters_at_once_do_not_collide(skiff: ConfigCli,
                                             request: pytest.FixtureRequest) -> None:
    say = terminal_say(request.config)
    names = [new_name(), new_name()]
    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(
                lambda n: skiff("cluster", "create", n, "--nodes", "1", timeout=600), names))
        for result in results:
            assert result.returncode == 0, result.stderr + result.stdout
            say(f"  {created_line(result.stdout)}")
        servers = set()
        for name in names:
            nodes = rows(skiff.ok("--context", f"skiff-{name}", "get", "nodes"))
            assert list(nodes) == [f"skiff-{name}-1"] and nodes[f"skiff-{name}-1"][1] == "Ready"
            servers.add(Kubeconfig.load(skiff.config).resolve(f"skiff-{name}").server)
        assert len(servers) == 2
        subnets = {docker("network", "inspect", "--format",
                          "{{(index .IPAM.Config 0).Subnet}}", f"skiff-{n}").stdout.strip()
                   for n in names}
        assert len(subnets) == 2
    finally:
        deleted = skiff("cluster", "delete", *names, timeout=300)
    assert deleted.returncode == 0, deleted.stderr
    for name in names:
        assert labelled(name) == {"containers": [], "volumes": [], "networks": []}


def test_a_failed_create_removes_what_it_made_and_names_the_step(skiff: ConfigCli) -> None:
    name = new_name()
    failed = skiff("cluster", "create", name, "--image", "skiff-node:no-such-tag")
    assert failed.returncode == 1
    assert f"error: cluster {name}: booting 1 node(s) from skiff-node:no-such-tag failed" \
        in failed.stderr
    assert labelled(name) == {"containers": [], "volumes": [], "networks": []}
    assert [c.name for c in Kubeconfig.load(skiff.config).contexts()] == ["elsewhere"]
