"""Objects the server would refuse for their size are refused while the manifests are read,
before a command sends anything: the object, its size and the limit in one line (a request
over Kubernetes' 3 MiB). `apply` doubles an object with its last-applied annotation, so what
it would send is checked again."""

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


def test_the_stored_object_limit_is_left_to_the_server() -> None:
    # Kubernetes checks it after validation, whose messages come first; only the server has
    # all of validation (this ConfigMap is past its 1 MiB cap on data, for one).
    (m,) = parse(configmap("big", 2048 * KIB), "big.yaml")
    assert m.name == "big"


def test_a_manifest_over_the_request_limit_is_refused_before_it_is_converted() -> None:
    with pytest.raises(CliError, match=r'^huge.yaml: ConfigMap "huge" is too large: 4194\d{3} '
                                       r"bytes as JSON, over the limit of 3145728 bytes "
                                       r"\(3 MiB\) for a request$"):
        parse(configmap("huge", 4096 * KIB), "huge.yaml")


def test_a_request_just_under_the_limit_reads() -> None:
    (m,) = parse(configmap("fits", 3 * 1024 * KIB - 100), "fits.yaml")
    assert m.name == "fits"


def test_apply_checks_what_it_sends_its_last_applied_annotation_included() -> None:
    (m,) = parse(configmap("twice", 2 * 1024 * KIB), "twice.yaml")  # fine for `create`
    with pytest.raises(CliError, match=r'^twice.yaml: ConfigMap "twice" is too large: 4194\d{3} '
                                       r"bytes as JSON, over the limit of 3145728 bytes "
                                       r"\(3 MiB\) for a request$"):
        plan(m, None, "default")


def test_annotations_and_validation_are_the_servers() -> None:
    # Kubernetes reports every validation error of an object at once (annotations past
    # 256 KiB and a Secret's data past 1 MiB, say): only the server can.
    (m,) = parse(configmap("mid", 300 * KIB), "mid.yaml")
    assert len(plan(m, None, "default").desired["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"]) > limits.MAX_ANNOTATIONS_BYTES
