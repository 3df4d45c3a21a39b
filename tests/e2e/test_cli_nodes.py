"""`skiff cordon`, `uncordon`, `taint` and `label nodes` as a user runs them: the real CLI in a
subprocess against a real apiserver (over a real etcd).

Nodes are cluster-wide and the apiserver is shared by the session, so every test makes nodes
with names (and selector labels) of its own, and nothing here runs `taint --all` for real.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fixtures.cli import Cli

from skiff.api.v1 import core_pb2
from skiff.client.client import Client
from skiff.client.retry import update_with_retries


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _create_nodes(address: str, names: tuple[str, ...], labels: dict[str, str]) -> None:
    async with Client(address) as client:
        for name in names:
            node = core_pb2.Node()
            node.metadata.name = name
            node.metadata.labels.update(labels)
            await client.create(node)


def nodes(address: str, count: int = 1, **labels: str) -> list[str]:
    """Names of `count` new nodes with these labels."""
    names = tuple(unique("node") for _ in range(count))
    asyncio.run(_create_nodes(address, names, labels))
    return list(names)


async def _get(address: str, name: str) -> core_pb2.Node:
    async with Client(address) as client:
        return await client.get(core_pb2.Node, name)


def get(address: str, name: str) -> core_pb2.Node:
    return asyncio.run(_get(address, name))


def taints(address: str, name: str) -> list[tuple[str, str, str]]:
    return [(t.key, t.value, t.effect) for t in get(address, name).spec.taints]


# ---- cordon, uncordon ----


def test_cordon_and_uncordon_say_whether_anything_changed(cli: Cli, apiserver: Any) -> None:
    a, b = nodes(apiserver.address, 2)
    assert cli.ok("cordon", a) == f"node/{a} cordoned\n"
    assert get(apiserver.address, a).spec.unschedulable
    assert cli.ok("cordon", a, b) == f"node/{a} already cordoned\nnode/{b} cordoned\n"
    assert cli.ok("uncordon", f"node/{a}") == f"node/{a} uncordoned\n"
    assert not get(apiserver.address, a).spec.unschedulable
    assert cli.ok("uncordon", a) == f"node/{a} already uncordoned\n"
    assert get(apiserver.address, b).spec.unschedulable


def test_an_unchanged_node_is_not_written(cli: Cli, apiserver: Any) -> None:
    (a,) = nodes(apiserver.address)
    version = get(apiserver.address, a).metadata.resource_version
    cli.ok("uncordon", a)
    assert get(apiserver.address, a).metadata.resource_version == version


def test_cordon_by_selector(cli: Cli, apiserver: Any) -> None:
    pool = unique("pool")
    chosen = nodes(apiserver.address, 2, pool=pool)
    (other,) = nodes(apiserver.address)
    out = cli.ok("cordon", "-l", f"pool={pool}")
    assert sorted(out.splitlines()) == sorted(f"node/{n} cordoned" for n in chosen)
    assert all(get(apiserver.address, n).spec.unschedulable for n in chosen)
    assert not get(apiserver.address, other).spec.unschedulable
    out = cli.ok("uncordon", "--selector", f"pool={pool}")
    assert sorted(out.splitlines()) == sorted(f"node/{n} uncordoned" for n in chosen)
    result = cli("cordon", "-l", f"pool={unique('none')}")
    assert (result.returncode, result.stdout) == (0, "")
    assert "No resources found" in result.stderr


def test_cordon_usage_errors(cli: Cli, apiserver: Any) -> None:
    (a,) = nodes(apiserver.address)
    assert "cannot specify both a node name and a --selector option" in cli.fails(
        "cordon", a, "-l", "x=y")
    assert "USAGE: skiff cordon NODE" in cli.fails("cordon")
    assert "only node types are supported" in cli.fails("cordon", "pod/web")


def test_a_missing_node_is_an_error_and_the_others_still_change(
    cli: Cli, apiserver: Any
) -> None:
    (a,) = nodes(apiserver.address)
    ghost = unique("ghost")
    result = cli("cordon", ghost, a)
    assert result.returncode == 1
    assert result.stderr == f'error: nodes "{ghost}" not found\n'
    assert result.stdout == f"node/{a} cordoned\n"
    assert get(apiserver.address, a).spec.unschedulable
    assert cli.fails("uncordon", ghost) == f'error: nodes "{ghost}" not found\n'
    assert f'nodes "{ghost}" not found' in cli.fails("taint", "nodes", ghost, "k=v:NoSchedule")


def test_a_conflicting_write_is_retried_on_a_fresh_read(apiserver: Any) -> None:
    """Someone else writes the node between our read and our write: the write conflicts, and
    the change is made again on what they wrote, keeping their change too."""
    (a,) = nodes(apiserver.address)

    class RacingClient(Client):
        raced = False

        async def get(self, kind: Any, name: str, namespace: str = "") -> Any:
            obj = await super().get(kind, name, namespace)
            if not self.raced:
                self.raced = True
                theirs = core_pb2.Node()
                theirs.CopyFrom(obj)
                theirs.metadata.labels["raced"] = "yes"
                await self.update(theirs)
            return obj

    def cordon_node(node: core_pb2.Node) -> str:  # what `skiff cordon` does to each node
        if node.spec.unschedulable:
            return "already cordoned"
        node.spec.unschedulable = True
        return "cordoned"

    async def cordon() -> str:
        async with RacingClient(apiserver.address) as client:
            return await update_with_retries(client, core_pb2.Node, a, "", cordon_node)

    assert asyncio.run(cordon()) == "cordoned"
    node = get(apiserver.address, a)
    assert node.spec.unschedulable
    assert node.metadata.labels["raced"] == "yes"


# ---- taint ----


def test_taint_add_overwrite_and_remove(cli: Cli, apiserver: Any) -> None:
    (a,) = nodes(apiserver.address)
    assert cli.ok("taint", "nodes", a, "dedicated=gpu:NoSchedule") == f"node/{a} tainted\n"
    assert taints(apiserver.address, a) == [("dedicated", "gpu", "NoSchedule")]
    assert not get(apiserver.address, a).spec.taints[0].HasField("time_added")

    # The same key and effect again needs --overwrite, even with the same value (as kubectl).
    for value in ("cpu", "gpu"):
        err = cli.fails("taint", "nodes", a, f"dedicated={value}:NoSchedule")
        assert err == (f"error: node {a} already has dedicated taint(s) with same effect(s) "
                       "and --overwrite is false\n")
    assert taints(apiserver.address, a) == [("dedicated", "gpu", "NoSchedule")]
    out = cli.ok("taint", "nodes", a, "dedicated=cpu:NoSchedule", "--overwrite")
    assert out == f"node/{a} modified\n"
    assert taints(apiserver.address, a) == [("dedicated", "cpu", "NoSchedule")]

    # Another effect of the same key is another taint.
    assert cli.ok("taint", "node", a, "dedicated:PreferNoSchedule") == f"node/{a} tainted\n"
    assert cli.ok("taint", f"node/{a}", "dedicated:NoSchedule-") == f"node/{a} untainted\n"
    assert taints(apiserver.address, a) == [("dedicated", "", "PreferNoSchedule")]


def test_taint_key_dash_removes_every_effect_of_the_key(cli: Cli, apiserver: Any) -> None:
    (a,) = nodes(apiserver.address)
    cli.ok("taint", "nodes", a, "gpu=yes:NoSchedule", "gpu=yes:NoExecute", "zone=a:NoSchedule")
    assert len(taints(apiserver.address, a)) == 3
    assert cli.ok("taint", "nodes", a, "gpu-") == f"node/{a} untainted\n"
    assert taints(apiserver.address, a) == [("zone", "a", "NoSchedule")]


def test_taint_adding_and_removing_at_once_is_modified(cli: Cli, apiserver: Any) -> None:
    (a,) = nodes(apiserver.address)
    cli.ok("taint", "nodes", a, "old:NoSchedule")
    assert cli.ok("taint", "nodes", a, "new=1:NoSchedule", "old-") == f"node/{a} modified\n"
    assert taints(apiserver.address, a) == [("new", "1", "NoSchedule")]


def test_no_execute_taints_record_when_they_were_added(cli: Cli, apiserver: Any) -> None:
    (a,) = nodes(apiserver.address)
    cli.ok("taint", "nodes", a, "evict=now:NoExecute", "keep:PreferNoSchedule")
    by_key = {t.key: t for t in get(apiserver.address, a).spec.taints}
    assert by_key["evict"].time_added.seconds > 0
    assert not by_key["keep"].HasField("time_added")
    # Overwriting with the same value keeps the time; a new value is a new taint.
    first = by_key["evict"].time_added
    cli.ok("taint", "nodes", a, "evict=now:NoExecute", "--overwrite")
    assert get(apiserver.address, a).spec.taints[0].time_added == first
    cli.ok("taint", "nodes", a, "evict=later:NoExecute", "--overwrite")
    replaced = get(apiserver.address, a).spec.taints[0]
    assert (replaced.key, replaced.value) == ("evict", "later")
    assert replaced.time_added.ToNanoseconds() > first.ToNanoseconds()


def test_removing_a_taint_the_node_lacks_is_an_error(cli: Cli, apiserver: Any) -> None:
    (a,) = nodes(apiserver.address)
    cli.ok("taint", "nodes", a, "here:NoSchedule")
    assert cli.fails("taint", "nodes", a, "here:NoExecute-") == (
        'error: taint "here:NoExecute" not found\n')
    assert cli.fails("taint", "nodes", a, "gone-") == 'error: taint "gone" not found\n'
    # One miss leaves the node as it was, including the changes that would have worked.
    cli.fails("taint", "nodes", a, "more:NoSchedule", "gone-")
    assert taints(apiserver.address, a) == [("here", "", "NoSchedule")]


def test_invalid_taints_are_refused_before_any_change(cli: Cli, apiserver: Any) -> None:
    (a,) = nodes(apiserver.address)
    assert cli.fails("taint", "nodes", a, "k=v:Sometimes") == (
        "error: invalid taint effect: Sometimes, unsupported taint effect\n")
    # Without an effect `k=v` reads as a key, as kubectl reads it.
    assert cli.fails("taint", "nodes", a, "k=v").startswith("error: invalid taint spec: k=v, ")
    assert "invalid taint spec: k!:NoSchedule, " in cli.fails(
        "taint", "nodes", a, "k!:NoSchedule")
    assert "invalid taint spec: k=not ok:NoSchedule, " in cli.fails(
        "taint", "nodes", a, "k=not ok:NoSchedule")
    assert "duplicated taints with the same key and effect: k=2:NoSchedule" in cli.fails(
        "taint", "nodes", a, "k=1:NoSchedule", "k=2:NoSchedule")
    assert ("can not both modify and remove the following taint(s) in the same command: k="
            in cli.fails("taint", "nodes", a, "k=1:NoSchedule", "k-"))
    assert "all resources must be specified before taint changes: b" in cli.fails(
        "taint", "nodes", a, "k:NoSchedule", "b")
    assert "invalid resource type pods, only node types are supported" in cli.fails(
        "taint", "pods", "web", "k:NoSchedule")
    assert "at least one taint update is required" in cli.fails("taint", "nodes", a)
    assert "at least one resource name must be specified" in cli.fails(
        "taint", "nodes", "k:NoSchedule")
    assert "setting 'all' parameter with a non empty selector is prohibited" in cli.fails(
        "taint", "nodes", "--all", "-l", "x=y", "k:NoSchedule")
    assert taints(apiserver.address, a) == []


def test_taint_by_selector(cli: Cli, apiserver: Any) -> None:
    pool = unique("pool")
    chosen = nodes(apiserver.address, 2, pool=pool)
    (other,) = nodes(apiserver.address)
    out = cli.ok("taint", "nodes", "-l", f"pool={pool}", "pool=reserved:NoSchedule")
    assert sorted(out.splitlines()) == sorted(f"node/{n} tainted" for n in chosen)
    for name in chosen:
        assert taints(apiserver.address, name) == [("pool", "reserved", "NoSchedule")]
    assert taints(apiserver.address, other) == []


def test_one_failing_node_does_not_stop_the_others(cli: Cli, apiserver: Any) -> None:
    a, b = nodes(apiserver.address, 2)
    cli.ok("taint", "nodes", a, "k=1:NoSchedule")
    result = cli("taint", "nodes", a, b, "k=2:NoSchedule")
    assert result.returncode == 1
    assert f"node {a} already has k taint(s)" in result.stderr
    assert result.stdout == f"node/{b} tainted\n"
    assert taints(apiserver.address, a) == [("k", "1", "NoSchedule")]
    assert taints(apiserver.address, b) == [("k", "2", "NoSchedule")]


# ---- label ----


def test_label_nodes(cli: Cli, apiserver: Any) -> None:
    (a,) = nodes(apiserver.address)
    assert cli.ok("label", "nodes", a, "disk=ssd") == f"node/{a} labeled\n"
    assert get(apiserver.address, a).metadata.labels["disk"] == "ssd"
    assert cli.ok("label", f"node/{a}", "disk-") == f"node/{a} unlabeled\n"
    assert "disk" not in get(apiserver.address, a).metadata.labels
