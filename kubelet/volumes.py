"""Pod volumes on the host: the kubelet's volume manager.

Every pod volume Skiff manages lives under

    <root_dir>/pods/<pod uid>/volumes/<kind>/<volume name>     kind: empty-dir|secret|configmap

and is bind-mounted into the containers (`mounts_for`). hostPath volumes are the host path
itself, checked (or created) according to their `type` as Kubernetes does.

- emptyDir: a directory (mode 0777, so containers running as any user can write); with
  `medium: Memory` a tmpfs is mounted on it, `sizeLimit` as its size.
- secret: ALWAYS a tmpfs mounted on the volume directory before anything is written, so a
  Secret's bytes never reach a disk. The manager refuses to write a secret volume that is
  not a mount point.
- configMap: a plain directory.

Secret and configMap files are laid out by Kubernetes' atomic writer (pkg/volume/util/
atomic_writer.go): the files live in a hidden timestamped directory `..2024_01_02_...`,
`..data` is a symlink to it, and each top-level name is a symlink through `..data`
(`key -> ..data/key`, `sub -> ..data/sub`). An update writes a complete new timestamped
directory and swaps `..data` with one rename(2), so a reader sees either the old set of
files or the new one, never a mix. `refresh` re-reads the objects and rewrites only what
changed; the kubelet calls it periodically so running pods see updates.

Teardown unmounts every mount under the pod's directory (checked against
/proc/self/mountinfo) before it removes anything: deleting through a mount still in place
could reach into whatever is mounted there.

Mount operations go through a `Mounter`: `SystemMounter` mounts for real (it needs root),
`FakeMounter` only remembers, for unit tests and the hollow nodes of `--fake-runtime`,
which then need no root and touch no real mount.
"""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kubelet.env import MissingReference, ObjectSource
from kubelet.runtime import Mount
from skiff.api.quantity import QuantityError, parse_quantity
from skiff.api.v1 import core_pb2

__all__ = [
    "KIND_CONFIG_MAP",
    "KIND_EMPTY_DIR",
    "KIND_HOST_PATH",
    "KIND_SECRET",
    "FakeMounter",
    "FileProjection",
    "MissingReference",
    "Mounter",
    "SystemMounter",
    "VolumeError",
    "VolumeManager",
    "mount_points",
    "volume_kind",
    "write_atomic",
]

log = logging.getLogger(__name__)

KIND_EMPTY_DIR = "empty-dir"
KIND_SECRET = "secret"
KIND_CONFIG_MAP = "configmap"
KIND_HOST_PATH = "host-path"  # never a directory under the pod: the host path itself

DEFAULT_FILE_MODE = 0o644  # Kubernetes' defaultMode for secret and configMap files
EMPTY_DIR_MODE = 0o777  # Kubernetes' emptyDir permissions: writable by any container user
# Kubernetes leaves a memory tmpfs at the kernel's default mode, 1777; keep that.
MEMORY_EMPTY_DIR_MODE = 0o1777
# Secret and configMap volume roots: Kubernetes ends with 1777 (tmpfs default) and 0777.
# Only the kubelet writes there and containers get them read-only, so 0755 loses nothing
# for a container and keeps other host users from planting files next to a pod's secrets.
PROJECTED_ROOT_MODE = 0o755
POD_DIR_MODE = 0o750  # as Kubernetes' makePodDataDirs

DATA_DIR = "..data"
NEW_DATA_DIR = "..data_tmp"
_TS_DIR_RE = re.compile(r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\..+")
_MAX_FILE_NAME = 255
_MAX_PATH = 4096


class VolumeError(Exception):
    """A volume cannot be set up or torn down; the message says why, for an event."""


# ---- mounting ----

class Mounter(Protocol):
    """The few mount operations the volume manager needs."""

    def mount_tmpfs(self, path: str, size_bytes: int | None, mode: int = 0o755) -> None:
        """Mounts a new tmpfs on the existing directory `path`."""

    def unmount(self, path: str) -> None:
        """Unmounts what is mounted on `path` (the top mount); no-op when nothing is."""

    def is_mountpoint(self, path: str) -> bool: ...

    def mounts_under(self, path: str) -> list[str]:
        """Mount points at or below `path`, deepest first (one entry per stacked mount)."""


_MOUNTINFO_ESCAPE = re.compile(r"\\([0-7]{3})")


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Every mount point of this mount namespace, in mount order."""
    points = []
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 4:
                # The kernel escapes space, tab, newline and backslash as \ooo.
                points.append(_MOUNTINFO_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)),
                                                    fields[4]))
    return points


def _is_at_or_below(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class SystemMounter:
    """Mounts with mount(8)/umount(8); reads /proc/self/mountinfo. Needs CAP_SYS_ADMIN."""

    def __init__(self, mountinfo: str = "/proc/self/mountinfo") -> None:
        self._mountinfo = mountinfo

    def mount_tmpfs(self, path: str, size_bytes: int | None, mode: int = 0o755) -> None:
        # nosuid,nodev: nothing in a pod volume needs set-id programs or device nodes.
        options = [f"mode={mode:o}", "nosuid", "nodev"]
        if size_bytes:
            options.append(f"size={size_bytes}")
        _run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", path])

    def unmount(self, path: str) -> None:
        if not self.is_mountpoint(path):
            return
        try:
            _run(["umount", path])
        except VolumeError as err:
            # Busy (a process still has a file open there): detach it now; the kernel frees
            # it when the last user is gone. The pod's directory can be removed either way.
            log.warning("volumes: lazy unmount of %s: %s", path, err)
            _run(["umount", "-l", path])

    def is_mountpoint(self, path: str) -> bool:
        return os.path.realpath(path) in mount_points(self._mountinfo)

    def mounts_under(self, path: str) -> list[str]:
        root = os.path.realpath(path)
        found = [p for p in mount_points(self._mountinfo) if _is_at_or_below(p, root)]
        # Deepest first, and later (stacked-on-top) mounts before earlier ones.
        return [p for _, p in sorted(enumerate(found), key=lambda e: (-e[1].count("/"), -e[0]))]


class FakeMounter:
    """Remembers tmpfs mounts instead of making them: the volume directories are plain
    directories, which the manager believes to be mounts."""

    def __init__(self) -> None:
        self.mounts: list[tuple[str, int | None, int]] = []  # (path, size, mode)

    def mount_tmpfs(self, path: str, size_bytes: int | None, mode: int = 0o755) -> None:
        if not os.path.isdir(path):
            raise VolumeError(f"mount point {path} does not exist")
        self.mounts.append((os.path.realpath(path), size_bytes, mode))

    def unmount(self, path: str) -> None:
        real = os.path.realpath(path)
        for i in range(len(self.mounts) - 1, -1, -1):
            if self.mounts[i][0] == real:
                del self.mounts[i]
                return

    def is_mountpoint(self, path: str) -> bool:
        return os.path.realpath(path) in self.points()

    def mounts_under(self, path: str) -> list[str]:
        root = os.path.realpath(path)
        return sorted((p for p in self.points() if _is_at_or_below(p, root)),
                      key=lambda p: -p.count("/"))

    def points(self) -> list[str]:
        return [m[0] for m in self.mounts]


def _run(argv: list[str]) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise VolumeError(f"{' '.join(argv)}: {err}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise VolumeError(f"{' '.join(argv)}: exit status {result.returncode}: {detail}")


# ---- the atomic writer ----

@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int


def write_atomic(target_dir: Path, payload: Mapping[str, FileProjection]) -> bool:
    """Makes `target_dir` show exactly `payload` (relative path -> file); True if it wrote.

    Kubernetes' AtomicWriter.Write: nothing is written when the current files already have
    this content and modes (the user-visible links are still ensured).
    """
    clean = _clean_payload(payload)
    old_ts = _read_data_link(target_dir)
    to_remove: set[str] = set()
    if old_ts is not None:
        to_remove = _paths_to_remove(clean, target_dir / old_ts)
        if not to_remove and _unchanged(clean, target_dir / old_ts):
            _create_user_visible(target_dir, clean)
            _remove_stale_ts_dirs(target_dir, keep=old_ts)
            return False
    new_ts = _write_new_ts_dir(target_dir, clean)
    _swap_data_link(target_dir, new_ts)
    _create_user_visible(target_dir, clean)
    _remove_user_visible(target_dir, to_remove)
    _remove_stale_ts_dirs(target_dir, keep=new_ts)
    return True


def _clean_payload(payload: Mapping[str, FileProjection]) -> dict[str, FileProjection]:
    clean = {}
    for path, projection in payload.items():
        _validate_payload_path(path)
        clean[posixpath.normpath(path)] = projection
    return clean


def _validate_payload_path(path: str) -> None:
    """validatePath: relative, no `..` element, not `..`-prefixed (reserved), sane lengths."""
    if not path:
        raise VolumeError(f"invalid path: must not be empty: {path!r}")
    if path.startswith("/"):
        raise VolumeError(f"invalid path: must be relative path: {path}")
    if len(path) > _MAX_PATH:
        raise VolumeError(f"invalid path: must be less than or equal to {_MAX_PATH} characters")
    items = path.split("/")
    for item in items:
        if item == "..":
            raise VolumeError(f"invalid path: must not contain '..': {path}")
        if len(item) > _MAX_FILE_NAME:
            raise VolumeError("invalid path: filenames must be less than or equal to "
                              f"{_MAX_FILE_NAME} characters")
    if items[0].startswith(".."):
        raise VolumeError(f"invalid path: must not start with '..': {path}")


def _read_data_link(target_dir: Path) -> str | None:
    try:
        return os.readlink(target_dir / DATA_DIR)
    except FileNotFoundError:
        return None


def _relative_tree(root: Path) -> set[str]:
    """Every file and directory below `root`, as relative paths."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            found.add(name if rel == "." else f"{rel}/{name}")
    return found


def _paths_to_remove(payload: Mapping[str, FileProjection], old_ts_dir: Path) -> set[str]:
    """Old paths the new payload no longer has (a payload file's parents still count)."""
    new_paths: set[str] = set()
    for path in payload:
        while path:
            new_paths.add(path)
            path = posixpath.dirname(path)
    return _relative_tree(old_ts_dir) - new_paths


def _unchanged(payload: Mapping[str, FileProjection], old_ts_dir: Path) -> bool:
    for path, projection in payload.items():
        try:
            st = os.lstat(old_ts_dir / path)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != projection.mode:
            return False
        if (old_ts_dir / path).read_bytes() != projection.data:
            return False
    return True


def _write_new_ts_dir(target_dir: Path, payload: Mapping[str, FileProjection]) -> str:
    """A new timestamped directory holding the payload; returns its name."""
    prefix = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    ts_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=target_dir))
    try:
        # 0755 whatever the umask: group and others must be able to walk to the files.
        os.chmod(ts_dir, 0o755)
        for path, projection in sorted(payload.items()):
            _write_file(ts_dir, path, projection)
    except BaseException:
        shutil.rmtree(ts_dir, ignore_errors=True)
        raise
    return ts_dir.name


def _write_file(ts_dir: Path, path: str, projection: FileProjection) -> None:
    parent = ts_dir
    for part in path.split("/")[:-1]:
        parent = parent / part
        if not parent.is_dir():
            parent.mkdir()
            os.chmod(parent, 0o755)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(ts_dir / path, flags, 0o600)
    try:
        view = memoryview(projection.data)
        while view:
            view = view[os.write(fd, view):]
        # The exact mode whatever the umask (Kubernetes chmods after writing too).
        os.fchmod(fd, projection.mode)
    finally:
        os.close(fd)


def _swap_data_link(target_dir: Path, ts_name: str) -> None:
    """Points `..data` at `ts_name` in one atomic rename."""
    tmp_link = target_dir / NEW_DATA_DIR
    tmp_link.unlink(missing_ok=True)  # left over by a write that died half-way
    os.symlink(ts_name, tmp_link)
    try:
        os.replace(tmp_link, target_dir / DATA_DIR)
    except BaseException:
        tmp_link.unlink(missing_ok=True)
        shutil.rmtree(target_dir / ts_name, ignore_errors=True)
        raise


def _top_level(path: str) -> str:
    return path.split("/", 1)[0]


def _create_user_visible(target_dir: Path, payload: Mapping[str, FileProjection]) -> None:
    for name in sorted({_top_level(path) for path in payload}):
        link = target_dir / name
        if not os.path.lexists(link):
            os.symlink(f"{DATA_DIR}/{name}", link)


def _remove_user_visible(target_dir: Path, paths: set[str]) -> None:
    # Only the top-level links are the writer's; what is below them went with the old dir.
    for path in sorted(paths):
        if "/" in path:
            continue
        try:
            (target_dir / path).unlink()
        except OSError as err:
            log.warning("volumes: %s: cannot remove old path %s: %s", target_dir, path, err)


def _remove_stale_ts_dirs(target_dir: Path, keep: str) -> None:
    """Removes every timestamped directory but `keep` (the old one, and any a crash left)."""
    for entry in os.scandir(target_dir):
        if entry.name != keep and _TS_DIR_RE.fullmatch(entry.name) and \
                entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)


# ---- payloads (what a secret or configMap volume should contain) ----

def _mode(explicit: int | None, default_mode: int | None) -> int:
    if explicit is not None:
        return explicit
    return DEFAULT_FILE_MODE if default_mode is None else default_mode


def _project(data: Mapping[str, bytes], items: list[core_pb2.KeyToPath],
             default_mode: int | None, optional: bool,
             missing_key: str) -> dict[str, FileProjection]:
    """MakePayload: every key under its own name, or only `items` at their paths."""
    if not items:
        mode = _mode(None, default_mode)
        return {key: FileProjection(value, mode) for key, value in data.items()}
    payload = {}
    for item in items:
        if item.key not in data:
            if optional:
                continue
            raise MissingReference(f"{missing_key}: {item.key}")
        mode = _mode(item.mode if item.HasField("mode") else None, default_mode)
        payload[item.path] = FileProjection(data[item.key], mode)
    return payload


def _secret_payload(source: core_pb2.SecretVolumeSource, namespace: str,
                    objects: ObjectSource) -> dict[str, FileProjection]:
    secret = objects.get_secret(namespace, source.secret_name)
    if secret is None:
        if not source.optional:
            raise MissingReference(f'secret "{source.secret_name}" not found')
        secret = core_pb2.Secret()  # optional and absent: an empty volume
    default_mode = source.default_mode if source.HasField("default_mode") else None
    return _project(dict(secret.data), list(source.items), default_mode, source.optional,
                    "references non-existent secret key")


def _config_map_payload(source: core_pb2.ConfigMapVolumeSource, namespace: str,
                        objects: ObjectSource) -> dict[str, FileProjection]:
    config_map = objects.get_config_map(namespace, source.name)
    if config_map is None:
        if not source.optional:
            raise MissingReference(f'configmap "{source.name}" not found')
        config_map = core_pb2.ConfigMap()
    data = {key: value.encode() for key, value in config_map.data.items()}
    data.update(config_map.binary_data)  # written as-is
    default_mode = source.default_mode if source.HasField("default_mode") else None
    return _project(data, list(source.items), default_mode, source.optional,
                    "configmap references non-existent config key")


# ---- hostPath ----

_HOST_PATH_CHECKS = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket file"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def check_host_path(path: str, path_type: str) -> None:
    """Kubernetes' hostPath type check; creates the path for the *OrCreate types."""
    try:
        if path_type == "DirectoryOrCreate" and not os.path.exists(path):
            os.makedirs(path, 0o755)
            os.chmod(path, 0o755)  # whatever the umask, as documented by Kubernetes
            return
        if path_type == "FileOrCreate" and not os.path.exists(path):
            # Like Kubernetes: the parent must exist; only the file is created.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            return
    except OSError as err:
        raise VolumeError(f"hostPath {path}: {err.strerror}") from None
    base = path_type.removesuffix("OrCreate")
    if path_type == "":
        return  # HostPathUnset: mount whatever is there (or let the runtime create it)
    if base not in _HOST_PATH_CHECKS:
        raise VolumeError(f"{path_type} is an invalid volume type")
    is_type, noun = _HOST_PATH_CHECKS[base]
    try:
        ok = is_type(os.stat(path).st_mode)
    except OSError:
        ok = False
    if not ok:
        raise VolumeError(f"hostPath type check failed: {path} is not {noun}")


# ---- subPath ----

def resolve_sub_path(volume_path: str, sub_path: str) -> str:
    """The host path for `subPath` of a volume, created (as directories) when missing.

    Every symlink on the way must stay inside the volume: a container could otherwise plant
    `sub -> /etc` in an emptyDir and have the next start bind-mount the host's /etc
    (CVE-2017-1002101). Created directories take the volume root's mode, as in Kubernetes.
    """
    if sub_path.startswith("/") or ".." in sub_path.split("/"):
        raise VolumeError(f"subPath {sub_path!r} must be a relative path without '..'")
    root = os.path.realpath(volume_path)
    root_mode = stat.S_IMODE(os.stat(root).st_mode)
    current = root
    for part in sub_path.split("/"):
        if part in ("", "."):
            continue
        current = _step(root, current, part, root_mode, sub_path)
    return current


def _step(root: str, current: str, part: str, mode: int, sub_path: str) -> str:
    candidate = os.path.join(current, part)
    if os.path.islink(candidate):
        candidate = os.path.realpath(candidate)
        if not _is_at_or_below(candidate, root):
            raise VolumeError(f"subpath {sub_path!r} not within volume path {root!r}")
        return candidate
    if not os.path.lexists(candidate):
        # A file in the middle of the path makes this fail (ENOTDIR), as it should.
        try:
            os.mkdir(candidate)
            os.chmod(candidate, mode)
        except OSError as err:
            raise VolumeError(f"subPath {sub_path!r}: {err.strerror}: {candidate}") from None
    return candidate


# ---- the manager ----

def volume_kind(volume: core_pb2.Volume) -> str:
    """Which kind of volume this is; a volume without a source is an emptyDir, as in k8s."""
    if volume.HasField("host_path"):
        return KIND_HOST_PATH
    if volume.HasField("secret"):
        return KIND_SECRET
    if volume.HasField("config_map"):
        return KIND_CONFIG_MAP
    return KIND_EMPTY_DIR


def _safe_name(name: str, what: str) -> str:
    """A path component that cannot walk out of its directory."""
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise VolumeError(f"invalid {what} {name!r}")
    return name


def _size_limit(source: core_pb2.EmptyDirVolumeSource) -> int | None:
    if not source.HasField("size_limit") or not source.size_limit.value:
        return None
    try:
        size = parse_quantity(source.size_limit.value).value()
    except QuantityError as err:
        raise VolumeError(f"emptyDir sizeLimit: {err}") from None
    return size if size > 0 else None


class VolumeManager:
    """Sets up, refreshes and tears down the volumes of the pods on this node."""

    def __init__(self, root_dir: Path, source: ObjectSource, *,
                 mounter: Mounter | None = None) -> None:
        self.root_dir = Path(root_dir)
        self._source = source
        self._mounter: Mounter = mounter if mounter is not None else SystemMounter()
        # One operation at a time per pod: a periodic refresh must not race a teardown.
        self._locks: dict[str, asyncio.Lock] = {}

    # -- paths --

    def pod_dir(self, pod_uid: str) -> Path:
        return self.root_dir / "pods" / _safe_name(pod_uid, "pod uid")

    def volume_dir(self, pod_uid: str, kind: str, name: str) -> Path:
        return self.pod_dir(pod_uid) / "volumes" / kind / _safe_name(name, "volume name")

    def _lock(self, pod_uid: str) -> asyncio.Lock:
        return self._locks.setdefault(pod_uid, asyncio.Lock())

    # -- setup --

    async def setup(self, pod: core_pb2.Pod) -> dict[str, str]:
        """Makes every volume of the pod ready; returns volume name -> host path.

        Idempotent. Raises MissingReference when a non-optional Secret, ConfigMap or key is
        missing (the pod waits in ContainerCreating), VolumeError for other failures.
        """
        uid = pod.metadata.uid
        async with self._lock(uid):
            # Objects are read here, on the event loop that owns the informer caches; the
            # file system work runs in a thread so a slow disk never stalls the kubelet.
            payloads = self._payloads(pod, skip_missing=False)
            return await asyncio.to_thread(self._setup_all, pod, payloads)

    def _payloads(self, pod: core_pb2.Pod, *, skip_missing: bool
                  ) -> dict[str, dict[str, FileProjection]]:
        """The wanted content of every secret and configMap volume of the pod."""
        payloads = {}
        namespace = pod.metadata.namespace
        for volume in pod.spec.volumes:
            try:
                if volume.HasField("secret"):
                    payloads[volume.name] = _secret_payload(volume.secret, namespace,
                                                            self._source)
                elif volume.HasField("config_map"):
                    payloads[volume.name] = _config_map_payload(volume.config_map, namespace,
                                                                self._source)
            except MissingReference as err:
                err.volume = volume.name
                if not skip_missing:
                    raise
                # As Kubernetes' resync: a deleted object leaves the files as they were.
                log.warning("volumes: pod %s/%s volume %s: %s; keeping the current files",
                            namespace, pod.metadata.name, volume.name, err)
        return payloads

    def _setup_all(self, pod: core_pb2.Pod,
                   payloads: Mapping[str, Mapping[str, FileProjection]]) -> dict[str, str]:
        paths = {}
        for volume in pod.spec.volumes:
            paths[volume.name] = self._setup_one(pod.metadata.uid, volume,
                                                 payloads.get(volume.name, {}))
        return paths

    def _setup_one(self, uid: str, volume: core_pb2.Volume,
                   payload: Mapping[str, FileProjection]) -> str:
        kind = volume_kind(volume)
        if kind == KIND_HOST_PATH:
            check_host_path(volume.host_path.path, volume.host_path.type)
            return volume.host_path.path
        directory = self.volume_dir(uid, kind, volume.name)
        self._make_volume_dir(directory)
        if kind == KIND_EMPTY_DIR:
            self._setup_empty_dir(directory, volume.empty_dir)
        elif kind == KIND_SECRET:
            self._ensure_tmpfs(directory, None, PROJECTED_ROOT_MODE)
            self._write_secret(directory, payload)
        else:
            os.chmod(directory, PROJECTED_ROOT_MODE)
            write_atomic(directory, payload)
        return str(directory)

    def _make_volume_dir(self, directory: Path) -> None:
        pod_dir = directory.parents[2]
        if not pod_dir.exists():
            pod_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(pod_dir, POD_DIR_MODE)
        directory.mkdir(parents=True, exist_ok=True)

    def _setup_empty_dir(self, directory: Path, source: core_pb2.EmptyDirVolumeSource) -> None:
        if source.medium == "Memory":
            self._ensure_tmpfs(directory, _size_limit(source), MEMORY_EMPTY_DIR_MODE)
        elif source.medium == "":
            # sizeLimit on a disk emptyDir is an eviction threshold in Kubernetes; Skiff
            # does not enforce it.
            os.chmod(directory, EMPTY_DIR_MODE)
        else:
            raise VolumeError(f"emptyDir medium {source.medium!r} is not supported")

    def _ensure_tmpfs(self, directory: Path, size: int | None, mode: int) -> None:
        if not self._mounter.is_mountpoint(str(directory)):
            self._mounter.mount_tmpfs(str(directory), size, mode)

    def _write_secret(self, directory: Path, payload: Mapping[str, FileProjection]) -> bool:
        # The one rule that keeps Secrets off the disk: write only into the tmpfs.
        if not self._mounter.is_mountpoint(str(directory)):
            raise VolumeError(f"{directory} is not a tmpfs mount; refusing to write a secret")
        return write_atomic(directory, payload)

    # -- container mounts --

    def mounts_for(self, pod: core_pb2.Pod, container: core_pb2.Container,
                   paths: Mapping[str, str]) -> list[Mount]:
        """The bind mounts for the container's volumeMounts, from `setup`'s paths.

        Secret and configMap volumes are always read-only. A subPath mounts that part of the
        volume (created as a directory when missing, as Kubernetes does).
        """
        kinds = {volume.name: volume_kind(volume) for volume in pod.spec.volumes}
        mounts = []
        for vm in container.volume_mounts:
            if vm.name not in kinds or vm.name not in paths:
                raise VolumeError(f'container "{container.name}": volume "{vm.name}" '
                                  "is not set up")
            host_path = paths[vm.name]
            if vm.sub_path:
                host_path = resolve_sub_path(host_path, vm.sub_path)
            read_only = vm.read_only or kinds[vm.name] in (KIND_SECRET, KIND_CONFIG_MAP)
            mounts.append(Mount(host_path, vm.mount_path, read_only))
        return mounts

    # -- refresh --

    async def refresh(self, pod: core_pb2.Pod) -> bool:
        """Rewrites secret and configMap volumes whose objects changed; True if any did.

        Only volumes `setup` made are touched. A missing object leaves the files as they
        are (Kubernetes' resync does the same); an optional one that went away empties it.
        """
        uid = pod.metadata.uid
        async with self._lock(uid):
            payloads = self._payloads(pod, skip_missing=True)
            return await asyncio.to_thread(self._refresh_all, pod, payloads)

    def _refresh_all(self, pod: core_pb2.Pod,
                     payloads: Mapping[str, Mapping[str, FileProjection]]) -> bool:
        changed = False
        for volume in pod.spec.volumes:
            if volume.name not in payloads:
                continue
            kind = volume_kind(volume)
            directory = self.volume_dir(pod.metadata.uid, kind, volume.name)
            if not os.path.lexists(directory / DATA_DIR):
                continue  # never set up (or torn down): nothing to refresh
            if kind == KIND_SECRET:
                changed |= self._write_secret(directory, payloads[volume.name])
            else:
                changed |= write_atomic(directory, payloads[volume.name])
        return changed

    # -- teardown --

    async def teardown(self, pod_uid: str) -> None:
        """Unmounts every mount under the pod's directory, then removes it. Idempotent."""
        async with self._lock(pod_uid):
            await asyncio.to_thread(self._teardown, pod_uid)
        self._locks.pop(pod_uid, None)

    def _teardown(self, pod_uid: str) -> None:
        pod_dir = self.pod_dir(pod_uid)
        if not pod_dir.exists():
            return
        for mount_point in self._mounter.mounts_under(str(pod_dir)):
            self._mounter.unmount(mount_point)
        remaining = self._mounter.mounts_under(str(pod_dir))
        if remaining:
            # Never delete through a mount: it could reach what is mounted there.
            raise VolumeError(f"pod {pod_uid}: still mounted: {', '.join(remaining)}")
        shutil.rmtree(pod_dir)
        log.info("volumes: pod %s: volumes torn down", pod_uid)

    def orphaned_pod_dirs(self, known_uids: Collection[str]) -> list[str]:
        """Uids of pod directories for pods not in `known_uids` (to tear down after a
        kubelet restart)."""
        pods = self.root_dir / "pods"
        if not pods.is_dir():
            return []
        return sorted(entry.name for entry in os.scandir(pods)
                      if entry.is_dir(follow_symlinks=False) and entry.name not in known_uids)
