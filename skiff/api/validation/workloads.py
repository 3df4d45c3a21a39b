"""ReplicaSet, Deployment and DaemonSet: replicated pod templates, their selectors and
update strategies."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from skiff.api.v1 import apps_pb2, core_pb2, meta_pb2
from skiff.api.validation.errors import (
    Errors,
    forbidden,
    immutable,
    invalid,
    nonnegative,
    required,
    unsupported,
)
from skiff.api.validation.formats import percent_errors
from skiff.api.validation.label_selector import (
    is_empty_selector,
    selector_matches,
    selects_template,
    validate_label_selector,
)
from skiff.api.validation.pod import validate_pod_template


def _validate_replicated_template(template: core_pb2.PodTemplateSpec, path: str,
                                  kind: str) -> Errors:
    """A template that replicas run forever from: it restarts, and has no deadline."""
    errs = validate_pod_template(template, path)
    policy = template.spec.restart_policy
    if policy != "Always":
        errs.append(unsupported(f"{path}.spec.restartPolicy", policy, ("Always",)))
    if template.spec.HasField("active_deadline_seconds"):
        errs.append(forbidden(f"{path}.spec.activeDeadlineSeconds",
                              f"activeDeadlineSeconds in {kind} is not Supported"))
    return errs


def _validate_required_selector(spec: Any, kind_word: str) -> Errors:
    """RS and Deployment: a selector is required, must be valid and not empty."""
    if not spec.HasField("selector"):
        return [required("spec.selector")]
    errs = validate_label_selector(spec.selector, "spec.selector")
    if is_empty_selector(spec.selector):
        errs.append(invalid("spec.selector", spec.selector,
                            f"empty selector is invalid for {kind_word}"))
    if selector_matches(spec.selector, {}) is None:
        errs.append(invalid("spec.selector", spec.selector, "invalid label selector"))
    return errs


def validate_replica_set(obj: Message) -> Errors:
    assert isinstance(obj, apps_pb2.ReplicaSet)
    spec = obj.spec
    errs: Errors = []
    errs += nonnegative("spec.replicas", spec.replicas)
    errs += nonnegative("spec.minReadySeconds", spec.min_ready_seconds)
    # Kubernetes' own wording: ReplicaSets share the Deployment's selector check.
    errs += _validate_required_selector(spec, "deployment")
    errs += selects_template(spec.selector, spec.template, "spec")
    errs += _validate_replicated_template(spec.template, "spec.template", "ReplicaSet")
    return errs


def validate_deployment(obj: Message) -> Errors:
    assert isinstance(obj, apps_pb2.Deployment)
    spec = obj.spec
    errs: Errors = []
    errs += nonnegative("spec.replicas", spec.replicas)
    errs += _validate_required_selector(spec, "deployment")
    errs += selects_template(spec.selector, spec.template, "spec")
    errs += _validate_replicated_template(spec.template, "spec.template", "ReplicaSet")
    errs += _validate_deployment_strategy(spec.strategy, "spec.strategy")
    errs += nonnegative("spec.minReadySeconds", spec.min_ready_seconds)
    if spec.HasField("revision_history_limit"):
        errs += nonnegative("spec.revisionHistoryLimit", spec.revision_history_limit)
    if spec.HasField("progress_deadline_seconds"):
        deadline = spec.progress_deadline_seconds
        errs += nonnegative("spec.progressDeadlineSeconds", deadline)
        # Otherwise a rollout would be declared stuck before a pod could become available.
        if deadline <= spec.min_ready_seconds:
            errs.append(invalid("spec.progressDeadlineSeconds", deadline,
                                "must be greater than minReadySeconds"))
    return errs


def _validate_deployment_strategy(strategy: apps_pb2.DeploymentStrategy, path: str) -> Errors:
    if strategy.type == "Recreate":
        if strategy.HasField("rolling_update"):
            return [forbidden(f"{path}.rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if strategy.type == "RollingUpdate":
        if not strategy.HasField("rolling_update"):
            return [required(f"{path}.rollingUpdate",
                             "this should be defaulted and never be nil")]
        return _validate_rolling_update_deployment(strategy.rolling_update,
                                                   f"{path}.rollingUpdate")
    return [unsupported(path, strategy, ("Recreate", "RollingUpdate"))]


def _validate_rolling_update_deployment(rolling: apps_pb2.RollingUpdateDeployment,
                                        path: str) -> Errors:
    unavailable, surge = rolling.max_unavailable, rolling.max_surge
    errs = _validate_int_or_percent(unavailable, f"{path}.maxUnavailable")
    errs += _validate_int_or_percent(surge, f"{path}.maxSurge")
    # With neither room to surge nor to go down, a rollout could never make progress.
    if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
        errs.append(invalid(f"{path}.maxUnavailable", _int_or_string(unavailable),
                            "may not be 0 when `maxSurge` is 0"))
    errs += _not_more_than_100_percent(unavailable, f"{path}.maxUnavailable")
    return errs


def _int_or_string(value: meta_pb2.IntOrString) -> int | str:
    return value.str_val if value.HasField("str_val") else value.int_val


def _validate_int_or_percent(value: meta_pb2.IntOrString, path: str) -> Errors:
    if value.HasField("str_val"):
        return [invalid(path, value.str_val, msg) for msg in percent_errors(value.str_val)]
    if value.HasField("int_val"):
        return nonnegative(path, value.int_val)
    return [invalid(path, None, "must be an integer or percentage (e.g '5%')")]


def _percent_value(value: meta_pb2.IntOrString) -> int | None:
    if value.HasField("str_val") and not percent_errors(value.str_val):
        return int(value.str_val[:-1])
    return None


def _int_or_percent_value(value: meta_pb2.IntOrString) -> int:
    percent = _percent_value(value)
    return percent if percent is not None else value.int_val


def _not_more_than_100_percent(value: meta_pb2.IntOrString, path: str) -> Errors:
    percent = _percent_value(value)
    if percent is not None and percent > 100:
        return [invalid(path, value.str_val, "must not be greater than 100%")]
    return []


def validate_daemon_set(obj: Message) -> Errors:
    assert isinstance(obj, apps_pb2.DaemonSet)
    spec = obj.spec
    errs: Errors = []
    if not spec.HasField("selector"):
        errs.append(required("spec.selector"))
    else:
        errs += validate_label_selector(spec.selector, "spec.selector")
        errs += selects_template(spec.selector, spec.template, "spec")
        if is_empty_selector(spec.selector):
            errs.append(invalid("spec.selector", spec.selector,
                                "empty selector is invalid for daemonset"))
    errs += validate_pod_template(spec.template, "spec.template")
    if spec.template.spec.restart_policy != "Always":
        errs.append(unsupported("spec.template.spec.restartPolicy",
                                spec.template.spec.restart_policy, ("Always",)))
    if spec.template.spec.HasField("active_deadline_seconds"):
        errs.append(invalid("spec.template.spec.activeDeadlineSeconds",
                            spec.template.spec.active_deadline_seconds,
                            "activeDeadlineSeconds in DaemonSet is not Supported"))
    errs += nonnegative("spec.minReadySeconds", spec.min_ready_seconds)
    errs += _validate_daemon_set_strategy(spec.update_strategy, "spec.updateStrategy")
    if spec.HasField("revision_history_limit"):
        errs += nonnegative("spec.revisionHistoryLimit", spec.revision_history_limit)
    return errs


def _validate_daemon_set_strategy(strategy: apps_pb2.DaemonSetUpdateStrategy,
                                  path: str) -> Errors:
    if strategy.type == "OnDelete":
        return []
    if strategy.type != "RollingUpdate":
        return [unsupported(path, strategy, ("RollingUpdate", "OnDelete"))]
    if not strategy.HasField("rolling_update"):
        return [required(f"{path}.rollingUpdate")]
    rolling, r_path = strategy.rolling_update, f"{path}.rollingUpdate"
    unavailable, surge = rolling.max_unavailable, rolling.max_surge
    errs = _validate_int_or_percent(unavailable, f"{r_path}.maxUnavailable")
    errs += _validate_int_or_percent(surge, f"{r_path}.maxSurge")
    errs += _not_more_than_100_percent(unavailable, f"{r_path}.maxUnavailable")
    errs += _not_more_than_100_percent(surge, f"{r_path}.maxSurge")
    # One node's pod is either replaced in place (unavailable) or next to it (surge).
    has_unavailable = _int_or_percent_value(unavailable) != 0
    has_surge = _int_or_percent_value(surge) != 0
    if has_unavailable and has_surge:
        errs.append(invalid(f"{r_path}.maxSurge", _int_or_string(surge),
                            "may not be set when maxUnavailable is non-zero"))
    elif not has_unavailable and not has_surge:
        errs.append(required(f"{r_path}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return errs


def validate_selector_update(new: Message, old: Message) -> Errors:
    # Every kind this serves (ReplicaSet, Deployment, DaemonSet) has spec.selector.
    new_sel, old_sel = getattr(new, "spec").selector, getattr(old, "spec").selector  # noqa: B009
    if new_sel != old_sel:
        return [immutable("spec.selector", new_sel)]
    return []
