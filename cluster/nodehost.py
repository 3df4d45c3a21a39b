"""Hosts made as containers: start a node container, wait until it is up, remove it.

A node is a container of the node image (cluster/nodeimage.py) that boots systemd as PID 1
and runs its own dockerd, on a Docker network the caller names, with a named volume of its
own at /var/lib/docker (overlay2 works there, not on the container's overlay root).

How it is started: `--privileged` first; where the engine refuses that (these machines
withhold CAP_SYS_RESOURCE: "unable to apply caps"), every capability but that one, no
seccomp or AppArmor profile, and every device, which is what dockerd and systemd inside
need. The refusal is remembered for the rest of the process. Both ways add what systemd in
a container needs: `container=docker`, tmpfs on /run, /run/lock and /tmp (executable, as on
a host), the cgroup tree writable, and SIGRTMIN+3 as the stop signal (systemd's "shut
down").

Ready means `systemctl is-system-running` says running (or degraded: booted, with a failed
unit, which `Node.system_state` reports) and `docker info` answers inside.

Everything made carries NODE_LABEL=<name>, the container and its volume, plus the caller's
labels (a cluster's own, say), so a caller can find what it made.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cluster.dockercli import docker, docker_ok
from cluster.errors import ClusterError
from cluster.nodeimage import project_recipe
from cluster.supervisor import Say

__all__ = ["NODE_LABEL", "Node", "load_image", "node_exec", "remove_node", "run_node",
           "volume_name", "wait_ready"]

# On a node container and its volume, with the node's name as value. (Not `io.skiff.node`:
# the kubelet puts that on pods' containers, and `skiff down --purge` removes by it.)
NODE_LABEL = "io.skiff.node-container"

# `docker container|volume inspect --format`: the NODE_LABEL of each.
_LABEL_FORMATS = {"container": f'{{{{index .Config.Labels "{NODE_LABEL}"}}}}',
                  "volume": f'{{{{index .Labels "{NODE_LABEL}"}}}}'}

# The node's name is also its hostname and, for Skiff, its Node's name: one DNS label.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")

# What systemd as PID 1 needs in any container.
_SYSTEMD_FLAGS = (
    "--env", "container=docker",
    "--stop-signal", "SIGRTMIN+3",
    # Docker mounts a --tmpfs noexec unless told otherwise; a host's /tmp and /run are not
    # (a venv in /tmp, say, must run).
    "--tmpfs", "/run:exec,mode=755", "--tmpfs", "/run/lock", "--tmpfs", "/tmp:exec,mode=1777",
    "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
)
_PRIVILEGED = ("--privileged",)
# --privileged less CAP_SYS_RESOURCE (which these machines' sandbox withholds), as
# ../shared/ENVIRONMENT.md verified: dockerd and nested containers work with these.
_CAPABILITIES = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--device-cgroup-rule", "a *:* rwm",
)

# Set once this engine has refused --privileged and taken the capability set instead: each
# refused attempt costs a container create.
_privileged_refused = False

# One probe per poll: systemd's verdict, then dockerd's storage driver when it answers.
_READY_PROBE = ("systemctl is-system-running 2>/dev/null; "
                "docker info --format 'docker={{.Driver}}' 2>/dev/null || true")
_BOOTED = ("running", "degraded")
_BROKEN = ("maintenance", "stopping")


@dataclass(frozen=True)
class Node:
    name: str
    container_id: str
    volume: str
    image: str
    privileged: bool  # started with --privileged (else with the capability set)
    system_state: str  # `systemctl is-system-running` when it became ready
    storage_driver: str  # the node's dockerd's
    boot_seconds: float  # from `docker run` to ready


def volume_name(name: str) -> str:
    """The node's volume for /var/lib/docker."""
    return f"{name}-docker"


def run_node(name: str, network: str, *, image: str | None = None, ip: str | None = None,
             labels: Mapping[str, str] | None = None, extra_args: Sequence[str] = (),
             timeout: float = 90.0, say: Say | None = None) -> Node:
    """Starts node `name` on `network` and waits until systemd has booted and its dockerd
    answers. `image` defaults to this checkout's node image (which must be built:
    nodeimage.build_image); `extra_args` are more `docker run` flags (ports, a restart
    policy). On any failure the node is removed and ClusterError says what went wrong,
    with systemd's and dockerd's last words when it booted but did not get ready."""
    if not _NAME.fullmatch(name):
        raise ClusterError(f"node name {name!r}: must be lower case letters, digits and '-', "
                           "start and end with a letter or digit, at most 63 characters")
    image = image or project_recipe().tag
    if not docker_ok("image", "inspect", image):
        raise ClusterError(f"node image {image} is not there; build it first "
                           "(deploy/build-node-image.sh, or cluster.nodeimage.build_image)")
    if docker_ok("container", "inspect", name):
        raise ClusterError(f"a container named {name} exists already")
    volume = volume_name(name)
    if docker_ok("volume", "inspect", volume):
        raise ClusterError(f"volume {volume} is left from an earlier node {name}; "
                           f"remove_node({name!r}) removes it")
    all_labels = {NODE_LABEL: name, **(labels or {})}
    label_args = [arg for k, v in all_labels.items() for arg in ("--label", f"{k}={v}")]
    docker("volume", "create", *label_args, volume)
    command = ["run", "--detach", "--pull", "never", "--name", name, "--hostname", name,
               "--network", network, *(["--ip", ip] if ip else []), *label_args,
               *_SYSTEMD_FLAGS, "--volume", f"{volume}:/var/lib/docker",
               *(["--volume", "/lib/modules:/lib/modules:ro"] if Path("/lib/modules").is_dir()
                 else []),
               *extra_args]
    start = time.monotonic()
    try:
        container_id, privileged = _start(name, command, image)
        state, driver = wait_ready(name, timeout - (time.monotonic() - start))
    except BaseException:
        remove_node(name)
        raise
    node = Node(name=name, container_id=container_id, volume=volume, image=image,
                privileged=privileged, system_state=state, storage_driver=driver,
                boot_seconds=time.monotonic() - start)
    if say is not None:
        say(f"node {name} ready in {node.boot_seconds:.1f} s (systemd {state}, "
            f"docker on {driver}, {'privileged' if privileged else 'capability set'})")
    return node


def _start(name: str, command: list[str], image: str) -> tuple[str, bool]:
    """`docker run`, privileged unless this engine refused that before; returns the
    container's id and whether it runs privileged."""
    global _privileged_refused
    refusal = ""
    if not _privileged_refused:
        result = docker(*command, *_PRIVILEGED, image, "/sbin/init", check=False)
        if result.returncode == 0:
            return result.stdout.strip(), True
        refusal = result.stderr.strip()
        docker("rm", "--force", name, check=False)  # created, but it did not start
    result = docker(*command, *_CAPABILITIES, image, "/sbin/init", check=False)
    if result.returncode != 0:
        tried = f"--privileged: {refusal}\nthe capability set: " if refusal else ""
        raise ClusterError(f"node {name} did not start; {tried}{result.stderr.strip()}")
    if refusal:
        _privileged_refused = True
    return result.stdout.strip(), False


def wait_ready(name: str, timeout: float = 90.0) -> tuple[str, str]:
    """Waits until node `name`'s systemd has booted and its dockerd answers (after
    run_node, or a `docker restart` of the node); returns systemd's state (running or
    degraded) and dockerd's storage driver. ClusterError, with systemd's and dockerd's last
    words, when the node exits, systemd fails, or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    state = "not asked yet"
    while True:
        probe = docker("exec", name, "sh", "-c", _READY_PROBE, check=False, timeout=30)
        if probe.returncode == 0:
            lines = probe.stdout.split()
            state = lines[0] if lines and not lines[0].startswith("docker=") else "offline"
            driver = next((w.removeprefix("docker=") for w in lines if w.startswith("docker=")),
                          "")
            if state in _BOOTED and driver:
                return state, driver
            if state in _BROKEN:
                raise ClusterError(f"node {name}: systemd is in {state} state\n"
                                   f"{_diagnosis(name)}")
        elif not _running(name):
            logs = docker("logs", "--tail", "20", name, check=False)
            raise ClusterError(f"node {name} exited during boot; its last output:\n"
                               f"{(logs.stdout + logs.stderr).strip()}")
        if time.monotonic() > deadline:
            raise ClusterError(f"node {name} was not ready in time (systemd: {state}; "
                               f"dockerd: {'answers' if 'docker=' in probe.stdout else 'no'})"
                               f"\n{_diagnosis(name)}")
        time.sleep(0.25)


def _running(name: str) -> bool:
    result = docker("inspect", "--format", "{{.State.Running}}", name, check=False)
    return result.stdout.strip() == "true"


def _diagnosis(name: str) -> str:
    """Failed units and the container engine's last journal lines, for an error message."""
    script = ("echo 'failed units:'; systemctl --failed --no-legend --plain; "
              "echo 'docker and containerd:'; "
              "journalctl --no-pager -n 20 -u docker.service -u containerd.service")
    result = docker("exec", name, "sh", "-c", script, check=False, timeout=30)
    return (result.stdout + result.stderr).strip()


def node_exec(name: str, *command: str, input: str | None = None, timeout: float = 120.0,
              check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs `command` in node `name` as root (`docker exec`); with `check`, a non-zero exit
    raises ClusterError with its error output."""
    return docker("exec", *(["--interactive"] if input is not None else []), name, *command,
                  input=input, timeout=timeout, check=check)


def load_image(name: str, image: str, timeout: float = 300.0) -> None:
    """Copies `image` from this machine's engine into node `name`'s dockerd
    (`docker save IMAGE | docker exec -i NODE docker load`): no registry involved."""
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert save.stdout is not None
    try:
        load = subprocess.run(["docker", "exec", "--interactive", name, "docker", "load"],
                              stdin=save.stdout, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        save.kill()
        raise ClusterError(f"loading {image} into node {name} took over {timeout:g} s"
                           ) from None
    finally:
        save.stdout.close()
        _, save_err = save.communicate()
    if save.returncode != 0:
        raise ClusterError(f"docker save {image}: {save_err.decode(errors='replace').strip()}")
    if load.returncode != 0:
        raise ClusterError(f"docker load in node {name}: {load.stderr.strip()}")


def remove_node(name: str) -> bool:
    """Removes node `name`'s container and volume; False when neither was there. A container
    or volume of that name that is not a node's (no NODE_LABEL naming it) is refused."""
    had_container = _node_label("container", name) is not None
    if had_container:
        nested = _nested_containers(name)
        docker("rm", "--force", "--volumes", name)
        _remove_cgroup_leftovers(nested)
    volume = volume_name(name)
    had_volume = _node_label("volume", volume) is not None
    if had_volume:
        docker("volume", "rm", "--force", volume)
    return had_container or had_volume


def _node_label(kind: str, obj: str) -> str | None:
    """The node name a container or volume (`kind`) is labelled with; None when it does not
    exist; ClusterError when it exists but is no node's: remove_node never takes what it did
    not make."""
    result = docker(kind, "inspect", "--format", _LABEL_FORMATS[kind], obj, check=False)
    if result.returncode != 0:
        return None
    label = result.stdout.strip()
    if label in ("", "<no value>"):
        raise ClusterError(f"{kind} {obj} is not a Skiff node's (no {NODE_LABEL} label); "
                           "not removing it")
    return label


def _nested_containers(name: str) -> list[str]:
    """The ids of the containers running in the node now (empty if it is not running)."""
    if not _running(name):
        return []
    result = docker("exec", name, "docker", "ps", "--all", "--quiet", "--no-trunc",
                    check=False, timeout=15)
    return [i for i in result.stdout.split() if _CONTAINER_ID.fullmatch(i)]


def _remove_cgroup_leftovers(container_ids: Sequence[str],
                             root: Path = Path("/sys/fs/cgroup")) -> None:
    """Removes the empty cgroups that containers still running in a node leave on the host
    when the node is removed under them (on cgroup v1 the unified hierarchy keeps them at
    /docker/<id>, outside the node's own cgroup; nobody is left to remove them). Only empty
    directories named by those ids go: rmdir refuses anything else."""
    if not container_ids or not root.is_dir():
        return
    hierarchies = [root, *(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())]
    for container_id in container_ids:
        for hierarchy in hierarchies:
            path = hierarchy / "docker" / container_id
            if path.is_dir():
                with contextlib.suppress(OSError):
                    os.rmdir(path)
