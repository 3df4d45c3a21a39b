"""The client config file: saved by `skiff up`, loaded by every client, in one format: a
kubeconfig with contexts (kubectl reads it: tests/unit/cli/test_config_contexts.py)."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
import yaml

from skiff import pki
from skiff.client.config import ClientConfig, ConfigError, Context, Kubeconfig


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


def test_the_file_is_a_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "config"
    ClientConfig(server="https://10.0.0.1:6443", token="t", ca=b"CA", cert=b"C", key=b"K"
                 ).save(path)
    b64 = {v: base64.b64encode(v).decode() for v in (b"CA", b"C", b"K")}
    assert yaml.safe_load(path.read_text()) == {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "default", "cluster": {
            "server": "https://10.0.0.1:6443", "certificate-authority-data": b64[b"CA"]}}],
        "users": [{"name": "default", "user": {
            "client-certificate-data": b64[b"C"], "client-key-data": b64[b"K"],
            "token": "t"}}],
        "contexts": [{"name": "default", "context": {"cluster": "default",
                                                     "user": "default"}}],
        "current-context": "default"}


def test_a_flat_file_of_earlier_versions_reads_as_the_context_default(tmp_path: Path
                                                                       ) -> None:
    path = tmp_path / "config"
    path.write_text("server: 10.0.0.1:6443\ntoken: s3cret\n")
    assert ClientConfig.load(path) == ClientConfig(server="10.0.0.1:6443", token="s3cret")
    assert ClientConfig.load(path, context="default").token == "s3cret"
    assert Kubeconfig.load(path).contexts() == [Context("default", "default", "default")]


def test_contexts_are_added_beside_the_others_and_one_is_current(tmp_path: Path) -> None:
    path = tmp_path / "config"
    Kubeconfig().add_context("a", ClientConfig(server="a:1", token="ta")).save(path)
    Kubeconfig.load(path).add_context("b", ClientConfig(server="b:2"),
                                      make_current=False).save(path)
    assert ClientConfig.load(path).server == "a:1"  # still current
    assert ClientConfig.load(path, context="b").server == "b:2"
    assert ClientConfig.load(path, "c:3", context="b").server == "c:3"
    config = Kubeconfig.load(path)
    config.use("b")
    config.add_context("a", ClientConfig(server="a:11"), make_current=False).save(path)
    assert [c.name for c in Kubeconfig.load(path).contexts()] == ["a", "b"]
    assert ClientConfig.load(path) == ClientConfig(server="b:2")
    assert ClientConfig.load(path, context="a") == ClientConfig(server="a:11")  # replaced
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_what_skiff_does_not_use_in_a_users_kubeconfig_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "config"
    theirs = {"apiVersion": "v1", "kind": "Config", "preferences": {"colors": True},
              "clusters": [{"name": "prod", "cluster": {"server": "https://prod:6443",
                                                        "insecure-skip-tls-verify": True}}],
              "users": [{"name": "me", "user": {"exec": {"command": "get-token"}}}],
              "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "me",
                                                        "namespace": "web"}}],
              "current-context": "prod"}
    path.write_text(yaml.safe_dump(theirs))
    Kubeconfig.load_or_new(path).add_context("skiff", ClientConfig(server="s:1")).save(path)
    saved = yaml.safe_load(path.read_text())
    assert saved["current-context"] == "skiff"
    for section in ("clusters", "users", "contexts"):
        assert saved[section][0] == theirs[section][0]  # type: ignore[index]
    assert saved["preferences"] == {"colors": True}
    assert Kubeconfig.load(path).contexts()[0] == Context("prod", "prod", "me", "web")


def test_an_unknown_or_unset_context_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config"
    config = Kubeconfig().add_context("a", ClientConfig()).add_context("b", ClientConfig())
    config.save(path)
    with pytest.raises(ConfigError, match=r'no context "c" in .*config \(known: a, b\)'):
        ClientConfig.load(path, context="c")
    with pytest.raises(ConfigError, match=r'no context "c" .*\(known: a, b\)'):
        config.use("c")
    document = config.document
    del document["current-context"]
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=r"no current-context: choose one with `skiff "
                                          r"config use-context NAME` or --context"):
        ClientConfig.load(path)
    # A context naming a cluster that is not there.
    document["contexts"][0]["context"]["cluster"] = "gone"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match='context "a" names the cluster "gone"'):
        ClientConfig.load(path, context="a")


def test_view_omits_the_keys_data_and_tokens_as_kubectl_does() -> None:
    config = Kubeconfig().add_context("z", ClientConfig(server="https://z:1", ca=b"CA",
                                                        cert=b"C", key=b"K", token="t"))
    config.add_context("a", ClientConfig(server="a:1"))
    view = config.view()
    assert [c["name"] for c in view["clusters"]] == ["a", "z"]
    assert view["clusters"][1]["cluster"]["certificate-authority-data"] == "DATA+OMITTED"
    assert view["users"][1]["user"] == {"client-certificate-data": "DATA+OMITTED",
                                        "client-key-data": "DATA+OMITTED",
                                        "token": "REDACTED"}
    assert config.view(raw=True)["users"][1]["user"]["token"] == "t"


def test_removing_a_context_takes_its_cluster_and_user_and_leaves_the_others() -> None:
    config = (Kubeconfig().add_context("a", ClientConfig(server="127.0.0.1:1"))
              .add_context("b", ClientConfig(server="127.0.0.1:2")))
    assert config.current_context == "b"
    assert config.remove_context("b") is True
    assert [c.name for c in config.contexts()] == ["a"]
    assert [e["name"] for e in config.document["clusters"]] == ["a"]
    assert [e["name"] for e in config.document["users"]] == ["a"]
    assert config.current_context is None
    assert config.remove_context("b") is False
    assert config.resolve("a").server == "127.0.0.1:1"
