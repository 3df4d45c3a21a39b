"""`skiff-kubelet`: the node agent. Registers this host as a Node, runs the pods bound to
it as Docker container groups, and reports back what is true."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubelet.backoff import Backoff
from kubelet.images import ImageManager
from kubelet.node import LEASE_DURATION, NodeAgent, NodeConfig
from kubelet.pods import PodSyncer
from kubelet.probes import ProbeManager
from kubelet.runtime import ContainerRuntime, RuntimeError_
from kubelet.server import DEFAULT_PORT, start_kubelet_server
from kubelet.volumes import VolumeManager
from skiff import daemon
from skiff.api.v1 import core_pb2
from skiff.client.events import EventRecorder
from skiff.client.informer import SharedInformerFactory, Store
from skiff.daemon import until_signalled

log = logging.getLogger("kubelet")

RELIST_PERIOD = 1.0
VOLUME_REFRESH_PERIOD = 30.0
CRASH_BACKOFF_BASE = 10.0


class InformerSource:
    """Secrets and ConfigMaps for env and volumes, from the kubelet's informer caches."""

    def __init__(self, secrets: Store[core_pb2.Secret],
                 config_maps: Store[core_pb2.ConfigMap]) -> None:
        self._secrets = secrets
        self._config_maps = config_maps

    def get_secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        return self._secrets.get(f"{namespace}/{name}")

    def get_config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        return self._config_maps.get(f"{namespace}/{name}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-kubelet", description=__doc__)
    daemon.add_client_flags(p)
    p.add_argument("--node-name", default=socket.gethostname().lower())
    p.add_argument("--node-labels", default="", help="k=v,k2=v2 added to the Node")
    p.add_argument("--node-ip", default="", help="this node's InternalIP (default: detected)")
    p.add_argument("--root-dir", default="/var/lib/skiff/kubelet",
                   help="pod volumes live under ROOT/pods/<uid>")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help="port of the kubelet's own server (logs, exec), on every interface")
    p.add_argument("--kubelet-token-file",
                   help="require this bearer token (file content) on calls to that server "
                   "(the apiserver's --kubelet-token-file)")
    p.add_argument("--relist-period", type=float, default=RELIST_PERIOD, metavar="SECONDS",
                   help="how often the runtime's containers are listed to notice exits "
                   "(default %(default)s)")
    p.add_argument("--volume-refresh-period", type=float, default=VOLUME_REFRESH_PERIOD,
                   metavar="SECONDS",
                   help="how often every running pod's secret and configMap files are "
                   "rewritten from the API (default %(default)s; a change of an object a "
                   "pod uses reaches it at once anyway)")
    p.add_argument("--crash-backoff-base", type=float, default=CRASH_BACKOFF_BASE,
                   metavar="SECONDS",
                   help="the first crash-loop back-off; it doubles with each restart, up "
                   "to 300 s (default %(default)s)")
    p.add_argument("--node-lease-duration-seconds", type=int, default=LEASE_DURATION,
                   metavar="SECONDS",
                   help="the duration of the node's Lease in kube-node-lease, renewed every "
                   "quarter of it (default %(default)s)")
    p.add_argument("--fake-runtime", action="store_true",
                   help="run pods in memory (for tests and simulated nodes)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def make_runtime(fake: bool) -> ContainerRuntime:
    if fake:
        from kubelet.runtime.fake import FakeRuntime, script_from_command
        runtime = FakeRuntime(pullable={"*": None})  # simulated nodes can "pull" anything
        runtime.default_script = script_from_command  # `sleep 5; exit 1` does just that
        return runtime
    from kubelet.runtime.docker import DockerRuntime
    return DockerRuntime()


def parse_labels(text: str) -> dict[str, str]:
    labels = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--node-labels: {item!r} is not key=value")
        labels[key] = value
    return labels


async def relist_forever(syncer: PodSyncer, period: float) -> None:
    while True:
        try:
            await syncer.relist()
        except RuntimeError_ as err:
            log.warning("cannot list containers: %s", err)
        await asyncio.sleep(syncer.relist_delay(period))


async def refresh_volumes_forever(syncer: PodSyncer, volumes: VolumeManager,
                                  period: float) -> None:
    # A change of a Secret or ConfigMap wakes the pods that use it (see `run`), and every
    # sync writes their files; this is the safety net (Kubernetes: about a minute).
    while True:
        await asyncio.sleep(period)
        for pod in list(syncer.pods.values()):
            if pod.metadata.HasField("deletion_timestamp"):
                continue
            try:
                await volumes.refresh(pod)
            except Exception as err:  # one pod's trouble must not stop the others
                log.warning("pod %s/%s: volume refresh failed: %s", pod.metadata.namespace,
                            pod.metadata.name, err)


def _object_handlers(syncer: PodSyncer, kind: str) -> tuple[
        Callable[[Any], None], Callable[[Any, Any], None], Callable[[Any], None]]:
    """Informer handlers (add, update, delete) that wake the pods using the object."""
    def changed(obj: Any) -> None:
        syncer.object_changed(kind, obj.metadata.namespace, obj.metadata.name)

    return changed, lambda old, new: changed(new), changed


async def run(args: argparse.Namespace) -> None:
    client = daemon.client_from_args(args)
    runtime = make_runtime(args.fake_runtime)
    # Up before the Node advertises its port, so logs and exec work as soon as pods run.
    kubelet_server = await start_kubelet_server(
        runtime, args.port,
        Path(args.kubelet_token_file).read_text().strip() if args.kubelet_token_file else None)
    factory = SharedInformerFactory(client)
    pods = factory.informer(core_pb2.Pod, field_selector=f"spec.nodeName={args.node_name}")
    secrets = factory.informer(core_pb2.Secret)
    config_maps = factory.informer(core_pb2.ConfigMap)
    source = InformerSource(secrets.store, config_maps.store)
    recorder = EventRecorder(client, "kubelet", host=args.node_name)
    node = NodeAgent(client, runtime, NodeConfig(
        args.node_name, parse_labels(args.node_labels), args.node_ip, kubelet_port=args.port,
        lease_duration=args.node_lease_duration_seconds))
    volumes = VolumeManager(Path(args.root_dir), source)
    wake: list[PodSyncer] = []
    probes = ProbeManager(runtime, on_change=lambda uid: wake[0].wake(uid) if wake else None,
                          recorder=recorder)
    syncer = PodSyncer(node_name=args.node_name, node_ip=node.address, client=client,
                       runtime=runtime, volumes=volumes, images=ImageManager(runtime, source),
                       probes=probes, source=source, recorder=recorder,
                       crash_backoff=Backoff(initial=args.crash_backoff_base))
    wake.append(syncer)
    background = [asyncio.create_task(node.run(), name="node")]
    factory.start_all()
    # Running means registered (or having tried to be): the Node and its Lease exist.
    await asyncio.gather(factory.wait_for_sync(), node.first_beat.wait())
    try:
        await syncer.prime()
    except RuntimeError_ as err:
        log.warning("cannot list containers: %s", err)
    # Pods are handed to workers only now, with every Secret and ConfigMap they may need
    # in the caches: earlier, a pod would fail to start (or a restarted kubelet would
    # report FailedMount) for an object that exists.
    pods.add_handlers(on_add=syncer.pod_updated,
                      on_update=lambda old, new: syncer.pod_updated(new),
                      on_delete=syncer.pod_deleted)
    # A change reaches the pods that use the object at once: their next sync rewrites
    # their volume files, and one waiting for a missing object starts.
    secrets.add_handlers(*_object_handlers(syncer, "Secret"))
    config_maps.add_handlers(*_object_handlers(syncer, "ConfigMap"))
    await syncer.clean_orphaned_volumes()
    background += [asyncio.create_task(relist_forever(syncer, args.relist_period),
                                       name="relist"),
                   asyncio.create_task(refresh_volumes_forever(syncer, volumes,
                                                               args.volume_refresh_period),
                                       name="volumes")]
    log.info("kubelet for node %s is running (%s)", args.node_name,
             "fake runtime" if args.fake_runtime else "docker")
    try:
        await until_signalled()
    finally:
        # Containers keep running: a restarted kubelet adopts them.
        for task in background:
            task.cancel()
        await kubelet_server.stop(grace=1)
        await syncer.stop()
        await factory.stop_all()
        await recorder.close()
        await client.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    daemon.run(run(args), args.log_level)


if __name__ == "__main__":
    main()
