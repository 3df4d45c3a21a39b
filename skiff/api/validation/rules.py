"""The rules a pod spec is validated with: as a Pod, as a pod template, as a Job's template."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PodRules:
    """What differs between validating a Pod and a pod template."""

    is_pod: bool = False  # a Pod itself rather than a template
    job: bool = False  # a Job's template: its own rule reports a missing restartPolicy


POD = PodRules(is_pod=True)
TEMPLATE = PodRules()
JOB_TEMPLATE = PodRules(job=True)
