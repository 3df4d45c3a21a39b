"""`skiff down --purge` removes only what this cluster made: containers and networks by the
node label the kubelet puts on them, mounts under the data directory, and the data
directory only when it holds nothing but what `skiff up` makes there."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster import purge
from cluster.components import ClusterConfig
from cluster.errors import ClusterError
from kubelet import main as kubelet_main
from kubelet.runtime import LABEL_NODE


def test_the_node_label_and_default_node_name_are_the_kubelets() -> None:
    assert purge.NODE_LABEL == LABEL_NODE
    default = kubelet_main.parse_args(["--server", "x:1"]).node_name
    assert purge.node_name(ClusterConfig(Path("/d"))) == default
    assert purge.node_name(ClusterConfig(Path("/d"), node_name="n1")) == "n1"


def test_mounts_under_a_directory_deepest_and_latest_first(tmp_path: Path) -> None:
    root = tmp_path / "data dir"
    mountinfo = tmp_path / "mountinfo"
    escaped = str(root).replace(" ", "\\040")
    mountinfo.write_text("\n".join([
        "22 1 0:21 / / rw shared:1 - ext4 /dev/sda1 rw",
        f"30 22 0:40 / {escaped}/kubelet/pods/a/volumes/secret/s rw - tmpfs tmpfs rw",
        f"31 22 0:41 / {escaped}/kubelet rw - tmpfs tmpfs rw",
        f"32 22 0:42 / {escaped}/kubelet/pods/a/volumes/secret/s rw - tmpfs tmpfs rw",
        f"33 22 0:43 / {escaped}-other/kubelet rw - tmpfs tmpfs rw",
        "",
    ]))
    secret = f"{root}/kubelet/pods/a/volumes/secret/s"
    assert purge.mounts_under(root, mountinfo) == [secret, secret, f"{root}/kubelet"]


def test_a_directory_with_files_skiff_did_not_make_is_not_purged(tmp_path: Path) -> None:
    for name in ("etcd", "logs", "run", "kubelet"):
        (tmp_path / name).mkdir()
    for name in ("token", "config", "cluster.json", ".config.tmp"):
        (tmp_path / name).write_text("")
    purge.check_removable(tmp_path)  # all skiff's
    (tmp_path / "thesis.tex").write_text("")
    with pytest.raises(ClusterError, match=r"holds files skiff up did not make \(thesis.tex\)"):
        purge.check_removable(tmp_path)
    with pytest.raises(ClusterError):
        purge.purge(tmp_path, "n1", lambda *a, **k: None)
    assert (tmp_path / "thesis.tex").exists() and (tmp_path / "etcd").exists()


def test_what_is_left_in_one_line() -> None:
    left = purge.Leftovers("n1", ["a", "b"], 1, [], ["/d/kubelet/pods/u/volumes/secret/s"])
    assert left.anything()
    assert left.describe() == ("2 container(s) of node n1's pods (1 running) and 1 volume "
                               "mount(s) (Secrets on tmpfs) at /d/kubelet/pods/u/volumes/"
                               "secret/s")
    assert not purge.Leftovers("n1").anything()
