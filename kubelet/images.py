"""Getting a container's image onto the node: pull policy, pull secrets, pull back-off.

Reasons as Kubernetes reports them: ErrImagePull for a pull that just failed,
ImagePullBackOff while waiting to try again, ErrImageNeverPull for a missing image
under imagePullPolicy Never.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kubelet.env import ObjectSource
from kubelet.runtime import Auth, ContainerRuntime, ImageNotPresent, ImagePullError
from skiff.api.defaults import image_tag
from skiff.api.v1 import core_pb2
from skiff.client.backoff import Backoff
from skiff.client.clock import Clock

log = logging.getLogger(__name__)
DOCKER_HUB = "docker.io"
# The pull back-off: 10 s doubling to 5 minutes, counted from the failed pull.
PULL_BACKOFF_INITIAL = 10.0
PULL_BACKOFF_MAX = 300.0


class ImageBackOff(ImagePullError):
    """A pull failed recently: the next try waits `remaining` seconds."""

    reason = "ImagePullBackOff"

    def __init__(self, message: str, remaining: float) -> None:
        super().__init__(message)
        self.remaining = remaining


@dataclass(frozen=True)
class PullOutcome:
    image_id: str
    pulled: bool  # False: it was already present


def always_pull_warning(container: core_pb2.Container, present: bool) -> str | None:
    """Why an image tagged latest (or untagged) is pulled although the node may have it: the
    trap of images loaded into a node and then pulled anyway (kind#328). None for any other
    image or policy."""
    if container.image_pull_policy != "Always" or image_tag(container.image) != "latest":
        return None
    where = ("it is on the node, but Always pulls it anyway" if present
             else "it is not on the node")
    return (f'Pulling image "{container.image}" at every start: its tag is latest (or none), '
            f"for which imagePullPolicy defaults to Always; {where}. To run an image loaded "
            "into the node, give it another tag or set imagePullPolicy: IfNotPresent")


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
    """Pull policies, pull secrets and the pull back-off (per pod and image, as in
    Kubernetes). One pull of an image for a pod at a time: containers of a pod that share
    an image share its pull."""

    def __init__(self, runtime: ContainerRuntime, source: ObjectSource,
                 backoff: Backoff | None = None, *, clock: Clock | None = None) -> None:
        self.runtime = runtime
        self.source = source
        self.backoff = backoff or Backoff(PULL_BACKOFF_INITIAL, PULL_BACKOFF_MAX, clock=clock)
        self._pulls: dict[str, asyncio.Future[str]] = {}  # back-off key -> pull under way
        self._last_error: dict[str, str] = {}

    async def ensure(self, pod: core_pb2.Pod, container: core_pb2.Container, *,
                     on_pull: Callable[[bool], Awaitable[None]] | None = None) -> PullOutcome:
        """The image's id, pulling it if the policy says so. `on_pull(present)` is awaited
        before a pull starts (for the Pulling event; `present`: the node has the image).
        Raises ImageNotPresent (policy Never), ImagePullError (the pull failed: ErrImagePull)
        or ImageBackOff."""
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
        pull = self._pulls.get(key)
        if pull is None:
            wait = self.backoff.remaining(key)
            if wait > 0:
                # As Kubernetes (1.30+): why it failed stays in the waiting message.
                last = self._last_error.get(key)
                raise ImageBackOff(f'Back-off pulling image "{image}"'
                                   + (f": ErrImagePull: {last}" if last else ""), wait)
            pull = self._pulls[key] = asyncio.ensure_future(
                self._pull(key, pod, image, on_pull, present is not None))
            pull.add_done_callback(lambda done: self._pull_done(key, done))
        return PullOutcome(await asyncio.shield(pull), True)

    def _pull_done(self, key: str, pull: asyncio.Future[str]) -> None:
        if self._pulls.get(key) is pull:
            del self._pulls[key]
        if not pull.cancelled():
            pull.exception()  # retrieved here: a caller that went away need not see it

    async def _pull(self, key: str, pod: core_pb2.Pod, image: str,
                    on_pull: Callable[[bool], Awaitable[None]] | None, present: bool) -> str:
        if on_pull is not None:
            await on_pull(present)
        try:
            image_id = await self.runtime.pull_image(image, self._auth(pod, image))
        except ImagePullError as err:
            self.backoff.next(key)
            self._last_error[key] = err.message
            raise ImagePullError(f'Failed to pull image "{image}": {err.message}') from None
        self.backoff.reset(key)
        self._last_error.pop(key, None)
        return image_id

    def forget_pod(self, pod_uid: str) -> None:
        """Drops the back-off state of a pod that is gone."""
        self.backoff.forget_prefix(f"{pod_uid}/")
        for key in [k for k in self._last_error if k.startswith(f"{pod_uid}/")]:
            del self._last_error[key]

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
