"""Object metadata: names (Kubernetes' ValidateNameFunc(name, prefix)), labels,
annotations, owner references, finalizers, and what an update may not change."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from skiff.api.limits import MAX_ANNOTATIONS_BYTES
from skiff.api.selectors import (
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_label_key,
    validate_label_value,
)
from skiff.api.v1 import meta_pb2
from skiff.api.validation.errors import (
    Errors,
    forbidden,
    immutable,
    invalid,
    nonnegative,
    required,
    too_long,
)
from skiff.api.validation.formats import byte_len, dns1035_label, qualified_name

NameFn = Callable[[str, bool], Errors]


def _mask_trailing_dash(name: str) -> str:
    # A generateName prefix may end in '-'; Kubernetes checks it with a letter instead.
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def subdomain_name(name: str, prefix: bool) -> Errors:
    return validate_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def label_name(name: str, prefix: bool) -> Errors:
    return validate_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def dns1035_name(name: str, prefix: bool) -> Errors:
    return dns1035_label(_mask_trailing_dash(name) if prefix else name)


def path_segment_name(name: str, prefix: bool) -> Errors:
    """The only rule for names of kinds with free-form names (Events): usable in a URL."""
    if not prefix and name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


STANDARD_FINALIZERS = {"kubernetes", "orphan", "foregroundDeletion"}


def validate_meta(meta: meta_pb2.ObjectMeta, *, namespaced: bool, name_fn: NameFn,
                  path: str = "metadata") -> Errors:
    errs: Errors = []
    if meta.generate_name:
        errs += [invalid(f"{path}.generateName", meta.generate_name, msg)
                 for msg in name_fn(meta.generate_name, True)]
    if not meta.name:
        errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs += [invalid(f"{path}.name", meta.name, msg) for msg in name_fn(meta.name, False)]
    if namespaced:
        if not meta.namespace:
            errs.append(required(f"{path}.namespace"))
        else:
            errs += [invalid(f"{path}.namespace", meta.namespace, msg)
                     for msg in validate_dns1123_label(meta.namespace)]
    elif meta.namespace:
        errs.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    errs += nonnegative(f"{path}.generation", meta.generation)
    errs += validate_labels(meta.labels, f"{path}.labels")
    errs += validate_annotations(meta.annotations, f"{path}.annotations")
    errs += _validate_owner_references(meta.owner_references, f"{path}.ownerReferences")
    errs += _validate_finalizers(meta.finalizers, f"{path}.finalizers")
    return errs


def validate_labels(labels: Mapping[str, str], path: str) -> Errors:
    errs: Errors = []
    for key, value in sorted(labels.items()):
        errs += qualified_name(path, key)
        errs += [invalid(path, value, msg) for msg in validate_label_value(value)]
    return errs


def validate_annotations(annotations: Mapping[str, str], path: str) -> Errors:
    # Keys are qualified names, except that case does not matter.
    errs = [invalid(path, key, msg) for key in sorted(annotations)
            for msg in validate_label_key(key.lower())]
    # Kubernetes' TotalAnnotationSizeLimitB: keys and values together, in bytes.
    size = sum(byte_len(k) + byte_len(v) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        errs.append(too_long(path, MAX_ANNOTATIONS_BYTES))
    return errs


def _validate_owner_references(refs: Sequence[meta_pb2.OwnerReference], path: str) -> Errors:
    errs: Errors = []
    controller = ""
    for i, ref in enumerate(refs):
        ref_path = f"{path}[{i}]"
        group, _, version = ref.api_version.rpartition("/")
        if not version or ref.api_version.count("/") > 1:
            errs.append(invalid(f"{ref_path}.apiVersion", ref.api_version,
                                "version must not be empty"))
        if not ref.kind:
            errs.append(invalid(f"{ref_path}.kind", ref.kind, "must not be empty"))
        if not ref.name:
            errs.append(invalid(f"{ref_path}.name", ref.name, "must not be empty"))
        if not ref.uid:
            errs.append(invalid(f"{ref_path}.uid", ref.uid, "must not be empty"))
        if (group, version, ref.kind) == ("", "v1", "Event"):
            errs.append(invalid(ref_path, ref, "/v1, Kind=Event is disallowed from being an "
                                               "owner"))
        if ref.HasField("controller") and ref.controller:
            this = f"{ref.kind}/{ref.name}"
            if controller:
                errs.append(invalid(path, list(refs), "Only one reference can have Controller "
                                    f'set to true. Found "true" in references for {controller} '
                                    f"and {this}"))
            else:
                controller = this
    return errs


def _validate_finalizers(finalizers: Sequence[str], path: str) -> Errors:
    errs: Errors = []
    for i, name in enumerate(finalizers):
        errs += qualified_name(path, name)
        # A finalizer without a domain must be one Kubernetes itself defines.
        if "/" not in name and name not in STANDARD_FINALIZERS:
            errs.append(invalid(f"{path}[{i}]", name, "name is neither a standard finalizer "
                                "name nor is it fully qualified"))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        errs.append(invalid(path, list(finalizers), "finalizer orphan and foregroundDeletion "
                            "cannot be both set"))
    return errs


def validate_meta_update(new: meta_pb2.ObjectMeta, old: meta_pb2.ObjectMeta) -> Errors:
    errs: Errors = []
    if old.HasField("deletion_timestamp"):
        added = sorted(set(new.finalizers) - set(old.finalizers))
        if added:
            errs.append(forbidden("metadata.finalizers", "no new finalizers can be added if "
                                  f"the object is being deleted, found new finalizers {added}"))
    if new.generation < old.generation:
        errs.append(invalid("metadata.generation", new.generation, "must not be decremented"))
    for name, attr in (("name", "name"), ("namespace", "namespace"), ("uid", "uid")):
        if getattr(new, attr) != getattr(old, attr):
            errs.append(immutable(f"metadata.{name}", getattr(new, attr)))
    for name, attr in (("creationTimestamp", "creation_timestamp"),
                       ("deletionTimestamp", "deletion_timestamp")):
        if (new.HasField(attr), getattr(new, attr)) != (old.HasField(attr), getattr(old, attr)):
            errs.append(immutable(f"metadata.{name}", _timestamp(new, attr)))
    if (new.HasField("deletion_grace_period_seconds") != old.HasField(
            "deletion_grace_period_seconds")
            or new.deletion_grace_period_seconds != old.deletion_grace_period_seconds):
        grace = (new.deletion_grace_period_seconds
                 if new.HasField("deletion_grace_period_seconds") else None)
        errs.append(immutable("metadata.deletionGracePeriodSeconds", grace))
    return errs


def _timestamp(meta: meta_pb2.ObjectMeta, attr: str) -> str | None:
    if not meta.HasField(attr):
        return None
    return str(getattr(meta, attr).ToJsonString())
