"""Security contexts of pods and containers."""

from __future__ import annotations

from collections.abc import Iterable

from skiff.api.v1 import core_pb2
from skiff.api.validation.errors import Errors, invalid, range_error
from skiff.api.validation.formats import MAX_INT32


def _validate_ids(path: str, values: Iterable[tuple[str, int]]) -> Errors:
    return [invalid(f"{path}.{name}", value, range_error(0, MAX_INT32))
            for name, value in values if not 0 <= value <= MAX_INT32]


def validate_pod_security_context(sc: core_pb2.PodSecurityContext, path: str) -> Errors:
    ids = [(name, getattr(sc, attr)) for name, attr in (
        ("runAsUser", "run_as_user"), ("runAsGroup", "run_as_group"), ("fsGroup", "fs_group"))
        if sc.HasField(attr)]
    ids += [(f"supplementalGroups[{i}]", gid) for i, gid in enumerate(sc.supplemental_groups)]
    return _validate_ids(path, ids)


def validate_security_context(container: core_pb2.Container, path: str) -> Errors:
    if not container.HasField("security_context"):
        return []
    sc = container.security_context
    errs = _validate_ids(path, [(name, getattr(sc, attr)) for name, attr in (
        ("runAsUser", "run_as_user"), ("runAsGroup", "run_as_group")) if sc.HasField(attr)])
    no_escalation = sc.HasField("allow_privilege_escalation") and not sc.allow_privilege_escalation
    if no_escalation and sc.HasField("privileged") and sc.privileged:
        errs.append(invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and "
                                      "`privileged` to true"))
    if no_escalation and "CAP_SYS_ADMIN" in sc.capabilities.add:
        errs.append(invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and "
                                      "`capabilities.Add` CAP_SYS_ADMIN"))
    return errs
