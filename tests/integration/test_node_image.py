"""The node image and node containers, as the install scripts and `skiff cluster` meet them:
built offline (or reused), booted with systemd as PID 1 and a dockerd of their own, nested
containers from images moved in without a registry, an agent-like unit that survives a
SIGKILL of its main process with its children, Python packages and Skiff itself installed
from the image's wheelhouse with no index, and a removal that leaves nothing behind."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.nodes import Nodes, terminal_say

from cluster.dockercli import docker, docker_ok
from cluster.errors import ClusterError
from cluster.nodehost import (
    NODE_LABEL,
    Node,
    load_image,
    node_exec,
    remove_node,
    run_node,
    volume_name,
    wait_ready,
)
from cluster.nodeimage import (
    LABEL_NODE_IMAGE,
    LABEL_RECIPE,
    LABEL_VERSION,
    WHEELHOUSE,
    build_image,
    project_recipe,
)

REPO = Path(__file__).resolve().parents[2]
PREFIX = "skiff-nodeimg-"


@pytest.fixture(scope="module")
def node(node_image: str, node_network: str, request: pytest.FixtureRequest) -> Iterator[Node]:
    """One node for the tests of this module that only look or add."""
    with Nodes(node_image, node_network, terminal_say(request.config)) as made:
        yield made.new(PREFIX)


def sh(node: Node, script: str, *, input: str | None = None, timeout: float = 120.0) -> str:
    return node_exec(node.name, "sh", "-c", script, input=input, timeout=timeout).stdout


def test_a_second_build_of_the_same_recipe_reuses_the_image(node_image: str) -> None:
    recipe = project_recipe()
    result = build_image(recipe, say=lambda *a, **k: None)
    assert (result.tag, result.built) == (node_image, False)
    assert node_image.startswith(f"skiff-node:{recipe.version}-{recipe.digest[:12]}")
    labels = docker("image", "inspect", "--format", "{{json .Config.Labels}}", node_image).stdout
    assert f'"{LABEL_NODE_IMAGE}":"1"' in labels
    assert f'"{LABEL_RECIPE}":"{recipe.digest}"' in labels
    assert f'"{LABEL_VERSION}":"{recipe.version}"' in labels


def test_systemd_boots_as_pid_1_with_no_failed_units(node: Node) -> None:
    assert node.system_state == "running"
    assert sh(node, "cat /proc/1/comm").strip() == "systemd"
    assert sh(node, "systemctl is-system-running").strip() == "running"
    assert sh(node, "systemctl --failed --no-legend --plain").strip() == ""
    assert sh(node, "systemctl is-enabled docker.service").strip() == "enabled"
    assert sh(node, "hostname").strip() == node.name


def test_the_image_carries_no_package_lists_or_caches(node: Node) -> None:
    leftovers = sh(node, "find /var/lib/apt/lists /var/cache/apt -type f ! -name lock")
    assert leftovers.strip() == ""


def test_the_nodes_own_dockerd_answers_on_overlay2(node: Node) -> None:
    assert node.storage_driver == "overlay2"
    info = sh(node, "docker info --format '{{.Driver}} {{.ServerVersion}}'").split()
    assert info[0] == "overlay2" and info[1]


def test_a_nested_container_runs_an_image_moved_in_without_a_registry(
        node: Node, busybox_image: str) -> None:
    load_image(node.name, busybox_image)
    out = sh(node, f"docker run --rm {busybox_image} sh -c 'echo nested on $(hostname)'")
    assert out.startswith("nested on ")
    # Its cgroup is inside the node's (the node image's cgroup parent), so it counts
    # against the node and goes with it.
    cgroups = sh(node, f"docker run --rm {busybox_image} cat /proc/self/cgroup")
    memory = next(line for line in cgroups.splitlines() if ":memory:" in line)
    assert node.container_id in memory


AGENT_UNIT = """\
[Unit]
Description=an agent-like service (Skiff's node image test)

[Service]
ExecStart=/bin/sh -c 'sleep 3000 & exec sleep 3001'
KillMode=process
Delegate=yes
Restart=always
RestartSec=0.2
"""


def test_a_killmode_process_unit_restarts_after_sigkill_and_keeps_its_children(
        node: Node) -> None:
    unit = "skiff-nodeimg-agent.service"
    sh(node, f"cat >/etc/systemd/system/{unit} && systemctl daemon-reload "
             f"&& systemctl start {unit}", input=AGENT_UNIT)
    main = sh(node, f"systemctl show --property MainPID --value {unit}").strip()
    child = sh(node, f"pgrep --parent {main} --exact sleep").strip()
    assert main != "0" and child

    sh(node, f"kill -KILL {main}")
    deadline = time.monotonic() + 15
    while True:
        show = sh(node, f"systemctl show --property NRestarts,MainPID,ActiveState {unit}")
        state = dict(line.split("=", 1) for line in show.split())
        if state["NRestarts"] == "1" and state["ActiveState"] == "active" \
                and state["MainPID"] not in ("0", main):
            break
        assert time.monotonic() < deadline, f"not restarted: {state}"
        time.sleep(0.2)
    # The child of the killed main process lives on: an agent restart leaves pods running.
    assert sh(node, f"kill -0 {child} && echo alive").strip() == "alive"
    sh(node, f"systemctl kill --signal KILL {unit}; systemctl stop {unit}")


def test_the_wheelhouse_installs_grpcio_and_protobuf_with_no_index(node: Node) -> None:
    out = sh(node, "python3 -m venv /tmp/wheelhouse-venv && /tmp/wheelhouse-venv/bin/pip "
                   f"install --quiet --no-index --find-links {WHEELHOUSE} grpcio protobuf && "
                   "/tmp/wheelhouse-venv/bin/python -c "
                   "'import grpc, google.protobuf; print(grpc.__version__)'", timeout=300)
    assert out.strip()


def test_skiff_installs_from_a_checkout_with_no_index(node: Node) -> None:
    # What the install scripts will do on a host: the checkout copied in, installed with
    # its dependencies (and its build backend) from the wheelhouse alone.
    source = subprocess.run(
        ["tar", "-C", str(REPO), "-c", "--exclude=./.git", "--exclude=./.venv",
         "--exclude=./tests", "--exclude=./bench", "--exclude=__pycache__",
         "--exclude=*.egg-info", "--exclude=./build", "."],
        check=True, capture_output=True).stdout
    copy = subprocess.run(["docker", "exec", "-i", node.name, "sh", "-c",
                           "mkdir -p /tmp/skiff-src && tar -x -C /tmp/skiff-src"],
                          input=source, capture_output=True)
    assert copy.returncode == 0, copy.stderr
    out = sh(node, "python3 -m venv /opt/skiff/venv && /opt/skiff/venv/bin/pip install "
                   f"--quiet --no-index --find-links {WHEELHOUSE} /tmp/skiff-src && "
                   "/opt/skiff/venv/bin/skiff version --client", timeout=600)
    assert project_recipe().version in out


def test_a_node_comes_back_after_a_docker_restart_and_remove_node_leaves_nothing(
        nodes: Nodes, busybox_image: str) -> None:
    made = nodes.new(PREFIX)
    labels = docker("inspect", "--format", "{{json .Config.Labels}}", made.name).stdout
    assert f'"{NODE_LABEL}":"{made.name}"' in labels
    load_image(made.name, busybox_image)
    # (It ends on SIGTERM: the node's dockerd stops it in order as the node shuts down.)
    node_exec(made.name, "docker", "run", "-d", "--name", "kept", "--restart", "always",
              busybox_image, "sh", "-c", "trap 'exit 0' TERM; sleep 3000 & wait")

    start = time.monotonic()
    docker("restart", made.name)  # SIGRTMIN+3: systemd shuts down in order
    assert wait_ready(made.name, timeout=60)[0] == "running"
    if nodes.say is not None:
        nodes.say(f"node {made.name} back after docker restart in "
                  f"{time.monotonic() - start:.1f} s")
    # The nested engine kept its images and containers on the node's volume.
    assert node_exec(made.name, "docker", "inspect", "--format", "{{.State.Running}}",
                     "kept").stdout.strip() == "true"

    assert remove_node(made.name) is True
    assert not docker_ok("container", "inspect", made.name)
    assert not docker_ok("volume", "inspect", volume_name(made.name))
    assert remove_node(made.name) is False


def test_a_node_of_an_image_that_is_not_there_is_refused_and_nothing_is_made(
        node_image: str) -> None:
    name = f"{PREFIX}missing"
    with pytest.raises(ClusterError, match="build it first"):
        run_node(name, "bridge", image="skiff-node:0.0.0-notbuilt")
    assert not docker_ok("container", "inspect", name)
    assert not docker_ok("volume", "inspect", volume_name(name))


def test_a_container_that_is_not_a_nodes_is_neither_taken_over_nor_removed(
        busybox_image: str) -> None:
    name = f"{PREFIX}not-a-node"
    docker("run", "--detach", "--name", name, "--label", "io.skiff.test=1", busybox_image,
           "sleep", "300")
    try:
        with pytest.raises(ClusterError, match="exists already"):
            run_node(name, "bridge")
        with pytest.raises(ClusterError, match="not a Skiff node's"):
            remove_node(name)
        assert docker_ok("container", "inspect", name)
    finally:
        docker("rm", "--force", name)
