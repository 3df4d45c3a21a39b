"""Getting a container's image onto the node: pull policy, pull secrets, pull back-off.

Reasons as Kubernetes reports them: ErrImagePull for a pull that just failed,
ImagePullBackOff while waiting to try again, ErrImageNeverPull for a missing image
under imagePullPolicy Never.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass

from kubelet.backoff import Backoff
from kubelet.env import ObjectSource
from kubelet.runtime import Auth, ContainerRuntime, ImageNotPresent, ImagePullError
from skiff.api.v1 import core_pb2

log = logging.getLogger(__name__)
DOCKER_HUB = "docker.io"


class ImageBackOff(ImagePullError):
    reason = "ImagePullBackOff"


@dataclass(frozen=True)
class PullOutcome:
    image_id: str
    pulled: bool  # False: it was already present


def registry_of(image: str) -> str:
    """The registry host of an image reference, as Docker reads it."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def auths_from_secret(secret: core_pb2.Secret) -> dict[str, Auth]:
    """Registry -> credentials from a kubernetes.io/dockerconfigjson (or .dockercfg) secret."""
    raw = secret.data.get(".dockerconfigjson") or secret.data.get(".dockercfg")
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except ValueError:
        return {}
    entries = config.get("auths", config) if isinstance(config, dict) else {}
    out: dict[str, Auth] = {}
    for server, entry in entries.items():
        if not isinstance(entry, dict):
            continue
        user, password = entry.get("username", ""), entry.get("password", "")
        if not user and entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        host = server.removeprefix("https://").removeprefix("http://").split("/")[0]
        if host in ("index.docker.io", "registry-1.docker.io"):
            host = DOCKER_HUB
        out[host] = Auth(username=user, password=password, server=server)
    return out


class ImageManager:
    def __init__(self, runtime: ContainerRuntime, source: ObjectSource,
                 backoff: Backoff | None = None) -> None:
        self.runtime = runtime
        self.source = source
        self.backoff = backoff or Backoff()

    async def ensure(self, pod: core_pb2.Pod, container: core_pb2.Container) -> PullOutcome:
        image, policy = container.image, container.image_pull_policy or "IfNotPresent"
        present = await self.runtime.image_id(image)
        if policy == "Never":
            if present is None:
                raise ImageNotPresent(f'Container image "{image}" is not present with pull '
                                      'policy of Never')
            return PullOutcome(present, False)
        if present is not None and policy == "IfNotPresent":
            return PullOutcome(present, False)
        key = f"{pod.metadata.uid}/{image}"
        wait = self.backoff.remaining(key)
        if wait > 0:
            raise ImageBackOff(f'Back-off pulling image "{image}"')
        try:
            image_id = await self.runtime.pull_image(image, self._auth(pod, image))
        except ImagePullError as err:
            self.backoff.next(key)
            raise ImagePullError(f'Failed to pull image "{image}": {err.message}') from None
        self.backoff.reset(key)
        return PullOutcome(image_id, True)

    def _auth(self, pod: core_pb2.Pod, image: str) -> Auth | None:
        registry = registry_of(image)
        for ref in pod.spec.image_pull_secrets:
            secret = self.source.get_secret(pod.metadata.namespace, ref.name)
            if secret is None:
                log.warning("pod %s/%s: image pull secret %s not found",
                            pod.metadata.namespace, pod.metadata.name, ref.name)
                continue
            auth = auths_from_secret(secret).get(registry)
            if auth is not None:
                return auth
        return None
