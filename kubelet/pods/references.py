"""Which pods use which Secrets and ConfigMaps, so that a change of one wakes exactly the
pods that use it (their volume files follow; one waiting for it starts)."""

from __future__ import annotations

from skiff.api.v1 import core_pb2

# (kind, namespace, name) of a Secret or ConfigMap.
Ref = tuple[str, str, str]


def referenced_objects(pod: core_pb2.Pod) -> set[Ref]:
    """The Secrets and ConfigMaps the pod uses (volumes, env, envFrom, image pull
    secrets), as (kind, namespace, name)."""
    ns = pod.metadata.namespace
    refs: set[Ref] = set()
    for volume in pod.spec.volumes:
        if volume.HasField("secret"):
            refs.add(("Secret", ns, volume.secret.secret_name))
        elif volume.HasField("config_map"):
            refs.add(("ConfigMap", ns, volume.config_map.name))
    for ref in pod.spec.image_pull_secrets:
        refs.add(("Secret", ns, ref.name))
    for container in [*pod.spec.init_containers, *pod.spec.containers]:
        for source in container.env_from:
            if source.HasField("secret_ref"):
                refs.add(("Secret", ns, source.secret_ref.name))
            if source.HasField("config_map_ref"):
                refs.add(("ConfigMap", ns, source.config_map_ref.name))
        for var in container.env:
            if var.value_from.HasField("secret_key_ref"):
                refs.add(("Secret", ns, var.value_from.secret_key_ref.name))
            if var.value_from.HasField("config_map_key_ref"):
                refs.add(("ConfigMap", ns, var.value_from.config_map_key_ref.name))
    return refs


class ReferenceIndex:
    """Object -> uids of the pods using it, kept as pods come, change and go."""

    def __init__(self) -> None:
        self._users: dict[Ref, set[str]] = {}
        self._uses: dict[str, set[Ref]] = {}

    def users(self, ref: Ref) -> list[str]:
        return list(self._users.get(ref, ()))

    def set(self, uid: str, refs: set[Ref]) -> None:
        """The pod `uid` now uses exactly `refs` (none: it is forgotten)."""
        old = self._uses.get(uid, set())
        if old == refs:
            return
        for ref in old - refs:
            users = self._users.get(ref)
            if users is not None:
                users.discard(uid)
                if not users:
                    del self._users[ref]
        for ref in refs - old:
            self._users.setdefault(ref, set()).add(uid)
        if refs:
            self._uses[uid] = refs
        else:
            self._uses.pop(uid, None)
