"""The client config file: saved by `skiff up`, loaded by every client, in one format."""

from __future__ import annotations

import stat
from pathlib import Path

from skiff.client.config import ClientConfig


def test_a_saved_config_loads_back_and_only_its_owner_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "config"
    ClientConfig(server="10.0.0.1:6443", token="s3cret").save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ClientConfig.load(path) == ClientConfig(server="10.0.0.1:6443", token="s3cret")
    assert ClientConfig.load(path, "127.0.0.1:1").server == "127.0.0.1:1"


def test_saving_again_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("server: old:1\ntoken: old\n")
    path.chmod(0o644)
    ClientConfig(server="new:2").save(path)
    assert ClientConfig.load(path) == ClientConfig(server="new:2", token=None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["config"]
