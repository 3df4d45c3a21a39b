"""The pod volume manager (kubelet/volumes.py) on tmp dirs, with a fake mounter."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelet import volumes
from kubelet.env import MissingReference
from kubelet.runtime import Mount
from kubelet.volumes import (
    FileProjection,
    VolumeError,
    VolumeManager,
    check_host_path,
    write_atomic,
)
from skiff.api.convert import from_dict
from skiff.api.v1 import core_pb2

UID = "0f6c1c38-0000-4000-8000-000000000001"


class FakeMounter(volumes.FakeMounter):
    """The kubelet's fake mounter, with faults to order."""

    def __init__(self, *, refuse_unmount: bool = False, fail_silently: bool = False) -> None:
        super().__init__()
        self.refuse_unmount = refuse_unmount
        self.fail_silently = fail_silently  # mount_tmpfs "succeeds" but mounts nothing

    def mount_tmpfs(self, path: str, size_bytes: int | None, mode: int = 0o755) -> None:
        if self.fail_silently:
            return
        assert os.path.isdir(path)
        super().mount_tmpfs(path, size_bytes, mode)

    def unmount(self, path: str) -> None:
        if not self.refuse_unmount:
            super().unmount(path)


class Objects:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], core_pb2.Secret] = {}
        self.config_maps: dict[tuple[str, str], core_pb2.ConfigMap] = {}

    def get_secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        return self.secrets.get((namespace, name))

    def get_config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        return self.config_maps.get((namespace, name))

    def put_secret(self, name: str, **data: bytes) -> None:
        self.secrets["default", name] = core_pb2.Secret(data=data)

    def put_config_map(self, name: str, binary: dict[str, bytes] | None = None,
                       **data: str) -> None:
        self.config_maps["default", name] = core_pb2.ConfigMap(data=data,
                                                               binary_data=binary or {})


@pytest.fixture
def objects() -> Objects:
    return Objects()


@pytest.fixture
def mounter() -> FakeMounter:
    return FakeMounter()


@pytest.fixture
def manager(tmp_path: Path, objects: Objects, mounter: FakeMounter) -> VolumeManager:
    return VolumeManager(tmp_path / "kubelet", objects, mounter=mounter)


def make_pod(volume_list: list[dict[str, Any]], mounts: list[dict[str, Any]] | None = None,
             uid: str = UID) -> core_pb2.Pod:
    pod, warnings = from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": uid},
        "spec": {"volumes": volume_list,
                 "containers": [{"name": "app", "image": "busybox",
                                 "volumeMounts": mounts or []}]},
    })
    assert isinstance(pod, core_pb2.Pod)
    assert warnings == []
    return pod


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def listing(directory: Path) -> dict[str, str]:
    """Top-level entries: name -> symlink target, or 'dir'/'file'."""
    out = {}
    for entry in sorted(os.listdir(directory)):
        full = directory / entry
        if full.is_symlink():
            out[entry] = os.readlink(full)
        else:
            out[entry] = "dir" if full.is_dir() else "file"
    return out


def ts_dir_of(directory: Path) -> str:
    return os.readlink(directory / "..data")


# ---- layout ----

async def test_layout_of_every_kind(manager: VolumeManager, objects: Objects,
                                    mounter: FakeMounter, tmp_path: Path) -> None:
    objects.put_secret("creds", password=b"hunter2")
    objects.put_config_map("conf", setting="on")
    host = tmp_path / "host-data"
    host.mkdir()
    pod = make_pod([
        {"name": "scratch", "emptyDir": {}},
        {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {"name": "creds", "secret": {"secretName": "creds"}},
        {"name": "conf", "configMap": {"name": "conf"}},
        {"name": "data", "hostPath": {"path": str(host), "type": "Directory"}},
    ])
    paths = await manager.setup(pod)
    base = tmp_path / "kubelet" / "pods" / UID / "volumes"
    assert paths == {
        "scratch": str(base / "empty-dir" / "scratch"),
        "cache": str(base / "empty-dir" / "cache"),
        "creds": str(base / "secret" / "creds"),
        "conf": str(base / "configmap" / "conf"),
        "data": str(host),
    }
    assert mode_of(base / "empty-dir" / "scratch") == 0o777
    assert mode_of(tmp_path / "kubelet" / "pods" / UID) == 0o750
    # Secret: always a tmpfs; Memory emptyDir: a tmpfs of sizeLimit bytes.
    assert sorted(mounter.mounts) == sorted([
        (str(base / "empty-dir" / "cache"), 64 * 1024 * 1024, 0o1777),
        (str(base / "secret" / "creds"), None, 0o755),
    ])
    assert (base / "secret" / "creds" / "password").read_bytes() == b"hunter2"
    assert (base / "configmap" / "conf" / "setting").read_text() == "on"


async def test_volume_without_source_is_an_empty_dir(manager: VolumeManager) -> None:
    pod = make_pod([{"name": "v"}])
    paths = await manager.setup(pod)
    assert paths["v"].endswith("/volumes/empty-dir/v")
    assert os.path.isdir(paths["v"])


async def test_memory_empty_dir_without_size_limit(manager: VolumeManager,
                                                   mounter: FakeMounter) -> None:
    paths = await manager.setup(make_pod([{"name": "m", "emptyDir": {"medium": "Memory"}}]))
    assert mounter.mounts == [(os.path.realpath(paths["m"]), None, 0o1777)]


async def test_unsupported_medium(manager: VolumeManager) -> None:
    with pytest.raises(VolumeError, match="HugePages"):
        await manager.setup(make_pod([{"name": "m", "emptyDir": {"medium": "HugePages"}}]))


async def test_atomic_writer_layout(manager: VolumeManager, objects: Objects) -> None:
    objects.put_secret("creds", username=b"admin", password=b"hunter2")
    paths = await manager.setup(make_pod([{"name": "creds",
                                           "secret": {"secretName": "creds"}}]))
    directory = Path(paths["creds"])
    ts = ts_dir_of(directory)
    assert ts.startswith("..") and ts != "..data"
    assert listing(directory) == {
        "..data": ts, ts: "dir", "password": "..data/password", "username": "..data/username"}
    assert mode_of(directory / ts) == 0o755
    assert mode_of(directory / ts / "password") == 0o644  # the default defaultMode
    assert (directory / "username").read_bytes() == b"admin"


async def test_items_with_modes_and_subdirectories(manager: VolumeManager,
                                                   objects: Objects) -> None:
    objects.put_secret("tls", **{"tls.crt": b"CERT", "tls.key": b"KEY", "ca.crt": b"CA"})
    pod = make_pod([{"name": "tls", "secret": {
        "secretName": "tls", "defaultMode": 0o440,
        "items": [{"key": "tls.crt", "path": "certs/server.crt"},
                  {"key": "tls.key", "path": "certs/private/server.key", "mode": 0o400},
                  {"key": "ca.crt", "path": "ca.pem"}],
    }}])
    directory = Path((await manager.setup(pod))["tls"])
    ts = ts_dir_of(directory)
    assert listing(directory) == {"..data": ts, ts: "dir", "ca.pem": "..data/ca.pem",
                                  "certs": "..data/certs"}
    assert (directory / "certs" / "server.crt").read_bytes() == b"CERT"
    assert (directory / "certs" / "private" / "server.key").read_bytes() == b"KEY"
    assert mode_of(directory / ts / "certs" / "server.crt") == 0o440
    assert mode_of(directory / ts / "certs" / "private" / "server.key") == 0o400
    assert mode_of(directory / ts / "ca.pem") == 0o440
    assert mode_of(directory / ts / "certs") == 0o755
    assert not (directory / "tls.crt").exists()  # only the items are projected


async def test_config_map_binary_data_written_as_is(manager: VolumeManager,
                                                    objects: Objects) -> None:
    blob = bytes(range(256))
    objects.put_config_map("c", binary={"blob.bin": blob}, text="h\u00e9llo")
    pod = make_pod([{"name": "c", "configMap": {"name": "c", "defaultMode": 0o600}}])
    directory = Path((await manager.setup(pod))["c"])
    assert (directory / "blob.bin").read_bytes() == blob
    assert (directory / "text").read_bytes() == "h\u00e9llo".encode()
    assert mode_of(directory / ts_dir_of(directory) / "text") == 0o600


async def test_secret_bytes_written_as_is(manager: VolumeManager, objects: Objects) -> None:
    objects.put_secret("s", raw=b"\x00\xff\xfe binary\n")
    directory = Path((await manager.setup(make_pod([{"name": "s", "secret": {
        "secretName": "s"}}])))["s"])
    assert (directory / "raw").read_bytes() == b"\x00\xff\xfe binary\n"


async def test_setup_is_idempotent(manager: VolumeManager, objects: Objects,
                                   mounter: FakeMounter) -> None:
    objects.put_secret("s", a=b"1")
    objects.put_config_map("c", b="2")
    pod = make_pod([{"name": "s", "secret": {"secretName": "s"}},
                    {"name": "c", "configMap": {"name": "c"}},
                    {"name": "m", "emptyDir": {"medium": "Memory"}}])
    first = await manager.setup(pod)
    ts = {name: ts_dir_of(Path(first[name])) for name in ("s", "c")}
    second = await manager.setup(pod)
    assert first == second
    assert len(mounter.mounts) == 2  # not mounted twice
    assert {name: ts_dir_of(Path(second[name])) for name in ("s", "c")} == ts  # not rewritten


# ---- updates ----

async def test_refresh_rewrites_only_on_change(manager: VolumeManager,
                                               objects: Objects) -> None:
    objects.put_config_map("c", keep="same", old="going away", value="v1")
    pod = make_pod([{"name": "c", "configMap": {"name": "c"}}])
    directory = Path((await manager.setup(pod))["c"])
    first_ts = ts_dir_of(directory)
    assert await manager.refresh(pod) is False
    assert ts_dir_of(directory) == first_ts

    objects.put_config_map("c", keep="same", value="v2", new="arrived")
    assert await manager.refresh(pod) is True
    second_ts = ts_dir_of(directory)
    assert second_ts != first_ts
    assert listing(directory) == {
        "..data": second_ts, second_ts: "dir", "keep": "..data/keep", "new": "..data/new",
        "value": "..data/value"}  # the old dir and the stale "old" link are gone
    assert (directory / "value").read_text() == "v2"
    assert (directory / "new").read_text() == "arrived"
    assert await manager.refresh(pod) is False


async def test_refresh_secret_removes_old_subdirectory_links(manager: VolumeManager,
                                                             objects: Objects) -> None:
    objects.put_secret("s", a=b"1", b=b"2")
    pod = make_pod([{"name": "s", "secret": {"secretName": "s", "items": [
        {"key": "a", "path": "dir/a"}, {"key": "b", "path": "b"}]}}])
    pod.spec.volumes[0].secret.optional = True
    directory = Path((await manager.setup(pod))["s"])
    assert set(listing(directory)) >= {"dir", "b"}
    objects.put_secret("s", b=b"3")  # key a gone: optional volume, so the item is skipped
    assert await manager.refresh(pod) is True
    ts = ts_dir_of(directory)
    assert listing(directory) == {"..data": ts, ts: "dir", "b": "..data/b"}
    assert (directory / "b").read_bytes() == b"3"


async def test_update_swaps_data_link_atomically(manager: VolumeManager, objects: Objects,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    objects.put_config_map("c", a="old-a", b="old-b")
    pod = make_pod([{"name": "c", "configMap": {"name": "c"}}])
    directory = Path((await manager.setup(pod))["c"])
    old_ts = ts_dir_of(directory)
    swaps: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        # At the moment of the swap, readers still see the complete old version, and the
        # new version is complete in its own directory.
        assert (directory / "a").read_text() == "old-a"
        assert (directory / "b").read_text() == "old-b"
        new_ts = os.readlink(src)
        assert (directory / new_ts / "a").read_text() == "new-a"
        assert (directory / new_ts / "b").read_text() == "new-b"
        swaps.append((os.path.basename(src), os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(volumes.os, "replace", replace)
    objects.put_config_map("c", a="new-a", b="new-b")
    assert await manager.refresh(pod) is True
    assert swaps == [("..data_tmp", "..data")]
    assert (directory / "a").read_text() == "new-a"
    assert not (directory / old_ts).exists()
    assert not os.path.lexists(directory / "..data_tmp")


def test_write_atomic_cleans_up_after_a_crashed_write(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    target.mkdir()
    assert write_atomic(target, {"k": FileProjection(b"1", 0o644)}) is True
    current = ts_dir_of(target)
    # What a kubelet killed mid-write leaves: a half-written dir and a dangling tmp link.
    (target / "..2001_01_01_00_00_00.crash").mkdir()
    os.symlink("..2001_01_01_00_00_00.crash", target / "..data_tmp")
    assert write_atomic(target, {"k": FileProjection(b"2", 0o644)}) is True
    new = ts_dir_of(target)
    assert listing(target) == {"..data": new, new: "dir", "k": "..data/k"}
    assert current != new
    assert (target / "k").read_bytes() == b"2"


def test_write_atomic_restores_missing_user_visible_links(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    target.mkdir()
    payload = {"k": FileProjection(b"1", 0o644)}
    write_atomic(target, payload)
    (target / "k").unlink()
    assert write_atomic(target, payload) is False  # content unchanged: no new version
    assert (target / "k").read_bytes() == b"1"


def test_write_atomic_mode_change_is_a_change(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    target.mkdir()
    write_atomic(target, {"k": FileProjection(b"1", 0o644)})
    assert write_atomic(target, {"k": FileProjection(b"1", 0o600)}) is True
    assert mode_of(target / ts_dir_of(target) / "k") == 0o600


def test_write_atomic_ignores_umask(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    target.mkdir()
    old = os.umask(0o077)
    try:
        write_atomic(target, {"d/k": FileProjection(b"1", 0o666)})
    finally:
        os.umask(old)
    ts = target / ts_dir_of(target)
    assert (mode_of(ts), mode_of(ts / "d"), mode_of(ts / "d" / "k")) == (0o755, 0o755, 0o666)


@pytest.mark.parametrize(("path", "message"), [
    ("/abs", "must be relative path"),
    ("a/../b", "must not contain '..'"),
    ("..hidden", "must not start with '..'"),
    ("..data", "must not start with '..'"),
    ("", "must not be empty"),
    ("x" * 256, "filenames must be less than or equal to 255"),
])
def test_write_atomic_rejects_bad_paths(tmp_path: Path, path: str, message: str) -> None:
    with pytest.raises(VolumeError, match=message):
        write_atomic(tmp_path, {path: FileProjection(b"", 0o644)})
    assert os.listdir(tmp_path) == []


def test_write_atomic_cleans_paths(tmp_path: Path) -> None:
    write_atomic(tmp_path, {"./a//b": FileProjection(b"x", 0o644)})
    assert (tmp_path / "a" / "b").read_bytes() == b"x"


# ---- missing and optional references ----

@pytest.mark.parametrize(("volume", "message"), [
    ({"secret": {"secretName": "db-pass"}}, 'secret "db-pass" not found'),
    ({"configMap": {"name": "x"}}, 'configmap "x" not found'),
    ({"secret": {"secretName": "present", "items": [{"key": "nope", "path": "p"}]}},
     "references non-existent secret key: nope"),
    ({"configMap": {"name": "present", "items": [{"key": "nope", "path": "p"}]}},
     "configmap references non-existent config key: nope"),
])
async def test_missing_references(manager: VolumeManager, objects: Objects, tmp_path: Path,
                                  volume: dict[str, Any], message: str) -> None:
    objects.put_secret("present", k=b"1")
    objects.put_config_map("present", k="1")
    with pytest.raises(MissingReference) as caught:
        await manager.setup(make_pod([{"name": "v", **volume}]))
    assert str(caught.value) == message
    assert caught.value.volume == "v"
    assert not (tmp_path / "kubelet" / "pods" / UID / "volumes" / "secret").exists()


async def test_optional_missing_object_gives_an_empty_volume(manager: VolumeManager,
                                                             objects: Objects) -> None:
    pod = make_pod([{"name": "s", "secret": {"secretName": "later", "optional": True}},
                    {"name": "c", "configMap": {"name": "later", "optional": True}}])
    paths = await manager.setup(pod)
    for name in ("s", "c"):
        directory = Path(paths[name])
        ts = ts_dir_of(directory)
        assert listing(directory) == {"..data": ts, ts: "dir"}
    # The object appears later: the next refresh fills the volume.
    objects.put_secret("later", token=b"abc")
    assert await manager.refresh(pod) is True
    assert (Path(paths["s"]) / "token").read_bytes() == b"abc"


async def test_optional_volume_skips_missing_items(manager: VolumeManager,
                                                   objects: Objects) -> None:
    objects.put_config_map("c", present="yes")
    pod = make_pod([{"name": "c", "configMap": {"name": "c", "optional": True, "items": [
        {"key": "present", "path": "p"}, {"key": "absent", "path": "a"}]}}])
    directory = Path((await manager.setup(pod))["c"])
    assert (directory / "p").read_text() == "yes"
    assert not os.path.lexists(directory / "a")


async def test_refresh_keeps_files_when_a_required_object_is_deleted(
        manager: VolumeManager, objects: Objects) -> None:
    objects.put_secret("s", token=b"abc")
    pod = make_pod([{"name": "s", "secret": {"secretName": "s"}}])
    directory = Path((await manager.setup(pod))["s"])
    del objects.secrets["default", "s"]
    assert await manager.refresh(pod) is False
    assert (directory / "token").read_bytes() == b"abc"


async def test_refresh_empties_an_optional_volume_whose_object_is_deleted(
        manager: VolumeManager, objects: Objects) -> None:
    objects.put_config_map("c", k="v")
    pod = make_pod([{"name": "c", "configMap": {"name": "c", "optional": True}}])
    directory = Path((await manager.setup(pod))["c"])
    del objects.config_maps["default", "c"]
    assert await manager.refresh(pod) is True
    assert not os.path.lexists(directory / "k")


async def test_refresh_before_setup_does_nothing(manager: VolumeManager, objects: Objects,
                                                 tmp_path: Path) -> None:
    objects.put_secret("s", token=b"abc")
    pod = make_pod([{"name": "s", "secret": {"secretName": "s"}}])
    assert await manager.refresh(pod) is False
    assert not (tmp_path / "kubelet").exists()


async def test_secret_is_never_written_outside_a_tmpfs(tmp_path: Path,
                                                       objects: Objects) -> None:
    objects.put_secret("s", token=b"TOP-SECRET")
    manager = VolumeManager(tmp_path / "kubelet", objects,
                            mounter=FakeMounter(fail_silently=True))
    with pytest.raises(VolumeError, match="not a tmpfs mount"):
        await manager.setup(make_pod([{"name": "s", "secret": {"secretName": "s"}}]))
    for dirpath, _, filenames in os.walk(tmp_path):
        for name in filenames:
            assert b"TOP-SECRET" not in (Path(dirpath) / name).read_bytes()


# ---- hostPath ----

def test_host_path_directory_or_create(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    old = os.umask(0o077)
    try:
        check_host_path(str(target), "DirectoryOrCreate")
    finally:
        os.umask(old)
    assert target.is_dir() and mode_of(target) == 0o755
    check_host_path(str(target), "DirectoryOrCreate")  # exists: fine
    check_host_path(str(target), "Directory")


def test_host_path_file_or_create(tmp_path: Path) -> None:
    target = tmp_path / "f"
    check_host_path(str(target), "FileOrCreate")
    assert target.is_file() and target.read_bytes() == b"" and mode_of(target) == 0o644
    target.write_text("keep")
    check_host_path(str(target), "FileOrCreate")
    assert target.read_text() == "keep"
    check_host_path(str(target), "File")
    with pytest.raises(VolumeError, match="No such file or directory"):
        check_host_path(str(tmp_path / "missing" / "f"), "FileOrCreate")


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    try:
        yield path
    finally:
        sock.close()


@pytest.mark.parametrize(("kind", "noun"), [
    ("Directory", "a directory"), ("File", "a file"), ("Socket", "a socket file"),
    ("CharDevice", "a character device"), ("BlockDevice", "a block device"),
    ("DirectoryOrCreate", "a directory"), ("FileOrCreate", "a file"),
])
def test_host_path_type_mismatch(tmp_path: Path, kind: str, noun: str) -> None:
    # Something of the wrong type: a directory for the file-ish types, else a file.
    wrong = tmp_path / "wrong"
    if kind in ("File", "FileOrCreate", "Socket", "CharDevice", "BlockDevice"):
        wrong.mkdir()
    else:
        wrong.write_text("x")
    with pytest.raises(VolumeError) as caught:
        check_host_path(str(wrong), kind)
    assert str(caught.value) == f"hostPath type check failed: {wrong} is not {noun}"


@pytest.mark.parametrize("kind", ["Directory", "File", "Socket", "CharDevice",
                                  "BlockDevice"])
def test_host_path_must_exist(tmp_path: Path, kind: str) -> None:
    with pytest.raises(VolumeError, match="hostPath type check failed: .* is not"):
        check_host_path(str(tmp_path / "missing"), kind)


def test_host_path_special_files(unix_socket: Path) -> None:
    check_host_path(str(unix_socket), "Socket")
    check_host_path("/dev/null", "CharDevice")


def test_host_path_unset_type_checks_nothing(tmp_path: Path) -> None:
    check_host_path(str(tmp_path / "missing"), "")
    assert not (tmp_path / "missing").exists()


def test_host_path_invalid_type(tmp_path: Path) -> None:
    with pytest.raises(VolumeError, match="Pipe is an invalid volume type"):
        check_host_path(str(tmp_path), "Pipe")


async def test_host_path_volume_through_setup(manager: VolumeManager, tmp_path: Path) -> None:
    target = tmp_path / "made"
    pod = make_pod([{"name": "h", "hostPath": {"path": str(target),
                                               "type": "DirectoryOrCreate"}}])
    assert (await manager.setup(pod)) == {"h": str(target)}
    assert target.is_dir()
    with pytest.raises(VolumeError, match="is not a file"):
        await manager.setup(make_pod([{"name": "h", "hostPath": {"path": str(target),
                                                                 "type": "File"}}]))


# ---- container mounts and subPath ----

async def test_mounts_read_only_rules(manager: VolumeManager, objects: Objects) -> None:
    objects.put_secret("s", a=b"1")
    objects.put_config_map("c", b="2")
    pod = make_pod(
        [{"name": "s", "secret": {"secretName": "s"}}, {"name": "c", "configMap": {"name": "c"}},
         {"name": "e", "emptyDir": {}}, {"name": "ro", "emptyDir": {}}],
        [{"name": "s", "mountPath": "/etc/secret"}, {"name": "c", "mountPath": "/etc/conf"},
         {"name": "e", "mountPath": "/scratch"},
         {"name": "ro", "mountPath": "/ro", "readOnly": True}])
    paths = await manager.setup(pod)
    mounts = manager.mounts_for(pod, pod.spec.containers[0], paths)
    assert mounts == [
        Mount(paths["s"], "/etc/secret", True),  # secrets and configMaps: always read-only
        Mount(paths["c"], "/etc/conf", True),
        Mount(paths["e"], "/scratch", False),
        Mount(paths["ro"], "/ro", True),
    ]


async def test_sub_path_of_empty_dir_is_created(manager: VolumeManager) -> None:
    pod = make_pod([{"name": "e", "emptyDir": {}}],
                   [{"name": "e", "mountPath": "/data", "subPath": "app/data"}])
    paths = await manager.setup(pod)
    (mount,) = manager.mounts_for(pod, pod.spec.containers[0], paths)
    assert mount == Mount(os.path.join(os.path.realpath(paths["e"]), "app", "data"), "/data",
                          False)
    assert os.path.isdir(mount.host_path)
    assert mode_of(Path(mount.host_path)) == 0o777  # the volume root's mode


async def test_sub_path_of_config_map_is_the_file(manager: VolumeManager,
                                                  objects: Objects) -> None:
    objects.config_maps["default", "c"] = core_pb2.ConfigMap(data={"nginx.conf": "server {}"})
    pod = make_pod([{"name": "c", "configMap": {"name": "c"}}],
                   [{"name": "c", "mountPath": "/etc/nginx/nginx.conf",
                     "subPath": "nginx.conf"}])
    paths = await manager.setup(pod)
    (mount,) = manager.mounts_for(pod, pod.spec.containers[0], paths)
    assert mount.read_only and mount.container_path == "/etc/nginx/nginx.conf"
    # The key's link is resolved to the file in the current timestamped directory.
    assert mount.host_path == os.path.join(os.path.realpath(paths["c"]),
                                           ts_dir_of(Path(paths["c"])), "nginx.conf")
    assert Path(mount.host_path).read_text() == "server {}"


async def test_sub_path_must_not_escape_the_volume(manager: VolumeManager,
                                                   tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    pod = make_pod([{"name": "e", "emptyDir": {}}],
                   [{"name": "e", "mountPath": "/x", "subPath": "evil/deeper"}])
    paths = await manager.setup(pod)
    # What a container could plant in its emptyDir before a restart.
    os.symlink(outside, os.path.join(paths["e"], "evil"))
    with pytest.raises(VolumeError, match="not within volume path"):
        manager.mounts_for(pod, pod.spec.containers[0], paths)
    assert not (outside / "deeper").exists()


async def test_sub_path_symlink_inside_the_volume_is_fine(manager: VolumeManager) -> None:
    pod = make_pod([{"name": "e", "emptyDir": {}}],
                   [{"name": "e", "mountPath": "/x", "subPath": "link"}])
    paths = await manager.setup(pod)
    os.mkdir(os.path.join(paths["e"], "real"))
    os.symlink("real", os.path.join(paths["e"], "link"))
    (mount,) = manager.mounts_for(pod, pod.spec.containers[0], paths)
    assert mount.host_path == os.path.join(os.path.realpath(paths["e"]), "real")


@pytest.mark.parametrize("sub_path", ["../up", "/abs", "a/../../b"])
async def test_sub_path_must_be_relative(manager: VolumeManager, sub_path: str) -> None:
    pod = make_pod([{"name": "e", "emptyDir": {}}])
    pod.spec.containers[0].volume_mounts.add(name="e", mount_path="/x", sub_path=sub_path)
    paths = await manager.setup(pod)
    with pytest.raises(VolumeError, match="relative path"):
        manager.mounts_for(pod, pod.spec.containers[0], paths)


async def test_mount_of_a_volume_not_set_up(manager: VolumeManager) -> None:
    pod = make_pod([{"name": "e", "emptyDir": {}}], [{"name": "e", "mountPath": "/x"}])
    with pytest.raises(VolumeError, match='volume "e" is not set up'):
        manager.mounts_for(pod, pod.spec.containers[0], {})


# ---- teardown ----

async def test_teardown_unmounts_and_removes(manager: VolumeManager, objects: Objects,
                                             mounter: FakeMounter, tmp_path: Path) -> None:
    objects.put_secret("s", a=b"1")
    host = tmp_path / "host"
    host.mkdir()
    (host / "keep").write_text("host data")
    pod = make_pod([{"name": "s", "secret": {"secretName": "s"}},
                    {"name": "m", "emptyDir": {"medium": "Memory"}},
                    {"name": "e", "emptyDir": {}},
                    {"name": "h", "hostPath": {"path": str(host)}}])
    await manager.setup(pod)
    assert len(mounter.mounts) == 2
    await manager.teardown(UID)
    assert mounter.mounts == []
    assert not (tmp_path / "kubelet" / "pods" / UID).exists()
    assert (host / "keep").read_text() == "host data"  # a hostPath is never removed
    await manager.teardown(UID)  # idempotent


async def test_teardown_refuses_to_delete_through_a_mount(tmp_path: Path,
                                                          objects: Objects) -> None:
    objects.put_secret("s", a=b"1")
    mounter = FakeMounter(refuse_unmount=True)
    manager = VolumeManager(tmp_path / "kubelet", objects, mounter=mounter)
    paths = await manager.setup(make_pod([{"name": "s", "secret": {"secretName": "s"}}]))
    with pytest.raises(VolumeError, match="still mounted"):
        await manager.teardown(UID)
    assert (Path(paths["s"]) / "a").exists()


async def test_orphaned_pod_dirs(manager: VolumeManager) -> None:
    assert manager.orphaned_pod_dirs(set()) == []
    for uid in ("uid-a", "uid-b", "uid-c"):
        await manager.setup(make_pod([{"name": "e", "emptyDir": {}}], uid=uid))
    assert manager.orphaned_pod_dirs({"uid-b"}) == ["uid-a", "uid-c"]
    for uid in manager.orphaned_pod_dirs({"uid-b"}):
        await manager.teardown(uid)
    assert manager.orphaned_pod_dirs(set()) == ["uid-b"]


@pytest.mark.parametrize("uid", ["", "..", "a/b"])
async def test_unsafe_pod_uid_is_rejected(manager: VolumeManager, uid: str) -> None:
    with pytest.raises(VolumeError, match="invalid pod uid"):
        await manager.teardown(uid)
