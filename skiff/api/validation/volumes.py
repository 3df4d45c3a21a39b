"""Pod volumes, their sources, and containers' volume mounts."""

from __future__ import annotations

from collections.abc import Sequence

from skiff.api.selectors import validate_dns1123_label
from skiff.api.v1 import core_pb2
from skiff.api.validation.errors import (
    Errors,
    duplicate,
    exactly_one,
    forbidden,
    invalid,
    not_found,
    required,
    unsupported,
)
from skiff.api.validation.resources import quantity_or_none

_HOST_PATH_TYPES = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File",
                    "FileOrCreate", "Socket")


_FILE_MODE_ERR = "must be a number between 0 and 0777 (octal), both inclusive"


def validate_volumes(volumes: Sequence[core_pb2.Volume], path: str) -> tuple[set[str], Errors]:
    """The names a container may mount (valid volumes only), and the problems."""
    errs: Errors = []
    names: set[str] = set()
    for i, volume in enumerate(volumes):
        v_path = f"{path}[{i}]"
        problems = _validate_volume_source(volume, v_path)
        if not volume.name:
            problems.append(required(f"{v_path}.name"))
        else:
            problems += [invalid(f"{v_path}.name", volume.name, msg)
                         for msg in validate_dns1123_label(volume.name)]
        if volume.name in names:
            problems.append(duplicate(f"{v_path}.name", volume.name))
        if problems:
            errs += problems
        else:
            names.add(volume.name)
    return names, errs


def _validate_volume_source(volume: core_pb2.Volume, path: str) -> Errors:
    return exactly_one(volume, path, "volume type", (
        ("empty_dir", "emptyDir", _validate_empty_dir),
        ("host_path", "hostPath", _validate_host_path),
        ("secret", "secret", _validate_secret_volume),
        ("config_map", "configMap", _validate_config_map_volume),
    ))


def _validate_empty_dir(source: core_pb2.EmptyDirVolumeSource, path: str) -> Errors:
    if source.HasField("size_limit"):
        quantity = quantity_or_none(source.size_limit.value)
        if quantity is None or quantity.sign() < 0:
            return [forbidden(f"{path}.sizeLimit",
                              "SizeLimit field must be a valid resource quantity")]
    return []


def _validate_host_path(source: core_pb2.HostPathVolumeSource, path: str) -> Errors:
    if not source.path:
        return [required(f"{path}.path")]
    errs = _no_backsteps(source.path, f"{path}.path")
    if source.HasField("type") and source.type not in _HOST_PATH_TYPES:
        errs.append(unsupported(f"{path}.type", source.type, _HOST_PATH_TYPES))
    return errs


def _validate_secret_volume(source: core_pb2.SecretVolumeSource, path: str) -> Errors:
    errs = [] if source.secret_name else [required(f"{path}.secretName")]
    return errs + _validate_projection(source, path)


def _validate_config_map_volume(source: core_pb2.ConfigMapVolumeSource, path: str) -> Errors:
    errs = [] if source.name else [required(f"{path}.name")]
    return errs + _validate_projection(source, path)


def _validate_projection(source: core_pb2.SecretVolumeSource | core_pb2.ConfigMapVolumeSource,
                         path: str) -> Errors:
    errs: Errors = []
    if source.HasField("default_mode") and not 0 <= source.default_mode <= 0o777:
        errs.append(invalid(f"{path}.defaultMode", source.default_mode, _FILE_MODE_ERR))
    for i, item in enumerate(source.items):
        i_path = f"{path}.items[{i}]"
        if not item.key:
            errs.append(required(f"{i_path}.key"))
        if not item.path:
            errs.append(required(f"{i_path}.path"))
        errs += _local_non_reserved_path(item.path, f"{i_path}.path")
        if item.HasField("mode") and not 0 <= item.mode <= 0o777:
            errs.append(invalid(f"{i_path}.mode", item.mode, _FILE_MODE_ERR))
    return errs


def _no_backsteps(target: str, path: str) -> Errors:
    if ".." in target.replace("\\", "/").split("/"):
        return [invalid(path, target, "must not contain '..'")]
    return []


def _local_descending_path(target: str, path: str) -> Errors:
    errs = [invalid(path, target, "must be a relative path")] if target.startswith("/") else []
    return errs + _no_backsteps(target, path)


def _local_non_reserved_path(target: str, path: str) -> Errors:
    errs = _local_descending_path(target, path)
    # Kubernetes keeps '..'-prefixed names for the atomic writer's own files.
    if target.startswith("..") and not target.startswith("../"):
        errs.append(invalid(path, target, "must not start with '..'"))
    return errs


def validate_volume_mounts(mounts: Sequence[core_pb2.VolumeMount], volumes: set[str],
                           path: str) -> Errors:
    errs: Errors = []
    mount_points: set[str] = set()
    for i, mount in enumerate(mounts):
        m_path = f"{path}[{i}]"
        if not mount.name:
            errs.append(required(f"{m_path}.name"))
        if mount.name not in volumes:
            errs.append(not_found(f"{m_path}.name", mount.name))
        if not mount.mount_path:
            errs.append(required(f"{m_path}.mountPath"))
        elif not mount.mount_path.startswith("/"):
            errs.append(invalid(f"{m_path}.mountPath", mount.mount_path,
                                "must be an absolute path"))
        if mount.mount_path in mount_points:
            errs.append(invalid(f"{m_path}.mountPath", mount.mount_path, "must be unique"))
        mount_points.add(mount.mount_path)
        if mount.sub_path:
            errs += _local_descending_path(mount.sub_path, f"{m_path}.subPath")
    return errs
