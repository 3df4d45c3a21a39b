"""The registry of kinds (skiff.api.kinds) is the one place a kind is declared: every kind
has every part, and the tables that live above the kernel name only declared kinds."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import skiff.api
from apiserver import strategies
from cli import describe, printers
from skiff.api import convert, kinds
from skiff.api.meta import meta
from skiff.api.v1 import core_pb2

NAMES = [k.kind for k in kinds.KINDS]


def test_kind_names_and_messages_are_unique() -> None:
    assert len(set(NAMES)) == len(NAMES)
    assert len(set(kinds.KINDS)) == len(NAMES)  # kinds are set members and dict keys
    assert len({k.message for k in kinds.KINDS}) == len(NAMES)
    for kind in kinds.KINDS:
        assert kinds.by_kind(kind.kind) is kind
        assert kinds.by_message(kind.message()) is kind
        assert kinds.lookup(kind.plural) is kind


@pytest.mark.parametrize("kind", kinds.KINDS, ids=NAMES)
def test_every_kind_has_its_kernel_parts(kind: kinds.Kind) -> None:
    obj = kind.message()
    meta(obj).name = "x"
    if kind.namespaced:
        meta(obj).namespace = "default"
    # Defaulting and validation run on any kind without a lookup failing.
    kinds.apply_defaults(obj)
    assert isinstance(kinds.validate(obj), list)
    assert isinstance(kinds.validate_update(obj, obj), list)
    # Field selectors: the common ones, plus the kind's own, each readable.
    getters = kind.field_getters()
    assert {"metadata.name", "metadata.namespace"} <= getters.keys()
    for path, get in getters.items():
        assert isinstance(get(obj), str), path
    # A manifest of the kind reads and prints back.
    assert convert.to_dict(obj)["kind"] == kind.kind
    # A kind whose status the system owns has a status.
    assert not kind.system_status or kind.has_status


def test_strategies_name_only_declared_kinds() -> None:
    assert set(strategies._STRATEGIES) <= set(NAMES)
    for kind in kinds.KINDS:
        assert isinstance(strategies.for_kind(kind), strategies.Strategy)


def test_every_kind_prints_and_describes() -> None:
    """`skiff get` has a table and `skiff describe` a writer for every kind, and neither
    names a kind that is not declared."""
    assert set(printers.TABLES) == set(NAMES)
    assert set(describe.WRITERS) == set(NAMES)


def test_a_pod_is_defaulted_through_its_kind() -> None:
    pod = core_pb2.Pod()
    pod.spec.containers.add(name="c", image="busybox")
    kinds.apply_defaults(pod)
    assert pod.spec.restart_policy == "Always"


@pytest.mark.parametrize("module", sorted(
    m.name for m in pkgutil.walk_packages(skiff.api.__path__, "skiff.api.")
    if ".v1." not in m.name))
def test_every_api_module_imports_first(module: str) -> None:
    """The registry of kinds sits on top of the modules it takes each kind's parts from,
    and none of them imports it back: whichever a program imports first, it loads."""
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
