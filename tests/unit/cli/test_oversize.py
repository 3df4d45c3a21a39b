"""Objects the server would refuse for their size are refused while the manifests are read,
before a command sends anything: the object, its size and the limit in one line. `apply`
doubles an object with its last-applied annotation, so what it would send is checked too,
against Kubernetes' cap on annotations."""

from __future__ import annotations

import pytest

from cli.commands.apply import plan
from cli.errors import CliError
from cli.manifests import parse
from skiff.api import limits

KIB = 1024


def configmap(name: str, size: int, annotations: str = "") -> str:
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{annotations}"
            f"data:\n  k: {'x' * size}\n")


def test_the_limits_are_kubernetes_numbers() -> None:
    assert limits.MAX_REQUEST_BYTES == 3 * 1024 * 1024
    assert limits.MAX_OBJECT_BYTES == 1572864
    assert limits.MAX_ANNOTATIONS_BYTES == 262144


def test_an_object_over_the_stored_limit_is_refused_naming_it_its_size_and_the_limit() -> None:
    with pytest.raises(CliError, match=r'^big.yaml: ConfigMap "big" is too large: 2097\d{3} '
                                       r"bytes, over the limit of 1572864 bytes \(1.5 MiB\) "
                                       r"for one object$"):
        parse(configmap("big", 2048 * KIB), "big.yaml")


def test_a_manifest_over_the_request_limit_is_refused_before_it_is_converted() -> None:
    with pytest.raises(CliError, match=r'^huge.yaml: ConfigMap "huge" is too large: 4194\d{3} '
                                       r"bytes as JSON, over the limit of 3145728 bytes "
                                       r"\(3 MiB\) for a request$"):
        parse(configmap("huge", 4096 * KIB), "huge.yaml")


def test_an_object_just_under_the_limit_reads() -> None:
    (m,) = parse(configmap("fits", 1500 * KIB), "fits.yaml")
    assert m.name == "fits"


def test_annotations_over_kubernetes_cap_are_refused_with_its_message() -> None:
    notes = f"  annotations:\n    note: {'n' * 257 * KIB}\n"
    with pytest.raises(CliError, match=r'^notes.yaml: ConfigMap "notes" is invalid: '
                                       r"metadata.annotations: Too long: must have at most "
                                       r"262144 bytes$"):
        parse(configmap("notes", 10, notes), "notes.yaml")


def test_apply_refuses_an_object_its_last_applied_annotation_takes_past_the_cap() -> None:
    (m,) = parse(configmap("mid", 300 * KIB), "mid.yaml")  # fine for `create`
    with pytest.raises(CliError, match=r'^mid.yaml: ConfigMap "mid" is invalid: '
                                       r"metadata.annotations: Too long: must have at most "
                                       r"262144 bytes$"):
        plan(m, None, "default")
    (small,) = parse(configmap("small", 200 * KIB), "small.yaml")
    assert plan(small, None, "default").desired["metadata"]["annotations"]
