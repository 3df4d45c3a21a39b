"""Job and CronJob."""

from __future__ import annotations

from google.protobuf.message import Message

from skiff.api import defaults
from skiff.api.v1 import batch_pb2
from skiff.api.validation.cron import validate_schedule, validate_time_zone
from skiff.api.validation.errors import (
    Errors,
    immutable,
    invalid,
    nonnegative,
    required,
    unsupported,
)
from skiff.api.validation.label_selector import (
    is_empty_selector,
    selector_matches,
    selects_template,
    validate_label_selector,
)
from skiff.api.validation.meta import validate_annotations, validate_labels
from skiff.api.validation.pod import validate_pod_template
from skiff.api.validation.rules import JOB_TEMPLATE

MAX_PARALLELISM_INDEXED_JOB = 100_000
MAX_CRON_JOB_NAME = 52  # 63 minus the 11-character suffix the CronJob controller adds


def validate_job(obj: Message) -> Errors:
    assert isinstance(obj, batch_pb2.Job)
    spec = obj.spec
    errs: Errors = []
    errs += _validate_generated_selector(obj)
    errs += _validate_job_spec(spec, "spec")
    if not spec.HasField("selector"):
        errs.append(required("spec.selector"))
    else:
        errs += validate_label_selector(spec.selector, "spec.selector")
        errs += selects_template(spec.selector, spec.template, "spec")
        # Skiff's own rule: a hand-written empty selector would adopt every pod in the
        # namespace (Kubernetes accepts it; generated selectors are never empty).
        if is_empty_selector(spec.selector):
            errs.append(invalid("spec.selector", spec.selector,
                                "empty selector is invalid for job"))
    return errs


def _validate_generated_selector(job: batch_pb2.Job) -> Errors:
    """A generated selector must select exactly the labels generation put on the pods."""
    if job.spec.HasField("manual_selector") and job.spec.manual_selector:
        return []
    if not job.spec.HasField("selector"):
        return []  # reported as a missing selector
    errs = [] if job.metadata.uid else [required("metadata.uid")]
    labels = job.spec.template.metadata.labels
    expected = {defaults.LEGACY_CONTROLLER_UID_LABEL: job.metadata.uid,
                defaults.LEGACY_JOB_NAME_LABEL: job.metadata.name,
                defaults.CONTROLLER_UID_LABEL: job.metadata.uid,
                defaults.JOB_NAME_LABEL: job.metadata.name}
    for key, value in expected.items():
        l_path = f"spec.template.metadata.labels[{key}]"
        if key not in labels:
            errs.append(required(l_path, f"must be '{value}'"))
        elif labels[key] != value:
            errs.append(invalid(l_path, dict(labels), f"must be '{value}'"))
    if selector_matches(job.spec.selector, expected) is False:
        errs.append(invalid("spec.selector", job.spec.selector, "`selector` not auto-generated"))
    return errs


def _validate_job_spec(spec: batch_pb2.JobSpec, path: str) -> Errors:
    errs: Errors = []
    for field, name in (("parallelism", "parallelism"), ("completions", "completions"),
                        ("active_deadline_seconds", "activeDeadlineSeconds"),
                        ("backoff_limit", "backoffLimit"),
                        ("ttl_seconds_after_finished", "ttlSecondsAfterFinished")):
        if spec.HasField(field):
            errs += nonnegative(f"{path}.{name}", getattr(spec, field))
    if spec.HasField("completion_mode"):
        errs += _validate_completion_mode(spec, path)
    errs += validate_pod_template(spec.template, f"{path}.template", JOB_TEMPLATE)
    policy = spec.template.spec.restart_policy
    policy_path = f"{path}.template.spec.restartPolicy"
    # A job's pods must end: Always (or nothing) would restart a finished pod forever.
    if policy in ("Always", ""):
        errs.append(required(policy_path, 'valid values: "OnFailure", "Never"'))
    elif policy not in ("OnFailure", "Never"):
        errs.append(unsupported(policy_path, policy, ("OnFailure", "Never")))
    return errs


def _validate_completion_mode(spec: batch_pb2.JobSpec, path: str) -> Errors:
    mode = spec.completion_mode
    if mode not in ("NonIndexed", "Indexed"):
        return [unsupported(f"{path}.completionMode", mode, ("NonIndexed", "Indexed"))]
    errs: Errors = []
    if mode == "Indexed":
        if not spec.HasField("completions"):
            errs.append(required(f"{path}.completions", "when completion mode is Indexed"))
        if spec.HasField("parallelism") and spec.parallelism > MAX_PARALLELISM_INDEXED_JOB:
            errs.append(invalid(f"{path}.parallelism", spec.parallelism,
                                f"must be less than or equal to {MAX_PARALLELISM_INDEXED_JOB} "
                                "when completion mode is Indexed"))
    return errs


def validate_job_update(new_obj: Message, old_obj: Message) -> Errors:
    assert isinstance(new_obj, batch_pb2.Job) and isinstance(old_obj, batch_pb2.Job)
    new, old = new_obj.spec, old_obj.spec
    errs: Errors = []
    errs += _validate_completions_update(new, old)
    if new.selector != old.selector:
        errs.append(immutable("spec.selector", new.selector))
    if new.template != old.template:
        errs.append(immutable("spec.template", new.template))
    if (new.HasField("completion_mode"), new.completion_mode) != (
            old.HasField("completion_mode"), old.completion_mode):
        errs.append(immutable("spec.completionMode", new.completion_mode))
    return errs


def _validate_completions_update(new: batch_pb2.JobSpec, old: batch_pb2.JobSpec) -> Errors:
    def completions(spec: batch_pb2.JobSpec) -> int | None:
        return spec.completions if spec.HasField("completions") else None

    if completions(new) == completions(old):
        return []
    # Elastic indexed jobs: completions may follow parallelism, scaling the job.
    indexed = new.completion_mode == "Indexed" and old.completion_mode == "Indexed"
    if not indexed:
        return [immutable("spec.completions", completions(new))]
    if completions(new) != (new.parallelism if new.HasField("parallelism") else None):
        return [invalid("spec.completions", completions(new),
                        "must be equal to parallelism when updating completions for Indexed "
                        "Jobs")]
    return []


def validate_cron_job(obj: Message) -> Errors:
    assert isinstance(obj, batch_pb2.CronJob)
    spec = obj.spec
    errs: Errors = []
    if len(obj.metadata.name) > MAX_CRON_JOB_NAME:
        errs.append(invalid("metadata.name", obj.metadata.name,
                            f"must be no more than {MAX_CRON_JOB_NAME} characters"))
    if not spec.schedule:
        errs.append(required("spec.schedule"))
    else:
        errs += validate_schedule(spec.schedule, "spec.schedule")
    if spec.HasField("starting_deadline_seconds"):
        errs += nonnegative("spec.startingDeadlineSeconds", spec.starting_deadline_seconds)
    if spec.HasField("time_zone"):
        errs += validate_time_zone(spec.time_zone, "spec.timeZone")
    errs += _validate_concurrency_policy(spec.concurrency_policy)
    errs += _validate_job_template(spec.job_template, "spec.jobTemplate")
    for field, name in (("successful_jobs_history_limit", "successfulJobsHistoryLimit"),
                        ("failed_jobs_history_limit", "failedJobsHistoryLimit")):
        if spec.HasField(field):
            errs += nonnegative(f"spec.{name}", getattr(spec, field))
    return errs


def _validate_concurrency_policy(policy: str) -> Errors:
    path = "spec.concurrencyPolicy"
    if not policy:
        return [required(path)]
    if policy not in ("Allow", "Forbid", "Replace"):
        return [unsupported(path, policy, ("Allow", "Forbid", "Replace"))]
    return []


def _validate_job_template(template: batch_pb2.JobTemplateSpec, path: str) -> Errors:
    spec_path = f"{path}.spec"
    errs = validate_labels(template.metadata.labels, f"{path}.metadata.labels")
    errs += validate_annotations(template.metadata.annotations, f"{path}.metadata.annotations")
    errs += _validate_job_spec(template.spec, spec_path)
    # Each Job the CronJob creates gets its own generated selector.
    if template.spec.HasField("selector"):
        errs.append(invalid(f"{spec_path}.selector", template.spec.selector,
                            "`selector` will be auto-generated"))
    if template.spec.HasField("manual_selector") and template.spec.manual_selector:
        errs.append(unsupported(f"{spec_path}.manualSelector", True, ("nil", "false")))
    return errs
