"""`skiff cluster create` refuses, before it makes anything, what it cannot do."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster import multinode
from cluster.errors import ClusterError


def test_a_skiff_not_run_from_a_checkout_cannot_make_clusters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As from a wheel: the packages in site-packages, no pyproject.toml or deploy/ beside.
    monkeypatch.setattr(multinode, "REPO", tmp_path)
    with pytest.raises(ClusterError, match=r"from a checkout, with its deploy/ scripts; this "
                       rf"Skiff runs from {tmp_path}, which is not one"):
        multinode.create("demo", 1, config_path=tmp_path / "config", say=print)
    assert not (tmp_path / "config").exists()


@pytest.mark.parametrize("name", ["Demo", "-demo", "demo_1", "x" * 43])
def test_a_name_that_cannot_be_a_node_name_part_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="must be lower case letters"):
        multinode.create(name, 1, config_path=tmp_path / "config", say=print)
