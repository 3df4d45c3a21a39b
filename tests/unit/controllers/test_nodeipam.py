"""Node IPAM's bookkeeping, with the facts of Kubernetes' cidrset tests: the next free
block (round robin from the last one handed out), marking blocks taken, releasing them,
exhaustion, mask sizes; and the controller's reading of a node (its podCIDRs, its own
addresses inside the range) and the controller manager's flags. IPv4 only, as Skiff is."""

from __future__ import annotations

import re
from ipaddress import IPv4Network

import pytest

from controllers.common.cidrset import CIDRSet, CIDRSetError, OutOfRange, RangeExhausted
from controllers.main import CONTROLLERS, component_config, parse_args
from controllers.nodes.nodeipam import NodeIpamController, address_in_range, pod_cidrs
from skiff.api.v1 import core_pb2


def net(text: str) -> IPv4Network:
    return IPv4Network(text)


def allocate(cidrs: CIDRSet, count: int) -> list[str]:
    return [str(cidrs.allocate_next()) for _ in range(count)]


# ---- the next free block


def test_blocks_are_handed_out_in_order_from_the_start_of_the_range() -> None:
    cidrs = CIDRSet.parse("10.244.0.0/16", 24)
    assert cidrs.capacity == 256
    assert allocate(cidrs, 3) == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    assert cidrs.in_use == 3


@pytest.mark.parametrize(("cluster", "mask", "expected"), [
    ("127.123.234.0/28", 30, ["127.123.234.0/30", "127.123.234.4/30", "127.123.234.8/30",
                              "127.123.234.12/30"]),
    ("10.0.0.0/15", 16, ["10.0.0.0/16", "10.1.0.0/16"]),
    ("192.168.0.0/23", 24, ["192.168.0.0/24", "192.168.1.0/24"]),
    ("10.244.0.0/24", 24, ["10.244.0.0/24"]),  # one block: the whole range
    ("10.244.0.0/30", 32, ["10.244.0.0/32", "10.244.0.1/32", "10.244.0.2/32",
                           "10.244.0.3/32"]),
])
def test_every_block_of_a_range_then_exhausted(cluster: str, mask: int,
                                               expected: list[str]) -> None:
    cidrs = CIDRSet.parse(cluster, mask)
    assert cidrs.capacity == len(expected)
    assert allocate(cidrs, len(expected)) == expected
    with pytest.raises(RangeExhausted, match=f"no /{mask} is left in {cluster}"):
        cidrs.allocate_next()


def test_a_cluster_cidr_with_host_bits_is_its_network() -> None:
    cidrs = CIDRSet.parse("10.244.7.9/16", 24)
    assert cidrs.cluster == net("10.244.0.0/16")
    assert allocate(cidrs, 1) == ["10.244.0.0/24"]


# ---- marking, releasing


def test_marked_blocks_are_skipped() -> None:
    cidrs = CIDRSet.parse("10.244.0.0/16", 24)
    cidrs.occupy(net("10.244.0.0/24"))
    cidrs.occupy(net("10.244.2.0/24"))
    assert allocate(cidrs, 2) == ["10.244.1.0/24", "10.244.3.0/24"]
    cidrs.occupy(net("10.244.0.0/24"))  # marking twice counts once
    assert cidrs.in_use == 4


def test_a_larger_cidr_marks_every_block_it_covers_and_a_smaller_one_its_block() -> None:
    cidrs = CIDRSet.parse("10.244.0.0/16", 24)
    cidrs.occupy(net("10.244.0.0/23"))  # blocks 0 and 1
    cidrs.occupy(net("10.244.2.128/25"))  # inside block 2
    assert cidrs.in_use == 3
    assert cidrs.is_used(net("10.244.1.0/24")) and cidrs.is_used(net("10.244.2.0/24"))
    assert allocate(cidrs, 1) == ["10.244.3.0/24"]
    cidrs.occupy(net("10.0.0.0/8"))  # holds the whole range
    assert cidrs.in_use == 256
    with pytest.raises(RangeExhausted):
        cidrs.allocate_next()


def test_a_released_block_is_free_again_after_the_others_had_their_turn() -> None:
    cidrs = CIDRSet.parse("10.244.0.0/22", 24)  # four blocks
    assert allocate(cidrs, 2) == ["10.244.0.0/24", "10.244.1.0/24"]
    cidrs.release(net("10.244.0.0/24"))
    assert not cidrs.is_used(net("10.244.0.0/24"))
    # Round robin (Kubernetes' nextCandidate): the freed block comes after 2 and 3.
    assert allocate(cidrs, 3) == ["10.244.2.0/24", "10.244.3.0/24", "10.244.0.0/24"]
    with pytest.raises(RangeExhausted):
        cidrs.allocate_next()
    cidrs.release(net("10.244.1.0/24"))
    cidrs.release(net("10.244.1.0/24"))  # releasing twice is harmless
    assert cidrs.in_use == 3
    assert allocate(cidrs, 1) == ["10.244.1.0/24"]


def test_an_exhausted_range_hands_out_a_block_once_one_is_released() -> None:
    cidrs = CIDRSet.parse("10.245.0.0/23", 24)
    allocate(cidrs, 2)
    with pytest.raises(RangeExhausted):
        cidrs.allocate_next()
    cidrs.release(net("10.245.1.0/24"))
    assert allocate(cidrs, 1) == ["10.245.1.0/24"]


@pytest.mark.parametrize("outside", ["10.245.0.0/24", "192.168.0.0/16", "10.243.255.0/24"])
def test_a_cidr_outside_the_range_is_refused(outside: str) -> None:
    cidrs = CIDRSet.parse("10.244.0.0/16", 24)
    assert not cidrs.overlaps(net(outside))
    with pytest.raises(OutOfRange, match="outside the cluster range 10.244.0.0/16"):
        cidrs.occupy(net(outside))
    with pytest.raises(OutOfRange):
        cidrs.release(net(outside))
    assert cidrs.in_use == 0


# ---- what makes a set


@pytest.mark.parametrize(("cluster", "mask", "problem"), [
    ("10.244.0.0/16", 8, "does not fit the cluster range 10.244.0.0/16"),
    ("10.244.0.0/16", 33, "between 16 and 32"),
    ("10.244.0.0", 24, "not a valid CIDR"),
    ("10.244.0.0/40", 24, "not a valid CIDR"),
    ("banana", 24, "not a valid CIDR"),
    ("fd00:10:244::/56", 64, "only IPv4 pod ranges are supported"),
])
def test_a_set_that_cannot_work_is_refused(cluster: str, mask: int, problem: str) -> None:
    with pytest.raises(CIDRSetError, match=problem):
        CIDRSet.parse(cluster, mask)


# ---- what the controller reads of a node


def node(name: str = "n1", *, pod_cidr: str = "", cidrs: tuple[str, ...] = (),
         addresses: dict[str, str] | None = None) -> core_pb2.Node:
    n = core_pb2.Node()
    n.metadata.name = name
    n.spec.pod_cidr = pod_cidr
    n.spec.pod_cidrs.extend(cidrs)
    for type_, address in (addresses or {}).items():
        n.status.addresses.add(type=type_, address=address)
    return n


def test_pod_cidrs_prefer_the_list_and_fall_back_to_the_single_field() -> None:
    assert pod_cidrs(node()) == []
    assert pod_cidrs(node(pod_cidr="10.244.3.0/24")) == ["10.244.3.0/24"]
    assert pod_cidrs(node(pod_cidr="10.244.3.0/24", cidrs=("10.244.3.0/24",))) == [
        "10.244.3.0/24"]


def test_a_host_address_inside_the_range_is_found() -> None:
    cidrs = CIDRSet.parse("10.244.0.0/16", 24)
    clash = node(addresses={"Hostname": "10.244.0.1", "InternalIP": "10.244.9.7"})
    found = address_in_range(clash, cidrs)
    assert found is not None and (found.type, found.address) == ("InternalIP", "10.244.9.7")
    assert address_in_range(node(addresses={"InternalIP": "192.168.1.5",
                                            "ExternalIP": "fd00::1"}), cidrs) is None
    assert address_in_range(node(addresses={"ExternalIP": "10.244.0.1"}), cidrs) is not None


# ---- the controller manager's flags


def test_the_flags_default_as_skiff_runs_its_own_pod_network() -> None:
    config = component_config(parse_args([]))
    assert (config.cluster_cidr, config.node_cidr_mask_size,
            config.allocate_node_cidrs) == ("10.244.0.0/16", 24, True)
    assert CONTROLLERS["nodeipam"] == (NodeIpamController,)


@pytest.mark.parametrize(("flag", "expected"), [
    (["--allocate-node-cidrs=false"], False), (["--allocate-node-cidrs", "false"], False),
    (["--allocate-node-cidrs"], True), (["--allocate-node-cidrs=true"], True),
])
def test_allocate_node_cidrs_reads_as_kubernetes_flags_do(flag: list[str],
                                                         expected: bool) -> None:
    assert parse_args(flag).allocate_node_cidrs is expected


@pytest.mark.parametrize(("flags", "message"), [
    (["--node-cidr-mask-size", "12"], "--node-cidr-mask-size 12: a node block of /12 does "
                                      "not fit the cluster range 10.244.0.0/16"),
    (["--cluster-cidr", "fd00::/64"], "--cluster-cidr: 'fd00::/64' is IPv6"),
])
def test_a_pod_range_that_cannot_work_stops_the_controller_manager(
        flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=re.escape(message)):
        component_config(parse_args(flags))
    component_config(parse_args([*flags, "--allocate-node-cidrs=false"]))  # not used: fine
