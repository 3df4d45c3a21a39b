"""A container's environment, built the way the Kubernetes kubelet builds it.

This follows `makeEnvironmentVariables` in k8s.io/kubernetes pkg/kubelet/kubelet_pods.go:

1. `envFrom` sources, in order: every key of the ConfigMap or Secret, with the source's
   prefix; keys that are not valid variable names are skipped and reported (Kubernetes
   records an `InvalidEnvironmentVariableNames` event; we return the message).
2. `env` entries, in order; a later entry of the same name replaces the earlier value.
   A `value` has its `$(VAR)` references expanded against what is defined so far (the
   envFrom keys and the earlier entries), then the service variables. Otherwise
   `valueFrom` resolves a pod field, a Secret key or a ConfigMap key.
3. The service variables not defined by the container come last.

Kubernetes returns the variables in Go map order (random); we keep first-definition order,
which is stable and puts a variable where the user first declared it.

A reference to a missing object or key fails the container's start (the kubelet reports
CreateContainerConfigError and retries) unless it is `optional: true`, in which case the
variable (or the whole envFrom source) is simply left out, as in Kubernetes.
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from skiff.api.v1 import core_pb2

__all__ = [
    "EnvError",
    "MissingReference",
    "ObjectSource",
    "UnsupportedFieldPath",
    "build_env",
    "expand",
    "expand_command",
    "is_env_var_name",
]

Env = list[tuple[str, str]]

# k8s.io/apimachinery/pkg/util/validation.IsEnvVarName (the strict, pre-1.32 rule, which is
# also what Skiff's API validation enforces for `env` names and envFrom prefixes).
_ENV_NAME_RE = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


class ObjectSource(Protocol):
    """Where the kubelet reads Secrets and ConfigMaps (its informer caches)."""

    def get_secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        """The Secret, or None when it does not exist."""

    def get_config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        """The ConfigMap, or None when it does not exist."""


class EnvError(Exception):
    """The environment cannot be built; the container cannot start (yet)."""


class MissingReference(EnvError):
    """A non-optional reference to a Secret, ConfigMap or key that does not exist.

    The message is Kubernetes' own, e.g. `secret "db-pass" not found` or
    `couldn't find key password in Secret default/db-pass`, so users can search for it.
    """

    # Set by the volume manager to the pod volume that needs the object, so an event can
    # read like Kubernetes' `MountVolume.SetUp failed for volume "creds" : ...`.
    volume: str | None = None


class UnsupportedFieldPath(EnvError):
    """A `fieldRef` names a field the downward API cannot provide as a variable."""


def is_env_var_name(name: str) -> bool:
    """Kubernetes' IsEnvVarName: the name regex, and no `.`/`..`-prefixed names."""
    return bool(_ENV_NAME_RE.fullmatch(name)) and name != "." and not name.startswith("..")


# ---- $(VAR) expansion ----

def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion (third_party/forked/golang/expansion).

    `$(VAR)` becomes VAR's value when VAR is in `env`, and stays as written otherwise;
    `$$` is an escaped `$`; any other `$x` and an unclosed `$(` are copied unchanged.
    The value substituted is not expanded again.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != "$" or i + 1 == n:  # a `$` at the very end is kept as is
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":  # escaped operator
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close < 0:
                # Unclosed: emit `$(` and go on scanning after it, as Kubernetes does.
                out.append("$(")
                i += 2
                continue
            name = text[i + 2:close]
            out.append(env[name] if name in env else text[i:close + 1])
            i = close + 1
        else:  # `$x`: not an expression; both characters pass through
            out.append(char + following)
            i += 2
    return "".join(out)


def expand_command(container: core_pb2.Container,
                   env: Mapping[str, str] | Iterable[tuple[str, str]]
                   ) -> tuple[list[str], list[str]]:
    """The container's command and args with `$(VAR)` expanded against its environment.

    Only the final environment counts here (ExpandContainerCommandAndArgs): references to
    undefined variables stay as written, so a shell may still see them.
    """
    mapping = env if isinstance(env, Mapping) else dict(env)
    command = [expand(part, mapping) for part in container.command]
    args = [expand(part, mapping) for part in container.args]
    return command, args


# ---- building the environment ----

class _Lookup:
    """The Secrets and ConfigMaps one build reads, each fetched at most once.

    Kubernetes caches them per call too, so that every variable of one container sees the
    same version of an object even if it changes while the environment is built.
    """

    def __init__(self, source: ObjectSource, namespace: str) -> None:
        self._source = source
        self.namespace = namespace
        self._secrets: dict[str, core_pb2.Secret] = {}
        self._config_maps: dict[str, core_pb2.ConfigMap] = {}

    def secret(self, name: str, optional: bool) -> core_pb2.Secret | None:
        """The Secret; None when missing and optional; MissingReference when required."""
        if name not in self._secrets:
            found = self._source.get_secret(self.namespace, name)
            if found is None:
                if optional:
                    return None
                raise MissingReference(f'secret "{name}" not found')
            self._secrets[name] = found
        return self._secrets[name]

    def config_map(self, name: str, optional: bool) -> core_pb2.ConfigMap | None:
        if name not in self._config_maps:
            found = self._source.get_config_map(self.namespace, name)
            if found is None:
                if optional:
                    return None
                raise MissingReference(f'configmap "{name}" not found')
            self._config_maps[name] = found
        return self._config_maps[name]


def build_env(pod: core_pb2.Pod, container: core_pb2.Container, source: ObjectSource, *,
              pod_ip: str, host_ip: str,
              service_env: Mapping[str, str] | Iterable[tuple[str, str]] = (),
              pod_ips: Sequence[str] = (), host_ips: Sequence[str] = ()
              ) -> tuple[Env, list[str]]:
    """The container's environment, and warnings about envFrom keys that were skipped.

    `pod_ips`/`host_ips` are all the pod's/node's addresses (`status.podIPs`,
    `status.hostIPs`); when empty, `pod_ip`/`host_ip` alone. Raises MissingReference for a
    missing non-optional Secret, ConfigMap or key, UnsupportedFieldPath for a bad fieldRef.
    """
    lookup = _Lookup(source, pod.metadata.namespace)
    services = dict(service_env)
    defined: dict[str, str] = {}
    warnings: list[str] = []
    for env_from in container.env_from:
        warning = _add_env_from(env_from, lookup, defined)
        if warning:
            warnings.append(warning)
    # Earlier definitions shadow service variables in `$(VAR)`, as in MappingFuncFor.
    visible = ChainMap(defined, services)
    addresses = _Addresses(pod_ip, tuple(pod_ips), host_ip, tuple(host_ips))
    for var in container.env:
        value = _env_value(var, pod, lookup, visible, addresses)
        if value is not None:
            defined[var.name] = value
    env = list(defined.items())
    env += [(name, value) for name, value in services.items() if name not in defined]
    return env, warnings


def _add_env_from(env_from: core_pb2.EnvFromSource, lookup: _Lookup,
                  defined: dict[str, str]) -> str | None:
    """Adds one envFrom source's keys to `defined`; returns the warning for skipped keys."""
    found = _env_from_values(env_from, lookup)
    if found is None:
        return None
    noun, ref_name, values = found
    invalid: list[str] = []
    # Sorted: the map's order means nothing, and a stable order makes the result stable.
    for key in sorted(values):
        name = env_from.prefix + key
        if is_env_var_name(name):
            defined[name] = values[key]
        else:
            invalid.append(name)
    if not invalid:
        return None
    return (f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {noun} "
            f"{lookup.namespace}/{ref_name} were skipped since they are considered invalid "
            "environment variable names.")


def _env_from_values(env_from: core_pb2.EnvFromSource, lookup: _Lookup
                     ) -> tuple[str, str, dict[str, str]] | None:
    """(noun for messages, object name, its keys and values); None: optional and missing."""
    if env_from.HasField("config_map_ref"):
        ref = env_from.config_map_ref
        config_map = lookup.config_map(ref.name, ref.optional)
        if config_map is None:
            return None
        return "configMap", ref.name, dict(config_map.data)
    if env_from.HasField("secret_ref"):
        s_ref = env_from.secret_ref
        secret = lookup.secret(s_ref.name, s_ref.optional)
        if secret is None:
            return None
        return "secret", s_ref.name, {key: _text(data) for key, data in secret.data.items()}
    return None


class _Addresses:
    """The pod's and node's IPs, as podFieldSelectorRuntimeValue sees them."""

    def __init__(self, pod_ip: str, pod_ips: tuple[str, ...], host_ip: str,
                 host_ips: tuple[str, ...]) -> None:
        self.pod_ips = pod_ips or ((pod_ip,) if pod_ip else ())
        self.host_ips = host_ips or ((host_ip,) if host_ip else ())
        # Kubernetes takes the first of the list when there is one (podIPs[0]).
        self.pod_ip = self.pod_ips[0] if self.pod_ips else ""
        self.host_ip = self.host_ips[0] if self.host_ips else ""


def _env_value(var: core_pb2.EnvVar, pod: core_pb2.Pod, lookup: _Lookup,
               visible: Mapping[str, str], addresses: _Addresses) -> str | None:
    """One variable's value; None when an optional reference is missing (variable unset)."""
    if var.value:
        return expand(var.value, visible)
    if not var.HasField("value_from"):
        return ""
    source = var.value_from
    if source.HasField("field_ref"):
        return _field_value(source.field_ref, pod, addresses)
    if source.HasField("config_map_key_ref"):
        return _config_map_key(source.config_map_key_ref, lookup)
    if source.HasField("secret_key_ref"):
        return _secret_key(source.secret_key_ref, lookup)
    return ""


def _config_map_key(ref: core_pb2.ConfigMapKeySelector, lookup: _Lookup) -> str | None:
    config_map = lookup.config_map(ref.name, ref.optional)
    if config_map is None:
        return None
    if ref.key in config_map.data:
        return config_map.data[ref.key]
    if ref.optional:
        return None
    raise MissingReference(
        f"couldn't find key {ref.key} in ConfigMap {lookup.namespace}/{ref.name}")


def _secret_key(ref: core_pb2.SecretKeySelector, lookup: _Lookup) -> str | None:
    secret = lookup.secret(ref.name, ref.optional)
    if secret is None:
        return None
    if ref.key in secret.data:
        return _text(secret.data[ref.key])
    if ref.optional:
        return None
    raise MissingReference(
        f"couldn't find key {ref.key} in Secret {lookup.namespace}/{ref.name}")


def _text(data: bytes) -> str:
    """Secret bytes as a variable's value. Go's string(bytes) keeps invalid UTF-8 as is;
    Python strings cannot, so invalid sequences become U+FFFD rather than failing the pod."""
    return data.decode("utf-8", errors="replace")


def _field_value(ref: core_pb2.ObjectFieldSelector, pod: core_pb2.Pod,
                 addresses: _Addresses) -> str:
    """podFieldSelectorRuntimeValue + fieldpath.ExtractFieldPathAsString."""
    if ref.api_version not in ("", "v1"):
        raise UnsupportedFieldPath(f"unsupported pod version: {ref.api_version}")
    path = ref.field_path
    subscript = _subscript(path)
    if subscript is not None:
        return _subscripted_value(path, *subscript, pod)
    simple = _simple_fields(pod, addresses)
    if path in simple:
        return simple[path]
    raise UnsupportedFieldPath(f"unsupported fieldPath: {path}")


def _simple_fields(pod: core_pb2.Pod, addresses: _Addresses) -> dict[str, str]:
    # Skiff has no ServiceAccount objects; Kubernetes' admission sets the name to "default"
    # on every pod that names none, so that is what a pod reading it expects to see.
    account = getattr(pod.spec, "service_account_name", "") or "default"
    return {
        "metadata.name": pod.metadata.name,
        "metadata.namespace": pod.metadata.namespace,
        "metadata.uid": pod.metadata.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": account,
        "status.podIP": addresses.pod_ip,
        "status.podIPs": ",".join(addresses.pod_ips),
        "status.hostIP": addresses.host_ip,
        "status.hostIPs": ",".join(addresses.host_ips),
    }


def _subscript(path: str) -> tuple[str, str] | None:
    """`metadata.labels['app']` -> (`metadata.labels`, `app`), as SplitMaybeSubscriptedPath."""
    if not path.endswith("']"):
        return None
    head, sep, key = path[:-2].partition("['")
    return (head, key) if sep else None


def _subscripted_value(path: str, field: str, key: str, pod: core_pb2.Pod) -> str:
    if field == "metadata.labels":
        return pod.metadata.labels.get(key, "")
    if field == "metadata.annotations":
        return pod.metadata.annotations.get(key, "")
    raise UnsupportedFieldPath(f"fieldPath {path!r} does not support subscript")
