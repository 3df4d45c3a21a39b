"""The client config file: saved by `skiff up`, loaded by every client, in one format."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from skiff import pki
from skiff.client.config import ClientConfig, ConfigError


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


def test_a_tls_config_holds_the_ca_and_the_client_certificate(tmp_path: Path) -> None:
    ca = pki.new_ca()
    admin = pki.issue(ca, common_name="admin", organizations=["system:masters"])
    path = tmp_path / "config"
    ClientConfig(server="https://10.0.0.1:6443", ca=ca.cert, cert=admin.cert,
                 key=admin.key).save(path)
    loaded = ClientConfig.load(path)
    assert (loaded.ca, loaded.cert, loaded.key) == (ca.cert, admin.cert, admin.key)
    assert loaded.address == "10.0.0.1:6443" and loaded.credentials().tls
    # --server host:port against a TLS cluster's config stays TLS.
    assert ClientConfig.load(path, "127.0.0.1:7").server == "https://127.0.0.1:7"


def test_a_tls_server_without_a_ca_or_with_broken_data_is_a_clear_error(tmp_path: Path
                                                                       ) -> None:
    with pytest.raises(ConfigError, match="holds no certificate-authority-data"):
        ClientConfig(server="https://a:1").credentials()
    path = tmp_path / "config"
    path.write_text("server: https://a:1\ncertificate-authority-data: '%%%'\n")
    with pytest.raises(ConfigError, match="certificate-authority-data is not base64"):
        ClientConfig.load(path)
