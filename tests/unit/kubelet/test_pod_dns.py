"""A pod's resolv.conf as Kubernetes' kubelet forms it (pkg/kubelet/network/dns/dns_test.go:
TestGetPodDNSType, TestGetPodDNS, TestGetPodDNSCustom, TestMergeDNSOptions,
TestFormSearchLineForPod)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet.dns import ClusterDns, host_dns, parse_resolv_conf, pod_dns
from kubelet.runtime import DnsConfig
from skiff.api.v1 import core_pb2

HOST = DnsConfig(("192.0.2.1",), ("host.example", "corp.example"), ("attempts:2",))
CLUSTER = ClusterDns(servers=("10.96.0.10",), domain="cluster.local")


def pod(policy: str = "ClusterFirst", *, host_network: bool = False,
        config: dict[str, list[str]] | None = None,
        options: list[tuple[str, str | None]] | None = None) -> core_pb2.Pod:
    made = core_pb2.Pod()
    made.metadata.name, made.metadata.namespace = "p", "team"
    made.spec.dns_policy = policy
    made.spec.host_network = host_network
    if config is not None or options is not None:
        made.spec.dns_config.SetInParent()
        made.spec.dns_config.nameservers.extend((config or {}).get("nameservers", []))
        made.spec.dns_config.searches.extend((config or {}).get("searches", []))
        for name, value in options or []:
            option = made.spec.dns_config.options.add(name=name)
            if value is not None:
                option.value = value
    return made


def test_cluster_first_gets_the_cluster_dns_search_path_and_ndots() -> None:
    got = pod_dns(pod(), CLUSTER, HOST)
    assert got.custom and not got.warnings
    assert got.config == DnsConfig(
        ("10.96.0.10",), ("team.svc.cluster.local", "svc.cluster.local", "cluster.local",
                          "host.example", "corp.example"), ("ndots:5",))


@pytest.mark.parametrize(("policy", "host_network", "clustered"), [
    ("ClusterFirst", False, True),
    ("ClusterFirst", True, False),  # a hostNetwork pod falls back to Default
    ("ClusterFirstWithHostNet", True, True),
    ("ClusterFirstWithHostNet", False, True),
    ("Default", False, False),
    ("Default", True, False),
])
def test_the_policy_decides_between_the_cluster_and_the_node(
        policy: str, host_network: bool, clustered: bool) -> None:
    got = pod_dns(pod(policy, host_network=host_network), CLUSTER, HOST)
    assert got.config.servers == (("10.96.0.10",) if clustered else HOST.servers)
    assert got.custom is clustered  # the node's DNS unchanged: the runtime's own file


def test_cluster_first_without_a_cluster_dns_server_gets_the_nodes() -> None:
    got = pod_dns(pod(), ClusterDns(), HOST)
    assert got.config == HOST and not got.custom


def test_none_takes_the_pods_dns_config_alone() -> None:
    got = pod_dns(pod("None", config={"nameservers": ["203.0.113.1"],
                                      "searches": ["my.dns.search.suffix"]},
                      options=[("ndots", "2"), ("edns0", None)]), CLUSTER, HOST)
    assert got.config == DnsConfig(("203.0.113.1",), ("my.dns.search.suffix",),
                                   ("ndots:2", "edns0"))
    assert got.config.resolv_conf() == ("nameserver 203.0.113.1\nsearch my.dns.search.suffix"
                                        "\noptions ndots:2 edns0\n")


def test_a_dns_config_is_appended_without_duplicates_and_its_options_win() -> None:
    got = pod_dns(pod(config={"nameservers": ["10.96.0.10", "203.0.113.1"],
                              "searches": ["svc.cluster.local", "extra.example"]},
                      options=[("ndots", "2"), ("single-request", None)]), CLUSTER, HOST)
    assert got.config.servers == ("10.96.0.10", "203.0.113.1")
    assert got.config.searches[-1] == "extra.example"
    assert got.config.searches.count("svc.cluster.local") == 1
    assert got.config.options == ("ndots:2", "single-request")


def test_limits_cut_the_lists_and_say_what_was_applied() -> None:
    got = pod_dns(pod(config={"nameservers": ["203.0.113.1", "203.0.113.2", "203.0.113.3"],
                              "searches": [f"s{i}.example" for i in range(40)]}),
                  CLUSTER, HOST)
    assert got.config.servers == ("10.96.0.10", "203.0.113.1", "203.0.113.2")
    assert len(got.config.searches) == 32
    assert got.warnings == (
        ("DNSConfigForming", "Nameserver limits were exceeded, some nameservers have been "
         "omitted, the applied nameserver line is: 10.96.0.10 203.0.113.1 203.0.113.2"),
        ("DNSConfigForming", "Search Line limits were exceeded, some search paths have been "
         f"omitted, the applied search line is: {' '.join(got.config.searches)}"))


def test_cluster_first_without_cluster_dns_falls_back_and_says_so() -> None:
    got = pod_dns(pod(), ClusterDns(), HOST)
    assert got.config == HOST
    assert got.warnings == (("MissingClusterDNS", 'pod: "p_team()". kubelet does '
                             "not have ClusterDNS IP configured and cannot create Pod using "
                             '"ClusterFirst" policy. Falling back to "Default" policy.'),)


def test_resolv_conf_parsing_and_the_nodes_loopback_stubs(tmp_path: Path) -> None:
    text = ("# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.1 ; comment\n"
            "domain old.example\nsearch a.example b.example. .\noptions ndots:1 edns0\n"
            "options ndots:3\n")
    assert parse_resolv_conf(text) == DnsConfig(
        ("127.0.0.53", "192.0.2.1"), ("a.example", "b.example"), ("ndots:3", "edns0"))
    path = tmp_path / "resolv.conf"
    path.write_text(text)
    assert host_dns(str(path)).servers == ("192.0.2.1",)  # a pod cannot reach the stub
    assert host_dns("") == DnsConfig(("127.0.0.1",), (".",), ())
