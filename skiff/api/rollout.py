"""Deployment rollout facts shared by the deployment controller and the CLI.

Kubernetes keeps a deployment's history in its ReplicaSets: each carries the revision
number it was the template of (an annotation) and the template itself, labelled with
`pod-template-hash`. `skiff rollout history|undo|status` read that history from the
client side, as kubectl does, and the controller writes it; both need the same names and
the same idea of "this ReplicaSet runs that template", so they live here, in the kernel
that every component may import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.message import Message

from skiff.api.meta import meta
from skiff.api.v1 import core_pb2

__all__ = [
    "CHANGE_CAUSE_ANNOTATION",
    "DEFAULT_UNIQUE_LABEL_KEY",
    "DESIRED_REPLICAS_ANNOTATION",
    "LAST_APPLIED_ANNOTATION",
    "MAX_REPLICAS_ANNOTATION",
    "POD_TEMPLATE_HASH_LABEL",
    "RESTARTED_AT_ANNOTATION",
    "REVISION_ANNOTATION",
    "REVISION_HISTORY_ANNOTATION",
    "ROLLBACK_SKIPPED_ANNOTATIONS",
    "TIMED_OUT_REASON",
    "by_revision",
    "controlled_by",
    "equal_ignoring_hash",
    "revision_of",
    "rollback_annotations",
    "template_without_hash",
]

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
DEPRECATED_ROLLBACK_TO_ANNOTATION = "deprecated.deployment.rollback.to"
# The label a deployment's ReplicaSets (and their pods) carry to tell templates apart.
DEFAULT_UNIQUE_LABEL_KEY = "pod-template-hash"
POD_TEMPLATE_HASH_LABEL = DEFAULT_UNIQUE_LABEL_KEY
# The Progressing condition's reason once a rollout has made no progress in time.
TIMED_OUT_REASON = "ProgressDeadlineExceeded"

# Annotations that describe one ReplicaSet's place in the history rather than the
# template, so a rollback neither copies them from the ReplicaSet nor drops them from the
# deployment (kubectl's annotationsToSkip).
ROLLBACK_SKIPPED_ANNOTATIONS = frozenset({
    LAST_APPLIED_ANNOTATION,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    DEPRECATED_ROLLBACK_TO_ANNOTATION,
})


def revision_of(obj: Message) -> int:
    """The revision an object's annotation records; 0 when it has none, as in Kubernetes
    (so an unannotated ReplicaSet sorts before every numbered one). Raises ValueError
    for an annotation that is not an integer."""
    text = meta(obj).annotations.get(REVISION_ANNOTATION)
    if text is None:
        return 0
    try:
        return int(text, 10)
    except ValueError:
        raise ValueError(f"invalid revision annotation {REVISION_ANNOTATION}={text!r} on "
                         f"{meta(obj).name}") from None


def template_without_hash(template: core_pb2.PodTemplateSpec) -> core_pb2.PodTemplateSpec:
    """A copy of the template without the `pod-template-hash` label."""
    copy = core_pb2.PodTemplateSpec()
    copy.CopyFrom(template)
    copy.metadata.labels.pop(DEFAULT_UNIQUE_LABEL_KEY, None)
    return copy


def equal_ignoring_hash(a: core_pb2.PodTemplateSpec, b: core_pb2.PodTemplateSpec) -> bool:
    """Whether two pod templates are the same but for `pod-template-hash`: how a
    deployment recognises the ReplicaSet of its current template."""
    return template_without_hash(a) == template_without_hash(b)


def controlled_by(obj: Message, owner_uid: str) -> bool:
    """Whether `obj`'s controller reference (controller=true) names `owner_uid`."""
    return any(ref.controller and ref.uid == owner_uid
               for ref in meta(obj).owner_references)


def rollback_annotations(deployment_annotations: Mapping[str, str],
                         replica_set_annotations: Mapping[str, str]) -> dict[str, str]:
    """The deployment's annotations after rolling back to a ReplicaSet, as kubectl computes
    them: the history-bookkeeping ones stay as the deployment has them; every other one
    is the ReplicaSet's (the change-cause among them), so the deployment describes the
    template it runs again."""
    result = {k: v for k, v in deployment_annotations.items()
              if k in ROLLBACK_SKIPPED_ANNOTATIONS}
    result.update({k: v for k, v in replica_set_annotations.items()
                   if k not in ROLLBACK_SKIPPED_ANNOTATIONS})
    return result


def by_revision(replica_sets: Iterable[Any]) -> dict[int, Any]:
    """Revision -> ReplicaSet, leaving out those whose annotation is unreadable. When two
    carry one number (a hand edit), the later one in the input wins, as in kubectl."""
    found: dict[int, Any] = {}
    for rs in replica_sets:
        try:
            found[revision_of(rs)] = rs
        except ValueError:
            continue
    return found
