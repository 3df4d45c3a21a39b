"""skiff-dns's command line (cluster.components.dns_command) is one its own parser takes."""

from __future__ import annotations

import sys

from cluster.components import dns_command
from clusterdns.main import _upstreams, parse_args


def test_the_command_line_builder_and_the_daemon_agree() -> None:
    argv = dns_command(config="/etc/skiff/dns.conf", bind_address="10.96.0.10", port=53,
                       cluster_domain="kube.test", resolv_conf="/r",
                       upstreams=["127.0.0.1:5353", "[::1]:53"])
    assert argv[:3] == [sys.executable, "-m", "clusterdns.main"]
    args = parse_args(argv[3:])
    assert (args.config, args.bind_address, args.port, args.cluster_domain,
            args.resolv_conf) == ("/etc/skiff/dns.conf", "10.96.0.10", 53, "kube.test", "/r")
    assert _upstreams(args) == [("127.0.0.1", 5353), ("::1", 53)]


def test_production_defaults() -> None:
    args = parse_args([])
    assert (args.bind_address, args.port, args.cluster_domain, args.resolv_conf) == (
        "10.96.0.10", 53, "cluster.local", "/etc/resolv.conf")


def test_cleanup_removes_the_address_given_or_every_one_of_skiff_dns() -> None:
    assert parse_args(["--cleanup"]).cleanup_only is None
    assert parse_args(["--cleanup", "--bind-address", "10.100.1.2"]).cleanup_only == \
        "10.100.1.2"
