"""Pod volumes with REAL tmpfs mounts (needs root, or CAP_SYS_ADMIN).

Asserts what the design promises about Secrets: their volume is a tmpfs, their bytes reach
no file on disk, and nothing stays mounted once the pod is gone.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubelet.volumes import SystemMounter, VolumeManager, mount_points
from skiff.api.convert import from_dict
from skiff.api.v1 import core_pb2

UID = "5d2e7a10-0000-4000-8000-00000000abcd"


def _can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"skiff-mount-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(probe)],
                              capture_output=True, check=False)
        if done.returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], check=True)
        return True
    except OSError:
        return False
    finally:
        probe.rmdir()


pytestmark = pytest.mark.skipif(not _can_mount(), reason="needs root to mount tmpfs")


@dataclass(frozen=True)
class MountEntry:
    mount_point: str
    options: set[str]  # per-mount options (nosuid, nodev, ...)
    fstype: str
    super_options: set[str]  # the file system's options (size=, mode=)


def mount_entries() -> list[MountEntry]:
    entries = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            head, _, tail = line.rstrip("\n").partition(" - ")
            fields, tail_fields = head.split(" "), tail.split(" ")
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            entries.append(MountEntry(point, set(fields[5].split(",")), tail_fields[0],
                                      set(tail_fields[2].split(","))))
    return entries


def entry_for(path: str | Path) -> MountEntry | None:
    real = os.path.realpath(path)
    found = [e for e in mount_entries() if e.mount_point == real]
    return found[-1] if found else None


def mounts_below(root: Path) -> list[str]:
    real = os.path.realpath(root)
    return [p for p in mount_points() if p == real or p.startswith(real + "/")]


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """The kubelet's root dir; whatever a test leaves mounted is unmounted afterwards."""
    directory = tmp_path / "kubelet root"  # a space: mountinfo escapes it as \040
    directory.mkdir()
    try:
        yield directory
    finally:
        for point in sorted(mounts_below(directory), key=lambda p: -p.count("/")):
            subprocess.run(["umount", "-l", point], check=False)


class Objects:
    def __init__(self) -> None:
        self.secrets: dict[str, core_pb2.Secret] = {}
        self.config_maps: dict[str, core_pb2.ConfigMap] = {}

    def get_secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        return self.secrets.get(name)

    def get_config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        return self.config_maps.get(name)


def make_pod(volume_list: list[dict[str, Any]], uid: str = UID) -> core_pb2.Pod:
    pod, warnings = from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": uid},
        "spec": {"volumes": volume_list, "containers": [{"name": "app", "image": "busybox"}]},
    })
    assert isinstance(pod, core_pb2.Pod) and warnings == []
    return pod


def regular_files_outside_mounts(root: Path) -> Iterator[Path]:
    """Every regular file under `root` that lives on root's own file system."""
    mounted = set(mounts_below(root))
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames
                       if os.path.realpath(os.path.join(dirpath, d)) not in mounted]
        for name in filenames:
            path = Path(dirpath) / name
            if stat.S_ISREG(os.lstat(path).st_mode):
                yield path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_secret_volume_lives_only_in_a_tmpfs(root: Path) -> None:
    token = secrets.token_hex(16).encode()
    rotated = secrets.token_hex(16).encode()
    objects = Objects()
    objects.secrets["db"] = core_pb2.Secret(data={"password": token, "user": b"app"})
    objects.config_maps["conf"] = core_pb2.ConfigMap(data={"mode": "fast"})
    manager = VolumeManager(root, objects)
    pod = make_pod([
        {"name": "db", "secret": {"secretName": "db", "items": [
            {"key": "password", "path": "auth/password", "mode": 0o400},
            {"key": "user", "path": "user"}]}},
        {"name": "conf", "configMap": {"name": "conf"}},
    ])
    paths = await manager.setup(pod)
    secret_dir = Path(paths["db"])

    entry = entry_for(secret_dir)
    assert entry is not None and entry.fstype == "tmpfs"
    assert {"nosuid", "nodev"} <= entry.options
    assert mode_of(secret_dir) == 0o755
    assert (secret_dir / "auth" / "password").read_bytes() == token
    assert (secret_dir / "user").read_bytes() == b"app"
    data = secret_dir / os.readlink(secret_dir / "..data")
    assert mode_of(data / "auth" / "password") == 0o400
    assert mode_of(data / "user") == 0o644
    assert entry_for(paths["conf"]) is None  # a configMap volume is a plain directory

    # An update goes to the tmpfs too.
    objects.secrets["db"] = core_pb2.Secret(data={"password": rotated, "user": b"app"})
    assert await manager.refresh(pod) is True
    assert (secret_dir / "auth" / "password").read_bytes() == rotated

    # No regular file outside the tmpfs holds either version of the secret...
    checked = 0
    for path in regular_files_outside_mounts(root):
        content = path.read_bytes()
        assert token not in content and rotated not in content, path
        checked += 1
    assert checked >= 1  # the walk did see the configMap's file
    # ...and nothing was written to the disk below the mount: with the tmpfs gone, the
    # directory it covered is empty.
    SystemMounter().unmount(str(secret_dir))
    assert entry_for(secret_dir) is None
    assert os.listdir(secret_dir) == []

    await manager.teardown(UID)
    assert mounts_below(root) == []
    assert not (root / "pods" / UID).exists()


async def test_memory_empty_dir_is_a_sized_tmpfs(root: Path) -> None:
    manager = VolumeManager(root, Objects())
    pod = make_pod([{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
                    {"name": "disk", "emptyDir": {}}])
    paths = await manager.setup(pod)
    entry = entry_for(paths["cache"])
    assert entry is not None and entry.fstype == "tmpfs"
    assert "size=8192k" in entry.super_options
    assert mode_of(Path(paths["cache"])) == 0o1777
    assert entry_for(paths["disk"]) is None
    # The size is enforced by the kernel.
    with pytest.raises(OSError), open(Path(paths["cache"]) / "big", "wb") as f:
        f.write(b"\0" * (9 * 1024 * 1024))
        f.flush()
    await manager.setup(pod)  # idempotent: still one mount
    assert len([p for p in mount_points() if p == os.path.realpath(paths["cache"])]) == 1
    await manager.teardown(UID)
    assert mounts_below(root) == []
    assert not (root / "pods" / UID).exists()


async def test_teardown_with_a_busy_tmpfs_detaches_it(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    manager = VolumeManager(root, Objects())
    paths = await manager.setup(make_pod([{"name": "m", "emptyDir": {"medium": "Memory"}}]))
    busy = open(Path(paths["m"]) / "open-file", "w")  # noqa: SIM115 - held open on purpose
    try:
        await manager.teardown(UID)
        assert "lazy unmount" in caplog.text  # umount said busy; umount -l detached it
        assert mounts_below(root) == []
        assert not (root / "pods" / UID).exists()
    finally:
        busy.close()


async def test_orphans_after_a_restart_are_cleaned_up(root: Path) -> None:
    objects = Objects()
    objects.secrets["s"] = core_pb2.Secret(data={"k": b"v"})
    first = VolumeManager(root, objects)
    for uid in ("uid-running", "uid-gone"):
        await first.setup(make_pod([{"name": "s", "secret": {"secretName": "s"}}], uid=uid))
    # A new kubelet process knows only the pods still bound to its node.
    second = VolumeManager(root, objects)
    orphans = second.orphaned_pod_dirs({"uid-running"})
    assert orphans == ["uid-gone"]
    for uid in orphans:
        await second.teardown(uid)
    remaining = mounts_below(root)
    assert len(remaining) == 1 and "/uid-running/" in remaining[0]
    assert second.orphaned_pod_dirs({"uid-running"}) == []
    await second.teardown("uid-running")
    assert mounts_below(root) == []


def test_system_mounter_sees_stacked_mounts_and_odd_names(root: Path) -> None:
    mounter = SystemMounter()
    target = root / "a dir\twith tab"
    target.mkdir()
    assert not mounter.is_mountpoint(str(target))
    mounter.mount_tmpfs(str(target), 1024 * 1024)
    mounter.mount_tmpfs(str(target), None, 0o700)  # stacked on the first
    assert mounter.is_mountpoint(str(target))
    assert mounter.mounts_under(str(root)) == [os.path.realpath(target)] * 2
    assert mode_of(target) == 0o700  # the top mount is the one seen
    for point in mounter.mounts_under(str(root)):
        mounter.unmount(point)
    assert not mounter.is_mountpoint(str(target))
    mounter.unmount(str(target))  # nothing mounted: no error
