"""What a failing test's report gets: the events of the namespaces the test used and the
last lines of every container of the pods in them, each as a report section (pytest prints
sections under the failure, `-rA` too; junitxml and other reporters see them as well).

Bounded: a few namespaces, a few pods, TAIL_LINES per container, MAX_SECTION characters
per section (the end kept: the latest lines matter most), and BUDGET_SECONDS in all (a node
that does not answer must not hold the run up). Anything that cannot be read says so in its
section rather than hiding the test's own failure.
"""

from __future__ import annotations

import time
from typing import Any

from pytest_skiff.session import SkiffCluster
from skiff.client import errors

TAIL_LINES = 50
MAX_NAMESPACES = 5
MAX_PODS = 20
MAX_SECTION = 20_000
BUDGET_SECONDS = 30.0
LOGS_TIMEOUT = 10.0


def failure_sections(cluster: SkiffCluster, namespaces: list[str]) -> list[tuple[str, str]]:
    sections: list[tuple[str, str]] = []
    deadline = time.monotonic() + BUDGET_SECONDS
    for namespace in namespaces[:MAX_NAMESPACES]:
        if time.monotonic() > deadline:
            sections.append((f"skiff events in namespace {namespace}",
                             f"(not read: gathering took over {BUDGET_SECONDS:g} s)"))
            continue
        sections.append((f"skiff events in namespace {namespace}",
                         _guarded(lambda ns=namespace: _events(cluster, ns))))
        try:
            pods = cluster.list("Pod", namespace)
        except Exception as err:  # a report must not hide the test's own failure
            sections.append((f"skiff pods in namespace {namespace}",
                             f"(cannot list pods: {_problem(err)})"))
            continue
        for pod in pods[:MAX_PODS]:
            if time.monotonic() > deadline:
                sections.append((_pod_title(namespace, pod),
                                 f"(not read: gathering took over {BUDGET_SECONDS:g} s)"))
                continue
            sections.append((_pod_title(namespace, pod),
                             _guarded(lambda ns=namespace, p=pod: _logs(cluster, ns, p))))
        if len(pods) > MAX_PODS:
            sections.append((f"skiff pods in namespace {namespace}",
                             f"({len(pods) - MAX_PODS} more pods not shown)"))
    return [(title, _capped(text)) for title, text in sections]


def _guarded(read: Any) -> str:
    try:
        return str(read())
    except Exception as err:  # a report must not hide the test's own failure
        return f"(cannot read: {_problem(err)})"


def _problem(err: Exception) -> str:
    if isinstance(err, errors.ApiError):
        return err.message
    return f"{type(err).__name__}: {err}"


def _events(cluster: SkiffCluster, namespace: str) -> str:
    rows = []
    for event in cluster.events(namespace):
        involved = event.get("involvedObject") or {}
        when = event.get("lastTimestamp") or event.get("eventTime") or ""
        count = event.get("count") or 1
        times = f" (x{count})" if count > 1 else ""
        rows.append(f"{when} {event.get('type', '')} {event.get('reason', '')} "
                    f"{involved.get('kind', '')}/{involved.get('name', '')}: "
                    f"{event.get('message', '')}{times}")
    return "\n".join(rows) if rows else "(no events)"


def _pod_title(namespace: str, pod: dict[str, Any]) -> str:
    name = (pod.get("metadata") or {}).get("name", "")
    node = (pod.get("spec") or {}).get("nodeName") or "not scheduled"
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    return f"skiff logs of pod {namespace}/{name} ({phase}, on {node})"


def _logs(cluster: SkiffCluster, namespace: str, pod: dict[str, Any]) -> str:
    name = (pod.get("metadata") or {}).get("name", "")
    spec = pod.get("spec") or {}
    parts = []
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        cname = container.get("name", "")
        try:
            text = cluster.logs(name, namespace, container=cname, tail_lines=TAIL_LINES,
                                timeout=LOGS_TIMEOUT)
        except errors.ApiError as err:
            text = f"(no logs: {err.message})"
        parts.append(f"--- container {cname} (last {TAIL_LINES} lines) ---\n"
                     f"{text.rstrip() or '(no output)'}")
    return "\n".join(parts) if parts else "(no containers)"


def _capped(text: str) -> str:
    if len(text) <= MAX_SECTION:
        return text
    return f"(first {len(text) - MAX_SECTION} characters cut)\n" + text[-MAX_SECTION:]
