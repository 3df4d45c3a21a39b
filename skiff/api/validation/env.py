"""Containers' environment: `env` (values and valueFrom references) and `envFrom`."""

from __future__ import annotations

from collections.abc import Sequence

from skiff.api.v1 import core_pb2
from skiff.api.validation.errors import Errors, invalid, required, unsupported
from skiff.api.validation.formats import config_map_key, env_var_name, qualified_name
from skiff.api.validation.meta import subdomain_name

_ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                    "spec.serviceAccountName", "status.hostIP", "status.hostIPs",
                    "status.podIP", "status.podIPs")
_DOWNWARD_API_FIELDS = {"metadata.annotations", "metadata.labels", "metadata.name",
                        "metadata.namespace", "metadata.uid", "spec.nodeName",
                        "spec.restartPolicy", "spec.serviceAccountName", "spec.schedulerName",
                        "status.phase", "status.hostIP", "status.hostIPs", "status.podIP",
                        "status.podIPs"}


def validate_env(env: Sequence[core_pb2.EnvVar], path: str) -> Errors:
    errs: Errors = []
    for i, var in enumerate(env):
        v_path = f"{path}[{i}]"
        if not var.name:
            errs.append(required(f"{v_path}.name"))
        else:
            errs += [invalid(f"{v_path}.name", var.name, msg) for msg in env_var_name(var.name)]
        if var.HasField("value_from"):
            errs += _validate_env_value_from(var, f"{v_path}.valueFrom")
    return errs


def _validate_env_value_from(var: core_pb2.EnvVar, path: str) -> Errors:
    source = var.value_from
    errs: Errors = []
    count = 0
    if source.HasField("field_ref"):
        count += 1
        errs += _validate_field_ref(source.field_ref, f"{path}.fieldRef")
    if source.HasField("config_map_key_ref"):
        count += 1
        errs += _validate_key_selector(source.config_map_key_ref, f"{path}.configMapKeyRef")
    if source.HasField("secret_key_ref"):
        count += 1
        errs += _validate_key_selector(source.secret_key_ref, f"{path}.secretKeyRef")
    if count == 0:
        errs.append(invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                      "`configMapKeyRef` or `secretKeyRef`"))
    elif var.value:
        errs.append(invalid(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        errs.append(invalid(path, "", "may not have more than one field specified at a time"))
    return errs


def _split_subscript(field_path: str) -> tuple[str, str] | None:
    """`metadata.labels['app']` -> (`metadata.labels`, `app`)."""
    if not field_path.endswith("']"):
        return None
    head, sep, key = field_path[:-2].partition("['")
    if not sep or not head:
        return None
    return head, key


def _validate_field_ref(ref: core_pb2.ObjectFieldSelector, path: str) -> Errors:
    if not ref.api_version:
        return [required(f"{path}.apiVersion")]
    if not ref.field_path:
        return [required(f"{path}.fieldPath")]
    fp_path = f"{path}.fieldPath"
    if ref.api_version != "v1":
        return [invalid(fp_path, ref.field_path, "error converting fieldPath: unsupported pod "
                                                 f"version: {ref.api_version}")]
    subscripted = _split_subscript(ref.field_path)
    if subscripted is not None:
        field, key = subscripted
        if field == "metadata.annotations":
            return qualified_name(path, key.lower())
        if field == "metadata.labels":
            return qualified_name(path, key)
        return [invalid(fp_path, ref.field_path, "error converting fieldPath: field label does "
                                                 f"not support subscript: {ref.field_path}")]
    if ref.field_path not in _DOWNWARD_API_FIELDS:
        return [invalid(fp_path, ref.field_path, "error converting fieldPath: field label not "
                                                 f"supported: {ref.field_path}")]
    if ref.field_path not in _ENV_FIELD_PATHS:
        return [unsupported(fp_path, ref.field_path, _ENV_FIELD_PATHS)]
    return []


def _validate_key_selector(ref: core_pb2.ConfigMapKeySelector | core_pb2.SecretKeySelector,
                           path: str) -> Errors:
    errs = [invalid(f"{path}.name", ref.name, msg) for msg in subdomain_name(ref.name, False)]
    if not ref.key:
        errs.append(required(f"{path}.key"))
    else:
        errs += [invalid(f"{path}.key", ref.key, msg) for msg in config_map_key(ref.key)]
    return errs


def validate_env_from(sources: Sequence[core_pb2.EnvFromSource], path: str) -> Errors:
    errs: Errors = []
    for i, source in enumerate(sources):
        s_path = f"{path}[{i}]"
        if source.prefix:
            errs += [invalid(f"{s_path}.prefix", source.prefix, msg)
                     for msg in env_var_name(source.prefix)]
        count = 0
        for field, name in (("config_map_ref", "configMapRef"), ("secret_ref", "secretRef")):
            if source.HasField(field):
                count += 1
                errs += _validate_ref_name(getattr(source, field).name, f"{s_path}.{name}.name")
        if count == 0:
            errs.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            errs.append(invalid(path, "", "may not have more than one field specified at a "
                                          "time"))
    return errs


def _validate_ref_name(name: str, path: str) -> Errors:
    if not name:
        return [required(path)]
    return [invalid(path, name, msg) for msg in subdomain_name(name, True)]
