"""The three-way merge of client-side apply, as `kubectl apply` computes it.

Three inputs: the configuration applied last time (kept on the object in the annotation
`kubectl.kubernetes.io/last-applied-configuration`, skiff.api.rollout.LAST_APPLIED_ANNOTATION),
the manifest applied now, and the live object as the server has it. The result is the object
to write back:
- every field the manifest sets wins;
- a field that was in the last applied configuration and is gone from the manifest is removed
  (the user deleted it from the file, so it goes from the cluster too);
- every other live field stays: defaults filled in by the server, allocated values such as a
  Service's clusterIP, a replica count changed by `skiff scale` when the manifest leaves
  replicas out, status;
- `null` in the manifest removes the field.

Maps merge key by key, recursively. Lists are replaced as a whole, except the well-known lists
that Kubernetes' strategic merge patch merges by a key (containers by name, container ports by
containerPort and protocol, a Service's ports by port and protocol, ...): their items are matched
by key and merged as maps, items removed from the manifest since the last apply are removed, and
items only the server knows are kept. The table below is that subset of Kubernetes' patch
strategies for the kinds Skiff serves.

Pure functions over JSON-shaped values (dicts, lists, scalars); the inputs are never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Path = tuple[str, ...]


@dataclass(frozen=True)
class ListRule:
    """How a list merges. `keys`: the fields that identify an item, each with the value the
    server defaults it to when a manifest leaves it out (so that `{containerPort: 80}` matches a
    live `{containerPort: 80, protocol: TCP}`). No keys: a list of scalars merged as a set, as
    Kubernetes' `patchStrategy: merge` does for metadata.finalizers."""

    keys: tuple[tuple[str, Any], ...] = ()


_BY_NAME = ListRule((("name", None),))
_CONTAINER_PORT = ListRule((("containerPort", None), ("protocol", "TCP")))

# Path suffixes (field names from the object's root, list indexes left out) to the lists'
# merge rules; the first suffix that matches wins, so longer suffixes come first. Kubernetes
# keys container and Service ports by the port alone; keying by (port, protocol) as their
# listMapKeys do keeps a DNS server's 53/TCP and 53/UDP apart.
_LIST_RULES: tuple[tuple[Path, ListRule], ...] = (
    (("containers", "ports"), _CONTAINER_PORT),
    (("initContainers", "ports"), _CONTAINER_PORT),
    (("ephemeralContainers", "ports"), _CONTAINER_PORT),
    (("spec", "ports"), ListRule((("port", None), ("protocol", "TCP")))),  # Service
    (("metadata", "ownerReferences"), ListRule((("uid", None),))),
    (("metadata", "finalizers"), ListRule()),
    (("containers",), _BY_NAME),
    (("initContainers",), _BY_NAME),
    (("ephemeralContainers",), _BY_NAME),
    (("volumes",), _BY_NAME),
    (("imagePullSecrets",), _BY_NAME),
    (("env",), _BY_NAME),
    (("volumeMounts",), ListRule((("mountPath", None),))),
    (("volumeDevices",), ListRule((("devicePath", None),))),
    (("hostAliases",), ListRule((("ip", None),))),
    (
        ("topologySpreadConstraints",),
        ListRule((("topologyKey", None), ("whenUnsatisfiable", None))),
    ),
)

# Maps of Kubernetes' `retainKeys` strategy: a union (one of several fields is set), so the
# fields the manifest leaves out are cleared rather than kept from the live object. Otherwise a
# Deployment switched to `strategy: {type: Recreate}` would keep its defaulted rollingUpdate, and
# a volume changed from emptyDir to hostPath would have both. Volumes are items of a list: their
# path is the list's.
_RETAIN_KEYS: tuple[Path, ...] = (
    ("spec", "strategy"),  # Deployment
    ("spec", "updateStrategy"),  # DaemonSet
    ("volumes",),
)


def three_way_merge(
    last_applied: Mapping[str, Any] | None, manifest: Mapping[str, Any], live: Mapping[str, Any]
) -> dict[str, Any]:
    """The object to write so that the cluster matches `manifest` (see the module's doc).

    `last_applied` is None for an object never applied before: nothing is removed then, since
    nothing says which live fields came from an earlier manifest.
    """
    return _merge_maps(last_applied, manifest, live, ())


def _ends_with(path: Path, suffix: Path) -> bool:
    return len(path) >= len(suffix) and path[len(path) - len(suffix) :] == suffix


def list_rule(path: Path) -> ListRule | None:
    """The merge rule of the list at `path`, or None when the list is replaced whole."""
    for suffix, rule in _LIST_RULES:
        if _ends_with(path, suffix):
            return rule
    return None


def _retains_keys(path: Path) -> bool:
    return any(_ends_with(path, suffix) for suffix in _RETAIN_KEYS)


def _merge_maps(
    last: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    live: Mapping[str, Any] | None,
    path: Path,
) -> dict[str, Any]:
    result: dict[str, Any] = copy.deepcopy(dict(live)) if live else {}
    if _retains_keys(path):
        result = {k: v for k, v in result.items() if k in new}
    if last:
        for key in last:
            if key not in new:
                result.pop(key, None)
    for key, value in new.items():
        if value is None:
            result.pop(key, None)
            continue
        last_value = last.get(key) if last else None
        live_value = live.get(key) if live else None
        result[key] = _merge_values(last_value, value, live_value, (*path, key))
    return result


def _merge_values(last: Any, new: Any, live: Any, path: Path) -> Any:
    if isinstance(new, Mapping) and isinstance(live, Mapping):
        return _merge_maps(last if isinstance(last, Mapping) else None, new, live, path)
    if isinstance(new, list) and isinstance(live, list) and new:
        rule = list_rule(path)
        if rule is not None:
            last_list = last if isinstance(last, list) else []
            merged = (
                _merge_keyed(last_list, new, live, path, rule)
                if rule.keys
                else _merge_set(last_list, new, live)
            )
            if merged is not None:
                return merged
    return _without_nulls(new)


def _item_key(item: Any, rule: ListRule) -> tuple[Hashable, ...] | None:
    """An item's identity under `rule`, or None when it has no usable key."""
    if not isinstance(item, Mapping):
        return None
    first_field = rule.keys[0][0]
    if item.get(first_field) is None:
        return None
    key = tuple(default if item.get(field) is None else item[field] for field, default in rule.keys)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _merge_keyed(
    last: Sequence[Any], new: Sequence[Any], live: Sequence[Any], path: Path, rule: ListRule
) -> list[Any] | None:
    """Items merged by key, or None when the manifest's items lack their key (the list is
    then replaced, and the server says what is wrong with it)."""
    new_keys = [_item_key(item, rule) for item in new]
    if any(k is None for k in new_keys):
        return None
    live_by_key: dict[Hashable, Any] = {}
    for item in live:
        k = _item_key(item, rule)
        if k is not None:
            live_by_key.setdefault(k, item)
    last_by_key: dict[Hashable, Any] = {}
    for item in last:
        k = _item_key(item, rule)
        if k is not None:
            last_by_key.setdefault(k, item)
    out: list[Any] = []
    for item, k in zip(new, new_keys, strict=True):
        live_item = live_by_key.get(k)
        if live_item is None:
            out.append(_without_nulls(item))
        else:
            out.append(_merge_maps(last_by_key.get(k), item, live_item, path))
    # Items only the live object has, that no manifest ever listed: someone else added them,
    # so they stay (after the manifest's items, in their live order).
    wanted = set(new_keys)
    for item in live:
        k = _item_key(item, rule)
        if k is None or (k not in wanted and k not in last_by_key):
            out.append(copy.deepcopy(item))
    return out


def _merge_set(last: Sequence[Any], new: Sequence[Any], live: Sequence[Any]) -> list[Any] | None:
    """A list of scalars merged as a set: the manifest's items, plus live items that were
    never in a manifest."""
    if any(isinstance(v, Mapping | list) for v in (*new, *live)):
        return None
    out = list(new)
    for value in live:
        if value not in new and value not in last and value not in out:
            out.append(value)
    return out


def _without_nulls(value: Any) -> Any:
    """A deep copy of a manifest's value with null map entries dropped: `null` means "not
    set", and a field the live object does not have is not set already."""
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
