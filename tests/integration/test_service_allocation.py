"""Service cluster IPs and node ports through the real apiserver: allocated, refused with
Kubernetes' words when taken or out of range, nothing stored after a refusal, and released
on delete, on a failed create and on a type change."""

from __future__ import annotations

import ipaddress
import random

import pytest

from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client

# Tests share one apiserver (and so one service range): each picks its own values.
_rng = random.Random()


def _free_ip() -> str:
    # 10.96.0.0/12 ends at 10.111.255.255; stay clear of the first addresses.
    return f"10.{_rng.randint(100, 110)}.{_rng.randint(0, 255)}.{_rng.randint(1, 254)}"


def _free_node_port() -> int:
    return _rng.randint(30000, 32767)


def service(name: str, ns: str, *, type_: str = "ClusterIP", cluster_ip: str = "",
            node_port: int = 0) -> core_pb2.Service:
    svc = core_pb2.Service()
    svc.metadata.name, svc.metadata.namespace = name, ns
    svc.spec.type = type_
    svc.spec.selector["app"] = "web"
    svc.spec.cluster_ip = cluster_ip
    svc.spec.ports.add(port=80, node_port=node_port)
    return svc


async def _absent(client: Client, name: str, ns: str) -> None:
    with pytest.raises(errors.NotFound):
        await client.get(core_pb2.Service, name, ns)


async def test_a_cluster_ip_is_allocated_from_the_range_or_the_one_asked(
        client: Client, ns: str) -> None:
    picked = await client.create(service("picked", ns))
    assert ipaddress.ip_address(picked.spec.cluster_ip) in ipaddress.ip_network("10.96.0.0/12")
    assert list(picked.spec.cluster_ips) == [picked.spec.cluster_ip]
    ip = _free_ip()
    asked = await client.create(service("asked", ns, cluster_ip=ip))
    assert asked.spec.cluster_ip == ip
    assert (await client.get(core_pb2.Service, "asked", ns)).spec.cluster_ip == ip


async def test_a_taken_ip_is_refused_and_nothing_stored(client: Client, ns: str) -> None:
    ip = _free_ip()
    await client.create(service("first", ns, cluster_ip=ip))
    with pytest.raises(errors.Invalid) as refused:
        await client.create(service("second", ns, cluster_ip=ip))
    assert str(refused.value).endswith(
        f'Service "second" is invalid: spec.clusterIPs: Invalid value: []string{{"{ip}"}}: '
        f"failed to allocate IP {ip}: provided IP is already allocated")
    await _absent(client, "second", ns)


async def test_an_ip_out_of_range_is_refused_and_nothing_stored(
        client: Client, ns: str) -> None:
    with pytest.raises(errors.Invalid) as refused:
        await client.create(service("outside", ns, cluster_ip="10.0.0.5"))
    assert str(refused.value).endswith(
        'Service "outside" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.5"}: '
        "failed to allocate IP 10.0.0.5: the provided IP (10.0.0.5) is not in the valid "
        "range. The range of valid IPs is 10.96.0.0/12")
    await _absent(client, "outside", ns)


async def test_delete_releases_the_ip(client: Client, ns: str) -> None:
    ip = _free_ip()
    await client.create(service("old", ns, cluster_ip=ip))
    await client.delete(core_pb2.Service, "old", ns)
    reused = await client.create(service("new", ns, cluster_ip=ip))
    assert reused.spec.cluster_ip == ip


async def test_a_failed_create_holds_nothing(client: Client, ns: str) -> None:
    port, ip = _free_node_port(), _free_ip()
    await client.create(service("holder", ns, type_="NodePort", node_port=port))
    with pytest.raises(errors.Invalid) as refused:
        await client.create(service("loser", ns, type_="NodePort", cluster_ip=ip,
                                    node_port=port))
    assert str(refused.value).endswith(
        f'Service "loser" is invalid: spec.ports[0].nodePort: Invalid value: {port}: '
        "provided port is already allocated")
    await _absent(client, "loser", ns)
    # The IP the refused Service asked for was not kept for it.
    assert (await client.create(service("winner", ns, cluster_ip=ip))).spec.cluster_ip == ip


async def test_node_ports_allocated_chosen_refused_and_released(
        client: Client, ns: str) -> None:
    picked = await client.create(service("picked", ns, type_="NodePort"))
    assert 30000 <= picked.spec.ports[0].node_port <= 32767
    port = _free_node_port()
    chosen = await client.create(service("chosen", ns, type_="NodePort", node_port=port))
    assert chosen.spec.ports[0].node_port == port
    with pytest.raises(errors.Invalid) as outside:
        await client.create(service("outside", ns, type_="NodePort", node_port=8080))
    assert str(outside.value).endswith(
        "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid "
        "range. The range of valid ports is 30000-32767")
    await _absent(client, "outside", ns)
    await client.delete(core_pb2.Service, "chosen", ns)
    again = await client.create(service("again", ns, type_="NodePort", node_port=port))
    assert again.spec.ports[0].node_port == port


async def test_headless_and_external_name_have_no_ip(client: Client, ns: str) -> None:
    headless = await client.create(service("headless", ns, cluster_ip="None"))
    assert headless.spec.cluster_ip == "None"
    external = core_pb2.Service()
    external.metadata.name, external.metadata.namespace = "db", ns
    external.spec.type, external.spec.external_name = "ExternalName", "db.example.com"
    stored = await client.create(external)
    assert stored.spec.cluster_ip == "" and not stored.spec.cluster_ips
    bad = core_pb2.Service()
    bad.CopyFrom(external)
    bad.metadata.name, bad.spec.external_name = "bad", "not a host"
    with pytest.raises(errors.Invalid, match="spec.externalName: Invalid value"):
        await client.create(bad)
    await _absent(client, "bad", ns)


async def test_type_changes_keep_or_release_what_was_allocated(
        client: Client, ns: str) -> None:
    svc = await client.create(service("web", ns))
    ip = svc.spec.cluster_ip
    svc.spec.type = "NodePort"
    as_node_port = await client.update(svc)
    assert as_node_port.spec.cluster_ip == ip
    port = as_node_port.spec.ports[0].node_port
    assert 30000 <= port <= 32767
    as_node_port.spec.type = "ClusterIP"
    as_cluster_ip = await client.update(as_node_port)
    assert as_cluster_ip.spec.cluster_ip == ip and as_cluster_ip.spec.ports[0].node_port == 0
    # The node port went back to the pool.
    taker = await client.create(service("taker", ns, type_="NodePort", node_port=port))
    assert taker.spec.ports[0].node_port == port
    as_cluster_ip.spec.type, as_cluster_ip.spec.external_name = "ExternalName", "example.com"
    as_external = await client.update(as_cluster_ip)
    assert as_external.spec.cluster_ip == ""
    # So did the IP.
    assert (await client.create(service("ip-taker", ns, cluster_ip=ip))).spec.cluster_ip == ip


async def test_affinity_and_not_ready_addresses_are_stored(client: Client, ns: str) -> None:
    svc = service("sticky", ns)
    svc.spec.session_affinity = "ClientIP"
    svc.spec.publish_not_ready_addresses = True
    stored = await client.get(core_pb2.Service, (await client.create(svc)).metadata.name, ns)
    assert stored.spec.session_affinity_config.client_ip.timeout_seconds == 10800
    assert stored.spec.publish_not_ready_addresses
    svc = service("too-sticky", ns)
    svc.spec.session_affinity = "ClientIP"
    svc.spec.session_affinity_config.client_ip.timeout_seconds = 90000
    with pytest.raises(errors.Invalid, match=(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 90000: "
            "must be greater than 0 and less than 86400")):
        await client.create(svc)
    await _absent(client, "too-sticky", ns)


async def test_ports_of_one_number_share_a_node_port_and_protocols_do_not_split_them(
        client: Client, ns: str) -> None:
    dns = service("dns", ns, type_="NodePort")
    del dns.spec.ports[:]
    dns.spec.ports.add(name="dns-udp", port=53, protocol="UDP")
    dns.spec.ports.add(name="dns-tcp", port=53, protocol="TCP")
    created = await client.create(dns)
    udp, tcp = (p.node_port for p in created.spec.ports)
    assert udp == tcp and 30000 <= udp <= 32767
    # Kubernetes keeps one set of node ports, whatever the protocol.
    other = service("other", ns, type_="NodePort", node_port=udp)
    other.spec.ports[0].protocol = "UDP"
    with pytest.raises(errors.Invalid, match=(
            rf"spec.ports\[0\].nodePort: Invalid value: {udp}: provided port is already "
            "allocated")):
        await client.create(other)
    await client.delete(core_pb2.Service, "dns", ns)
    assert (await client.create(other)).spec.ports[0].node_port == udp


async def test_an_update_to_a_taken_node_port_is_invalid_and_changes_nothing(
        client: Client, ns: str) -> None:
    taken = _free_node_port()
    await client.create(service("holder", ns, type_="NodePort", node_port=taken))
    svc = await client.create(service("mover", ns, type_="NodePort"))
    own = svc.spec.ports[0].node_port
    svc.spec.ports[0].node_port = taken
    with pytest.raises(errors.Invalid, match=(
            rf"spec.ports\[0\].nodePort: Invalid value: {taken}: provided port is already "
            "allocated")):
        await client.update(svc)
    assert (await client.get(core_pb2.Service, "mover", ns)).spec.ports[0].node_port == own


async def test_headless_services_get_kubernetes_families(client: Client, ns: str) -> None:
    with_selector = await client.create(service("sel", ns, cluster_ip="None"))
    assert list(with_selector.spec.cluster_ips) == ["None"]
    assert with_selector.spec.ip_family_policy == "SingleStack"
    assert list(with_selector.spec.ip_families) == ["IPv4"]
    selectorless = service("nosel", ns, cluster_ip="None")
    selectorless.spec.ClearField("selector")
    created = await client.create(selectorless)
    assert created.spec.ip_family_policy == "RequireDualStack"
    assert list(created.spec.ip_families) == ["IPv4", "IPv6"]


async def test_the_cluster_ip_may_not_change(client: Client, ns: str) -> None:
    svc = await client.create(service("fixed", ns))
    ip, other = svc.spec.cluster_ip, _free_ip()
    svc.spec.cluster_ip = other
    del svc.spec.cluster_ips[:]
    with pytest.raises(errors.Invalid) as refused:
        await client.update(svc)
    assert str(refused.value).endswith(
        f'spec.clusterIPs[0]: Invalid value: []string{{"{other}"}}: may not change once set')
    assert (await client.get(core_pb2.Service, "fixed", ns)).spec.cluster_ip == ip
    # Nothing was held for the refused address.
    assert (await client.create(service("taker", ns, cluster_ip=other))).spec.cluster_ip == other


async def test_external_name_to_cluster_ip_gets_an_address(client: Client, ns: str) -> None:
    external = core_pb2.Service()
    external.metadata.name, external.metadata.namespace = "later", ns
    external.spec.type, external.spec.external_name = "ExternalName", "db.example.com"
    stored = await client.create(external)
    stored.spec.type, stored.spec.external_name = "ClusterIP", ""
    stored.spec.selector["app"] = "db"
    stored.spec.ports.add(port=5432)
    became = await client.update(stored)
    ip = became.spec.cluster_ip
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")
    assert list(became.spec.cluster_ips) == [ip]
    # It is held: nobody else may have it.
    with pytest.raises(errors.Invalid, match="provided IP is already allocated"):
        await client.create(service("copy", ns, cluster_ip=ip))


async def test_a_dry_run_shows_the_allocation_and_holds_nothing(
        client: Client, ns: str) -> None:
    ip = _free_ip()
    shown = await client.create(service("dry", ns, type_="NodePort"), dry_run=True)
    assert shown.spec.cluster_ip and 30000 <= shown.spec.ports[0].node_port <= 32767
    await _absent(client, "dry", ns)
    asked = await client.create(service("dry", ns, cluster_ip=ip), dry_run=True)
    assert asked.spec.cluster_ip == ip
    await client.create(service("real", ns, cluster_ip=ip))
    with pytest.raises(errors.Invalid, match="provided IP is already allocated"):
        await client.create(service("dry", ns, cluster_ip=ip), dry_run=True)
