"""The node image: a Debian 12 host in a container, built offline from Debian's packages.

Hosts made as containers (the install scripts' test hosts, the nodes of `skiff cluster`)
boot systemd as PID 1 and run a dockerd of their own, as kind's nodes do. No container
registry is reachable, so the image is not pulled but made here, from what is reachable:
Debian's package mirror and PyPI.

How it is made, in one pass of `mmdebstrap` (which is debootstrap done with apt: about twice
as fast, and it installs docker.io in the same run behind its own policy-rc.d that answers
101, so no service starts during the build):

1. a minbase Debian 12 with PACKAGES (no Recommends; no man pages, docs or locales);
2. the OVERLAY files: units masked that have no business in a node, a docker.service
   drop-in, a journald size cap, /opt/skiff's requirements and description;
3. /opt/skiff/wheels: the project's runtime dependencies (and setuptools and wheel, which
   pip needs to build Skiff from a checkout) as wheels, made by the image's own python3 so
   they fit it; later `pip install --no-index --find-links /opt/skiff/wheels ...` inside a
   node needs no network. /opt/skiff/venv, the install scripts' venv, is made with those
   dependencies installed: an install then adds Skiff alone, from a checkout or a wheel
   copied in, in a second or two instead of six (it costs `skiff cluster create` that much
   on the server and again on the agents); marked `.skiff-node-image`, so that uninstall
   takes Skiff out of it and leaves the venv the host came with;
4. apt's lists and caches dropped, the tar streamed into `docker import`.

The image is tagged by content, `skiff-node:<version>-<hash>`: the hash covers the package
list, the suite and mirrors, the dependency list of pyproject.toml and this module's own
source. Building when that tag exists is a no-op that says so; `force=True` rebuilds (to
take Debian's updates, say). There is no `skiff-node:latest`: two checkouts on one engine
would fight over it, and the launcher always names the exact tag its code computes.

Nested storage: the image declares /var/lib/docker a volume (`nodehost.run_node` gives each
node a named one), because overlay2 does not work on the container's own overlay root but
does on a volume. Docker's own settings (/etc/docker/daemon.json) are left to the install
scripts; dockerd picks overlay2 on that volume by itself.

Nested cgroups (cgroup v1, these machines: no cgroup namespace, /sys/fs/cgroup is the host's):
dockerd's default parent `/docker` would put the nested containers beside the nodes at the
host's root, outside the node's limits, and their cgroups would outlive a removed node. The
drop-in gives dockerd the relative parent `docker`, so they nest inside the node's cgroup and
go with it. On cgroup v2 (a private cgroup namespace) the default already nests, and a
relative parent would break runc, so the choice is made at boot (`docker-env` below).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cluster.dockercli import docker, docker_ok
from cluster.errors import ClusterError
from cluster.supervisor import Say, say

__all__ = ["BUILD_REQUIREMENTS", "IMAGE_REPOSITORY", "LABEL_NODE_IMAGE", "LABEL_RECIPE",
           "LABEL_VERSION", "PACKAGES", "WHEELHOUSE", "BuildResult", "Recipe", "build_image",
           "image_recipe", "project_recipe"]

IMAGE_REPOSITORY = "skiff-node"
LABEL_NODE_IMAGE = "io.skiff.node-image"  # "1" on every node image
LABEL_RECIPE = "io.skiff.node-image.recipe"  # the full hash the tag abbreviates
LABEL_VERSION = "io.skiff.version"

SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
PACKAGES = (
    # systemd as PID 1 (systemd-sysv gives /sbin/init), and the bus systemctl talks over
    "systemd", "systemd-sysv", "dbus",
    # the node's own engine (Debian's docker.io brings containerd, runc, tini), the packet
    # filter it and the pod network program, the tools to look at routes and connections
    "docker.io", "iptables", "iproute2", "conntrack", "kmod", "netbase",
    # what the agent and the install scripts run: python3 3.11 with venv, mounts for
    # Secrets (util-linux, mount), fetching and unpacking (curl, ca-certificates, tar,
    # xz-utils for `docker load` of xz archives), ps/kill/pgrep
    "python3", "python3-venv", "ca-certificates", "curl", "procps", "util-linux", "mount",
    "tar", "xz-utils",
)
# pip builds Skiff from a checkout (pyproject's build-system) with these, offline too.
BUILD_REQUIREMENTS = ("setuptools>=68", "wheel")
WHEELHOUSE = "/opt/skiff/wheels"
SKIFF_VENV = "/opt/skiff/venv"  # the install scripts' (deploy/install-common.sh)
BUILD_TIMEOUT_SECONDS = 1200.0

# Units that have no business in a node: package and disk housekeeping on timers (apt-daily
# would reach for the network every day), and a console login.
MASKED_UNITS = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer",
    "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer",
    "getty@tty1.service", "console-getty.service",
)

_DOCKER_DROPIN = """\
# Skiff's node image: dockerd's command line gains SKIFF_NODE_DOCKER_OPTS, which
# docker-env computes at each start (see cluster/nodeimage.py).
[Service]
ExecStartPre=/usr/local/lib/skiff-node/docker-env
EnvironmentFile=-/run/skiff-node/docker.env
ExecStart=
ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock \
$DOCKER_OPTS $SKIFF_NODE_DOCKER_OPTS
"""

_DOCKER_ENV = """\
#!/bin/sh
# Options for this node's dockerd that depend on the host it runs on.
# cgroup v1 with the host's /sys/fs/cgroup (no cgroup namespace): a relative cgroup parent
# nests the containers inside this node's cgroup, so they count against the node and go
# with it. cgroup v2: the node has a cgroup namespace of its own, where dockerd's default
# already nests (and a relative parent would put containers below containerd's own cgroup,
# which v2 refuses).
set -e
mkdir -p /run/skiff-node
opts=""
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
    opts="--cgroup-parent=docker"
fi
echo "SKIFF_NODE_DOCKER_OPTS=$opts" >/run/skiff-node/docker.env
"""

_JOURNALD_DROPIN = """\
# Skiff's node image: many nodes share one machine; keep each journal small.
[Journal]
SystemMaxUse=64M
RuntimeMaxUse=64M
"""


def _builder_source_digest() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Recipe:
    """Everything the image is made from; its digest names the image."""

    version: str
    requirements: tuple[str, ...]
    packages: tuple[str, ...] = PACKAGES
    build_requirements: tuple[str, ...] = BUILD_REQUIREMENTS
    suite: str = SUITE
    mirrors: tuple[str, ...] = MIRRORS
    masked_units: tuple[str, ...] = MASKED_UNITS
    builder: str = field(default_factory=_builder_source_digest)

    @property
    def digest(self) -> str:
        text = json.dumps({
            "version": self.version, "requirements": sorted(self.requirements),
            "packages": sorted(self.packages), "build": sorted(self.build_requirements),
            "suite": self.suite, "mirrors": list(self.mirrors),
            "masked": sorted(self.masked_units), "builder": self.builder,
        }, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def tag(self) -> str:
        # A tag allows [A-Za-z0-9_.-]; a local version such as 0.1.0+dev has a "+".
        version = re.sub(r"[^A-Za-z0-9_.-]", "_", self.version)
        return f"{IMAGE_REPOSITORY}:{version}-{self.digest[:12]}"


def project_recipe() -> Recipe:
    """The recipe of this checkout (pyproject.toml beside the package), or of the installed
    distribution when there is no checkout."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        with pyproject.open("rb") as f:
            project = tomllib.load(f).get("project", {})
        if project.get("name") == "skiff":
            return Recipe(version=str(project["version"]),
                          requirements=tuple(str(r) for r in project.get("dependencies", [])))
    try:
        version = importlib.metadata.version("skiff")
        requires = importlib.metadata.requires("skiff") or []
    except importlib.metadata.PackageNotFoundError:
        raise ClusterError("cannot tell Skiff's version and dependencies: neither a checkout's "
                           "pyproject.toml nor an installed skiff distribution") from None
    return Recipe(version=version,
                  requirements=tuple(r for r in requires if "extra ==" not in r))


def image_recipe(tag: str) -> str | None:
    """The recipe digest an image carries, or None when there is no such image."""
    result = docker("image", "inspect", "--format",
                    f'{{{{index .Config.Labels "{LABEL_RECIPE}"}}}}', tag, check=False)
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


@dataclass(frozen=True)
class BuildResult:
    tag: str
    built: bool  # False: an image of this recipe was there and is reused
    seconds: float


def build_image(recipe: Recipe | None = None, *, force: bool = False,
                say: Say = say) -> BuildResult:
    """Builds the node image of `recipe` (this checkout's by default) unless it exists.

    Needs root, mmdebstrap, a docker engine, and Debian's mirror and PyPI reachable.
    Raises ClusterError, with the tail of the build's output, when a step fails.
    """
    recipe = recipe or project_recipe()
    tag = recipe.tag
    if not force and image_recipe(tag) == recipe.digest:
        say(f"node image {tag} is there (reused; force=True rebuilds)")
        return BuildResult(tag, built=False, seconds=0.0)
    _check_builder()
    say(f"building node image {tag} (Debian {recipe.suite}, {len(recipe.packages)} packages, "
        f"{len(recipe.requirements)} Python requirements)")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="skiff-nodeimg-build-") as tmp:
        image_id = _build(recipe, Path(tmp), say)
    previous = docker("image", "inspect", "--format", "{{.Id}}", tag, check=False)
    docker("tag", image_id, tag)
    old_id = previous.stdout.strip()
    if previous.returncode == 0 and old_id and old_id != image_id:
        # The image this tag named before a forced rebuild: dropped unless a node uses it.
        docker("image", "rm", old_id, check=False)
    seconds = time.monotonic() - start
    say(f"built node image {tag} in {seconds:.1f} s")
    return BuildResult(tag, built=True, seconds=seconds)


# --- the build ------------------------------------------------------------------------------


def _check_builder() -> None:
    if os.geteuid() != 0:
        raise ClusterError("building the node image needs root (mmdebstrap installs the "
                           "packages in a chroot)")
    if shutil.which("mmdebstrap") is None:
        raise ClusterError("building the node image needs mmdebstrap: apt-get install "
                           "mmdebstrap (deploy/setup.sh installs it)")
    if not docker_ok("version", timeout=30):
        raise ClusterError("no docker engine answers; start dockerd (deploy/setup.sh does)")


def _write_overlay(root: Path, recipe: Recipe) -> None:
    """The files the image gets on top of its packages, laid out as in the image."""

    def put(path: str, text: str, mode: int = 0o644) -> None:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for unit in recipe.masked_units:
        (units / unit).symlink_to("/dev/null")
    put("/etc/systemd/system/docker.service.d/skiff-node.conf", _DOCKER_DROPIN)
    put("/usr/local/lib/skiff-node/docker-env", _DOCKER_ENV, 0o755)
    put("/etc/systemd/journald.conf.d/skiff-node.conf", _JOURNALD_DROPIN)
    put("/opt/skiff/requirements.txt", "".join(f"{r}\n" for r in recipe.requirements))
    put("/opt/skiff/node-image.json", json.dumps({
        "version": recipe.version, "recipe": recipe.digest, "tag": recipe.tag,
        "suite": recipe.suite, "packages": list(recipe.packages),
        "requirements": list(recipe.requirements), "wheelhouse": WHEELHOUSE,
    }, indent=2) + "\n")
    (root / WHEELHOUSE.lstrip("/")).mkdir(parents=True)


def _host_ca_bundle() -> str | None:
    """The certificates this machine's pip trusts. Where HTTPS goes through an intercepting
    proxy, its CA is only in the host's bundle, not in the fresh image's."""
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE"),
                      os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt",
                      paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def _wheel_hook(recipe: Recipe, ca_bundle: str | None) -> str:
    """The mmdebstrap hook (run as `sh -c HOOK exec ROOTFS`) that fills the wheelhouse with
    the image's own pip, from a throwaway venv, in a clean environment."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1",
           "PIP_NO_INPUT": "1"}
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "NO_PROXY", "PIP_INDEX_URL"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    lines = ["set -e"]
    if ca_bundle:
        env["PIP_CERT"] = "/tmp/skiff-build-ca.pem"
        lines.append(f'cp {shlex.quote(ca_bundle)} "$1/tmp/skiff-build-ca.pem"')
    venv = "/tmp/skiff-build-pip"
    build = " ".join(shlex.quote(r) for r in recipe.build_requirements)
    offline = f"--no-index --find-links {WHEELHOUSE}"
    inner = (f"python3 -m venv {venv} && {venv}/bin/pip wheel --quiet --wheel-dir {WHEELHOUSE}"
             f" -r /opt/skiff/requirements.txt {build}"
             # Skiff's venv, its dependencies already in: an install adds Skiff alone.
             f" && python3 -m venv {SKIFF_VENV} && {SKIFF_VENV}/bin/pip install --quiet"
             f" {offline} -r /opt/skiff/requirements.txt {build}"
             # deploy/uninstall.sh then takes Skiff out of it and leaves the rest.
             f" && touch {SKIFF_VENV}/.skiff-node-image")
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    lines.append(f'env -i {assignments} chroot "$1" /bin/sh -c {shlex.quote(inner)}')
    lines.append(f'rm -rf "$1{venv}" "$1/tmp/skiff-build-ca.pem"')
    return "\n".join(lines)


# The last hook: services enabled explicitly (docker.io's postinst does, but the image's
# promise should not rest on it), the build-time dpkg speed-up dropped (the path excludes
# stay, so packages installed in a node later stay lean too), nothing of the build
# machine's identity left (docker mounts a node's own hostname and resolv.conf), no logs.
_FINISH_HOOK = """\
set -e
chroot "$1" systemctl enable docker.service containerd.service
sed -i '/^force-unsafe-io$/d' "$1/etc/dpkg/dpkg.cfg.d/99mmdebstrap"
: >"$1/etc/hostname"
: >"$1/etc/resolv.conf"
rm -rf "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/cache/debconf/*-old
"""


def _mmdebstrap_command(recipe: Recipe, overlay: Path, ca_bundle: str | None) -> list[str]:
    dpkg = ["force-unsafe-io",  # no fsync per file: a build that dies is thrown away anyway
            "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/doc/*",
            "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/locale/*",
            "path-exclude=/usr/share/info/*"]
    return [
        "mmdebstrap", "--mode=root", "--variant=minbase", "--format=tar",
        "--include=" + ",".join(recipe.packages),
        *(f"--dpkgopt={opt}" for opt in dpkg),
        f"--customize-hook=sync-in {overlay} /",
        f"--customize-hook={_wheel_hook(recipe, ca_bundle)}",
        f"--customize-hook={_FINISH_HOOK}",
        recipe.suite, "-", *recipe.mirrors,
    ]


def _import_changes(recipe: Recipe) -> list[str]:
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV container=docker",  # systemd reads it to know it runs in a container
        "VOLUME /var/lib/docker",  # overlay2 needs a volume under it (see the docstring)
        f"LABEL {LABEL_NODE_IMAGE}=1",
        f"LABEL {LABEL_RECIPE}={recipe.digest}",
        f"LABEL {LABEL_VERSION}={recipe.version}",
        'CMD ["/sbin/init"]',
    ]
    # (No STOPSIGNAL: Debian's engine refuses it as an import change; the launcher passes
    # --stop-signal SIGRTMIN+3, systemd's way to shut down.)
    return [arg for change in changes for arg in ("--change", change)]


def _forward_progress(stream: IO[bytes], log: IO[bytes], say: Say) -> None:
    """Copies the build's messages to its log, and its steps ("I: ...", but not the hooks'
    scripts) and errors ("E: ...") to `say`, with the seconds since the build began."""
    start = time.monotonic()
    for raw in stream:
        log.write(raw)
        line = raw.decode(errors="replace").rstrip()
        if line.startswith("E: ") or (line.startswith("I: ") and "hook" not in line):
            say(f"  {time.monotonic() - start:5.1f} s  {line}")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _build(recipe: Recipe, work: Path, say: Say) -> str:
    """mmdebstrap's tar streamed into `docker import`; returns the new image's id."""
    overlay = work / "overlay"
    _write_overlay(overlay, recipe)
    log_path = work / "build.log"
    command = _mmdebstrap_command(recipe, overlay, _host_ca_bundle())
    with log_path.open("wb") as log:
        build = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL)
        assert build.stdout is not None and build.stderr is not None
        progress = threading.Thread(target=_forward_progress, args=(build.stderr, log, say),
                                    daemon=True)
        progress.start()
        importer = subprocess.Popen(["docker", "import", *_import_changes(recipe), "-"],
                                    stdin=build.stdout, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        # Only the importer reads the tar now: should it die, the build gets EPIPE instead
        # of blocking on a pipe that this process holds open.
        build.stdout.close()
        try:
            out, err = importer.communicate(timeout=BUILD_TIMEOUT_SECONDS)
            build_rc = build.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # SIGTERM first: mmdebstrap then unmounts /proc, /sys and /dev from its chroot
            # and removes it; a SIGKILL would leave those mounts behind.
            build.terminate()
            importer.kill()
            try:
                build.wait(timeout=60)
            except subprocess.TimeoutExpired:
                build.kill()
                build.wait()
            importer.wait()
            raise ClusterError(f"the node image build took over {BUILD_TIMEOUT_SECONDS:g} s; "
                               f"its last messages:\n{_tail(log_path)}") from None
        progress.join(timeout=10)
    image_id = out.strip()
    if build_rc != 0:
        if importer.returncode == 0 and image_id:
            docker("image", "rm", image_id, check=False)  # made from a truncated tar
        raise ClusterError(f"mmdebstrap failed (exit {build_rc}); its last messages:\n"
                           f"{_tail(log_path)}")
    if importer.returncode != 0 or not image_id:
        raise ClusterError(f"docker import failed: {err.strip()}")
    return image_id
