"""The kubelet put together: its parts, built in the order they depend on each other, and
their life (start, the background loops, stop).

    informers (pods of this node, Secrets, ConfigMaps, Nodes) -> the object source
    PodNetwork (the pods bridge, rules, routes; Nodes)  -> the sandboxes' network
    ServiceProxy (Services, Endpoints)                  -> cluster IPs and node ports
    NodeAgent (the Node and its Lease)                  -> this node's address
    VolumeManager (object source, mounter)
    ImageManager (runtime, object source)
    PodSyncer (all of the above; it owns the prober, the runtime cache, the pod workers)

The kubelet's own server (logs, exec) and the client are made by the caller
(kubelet/main.py), which hands the client and the runtime in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import Message

from kubelet.dns import ClusterDns
from kubelet.images import ImageManager
from kubelet.network.cidrs import parse_cidr
from kubelet.network.fake import FakeHost
from kubelet.network.host import Host
from kubelet.network.manager import DEFAULT_CLUSTER_CIDR, RESYNC_PERIOD, PodNetwork
from kubelet.network.state import NetworkState, Phase
from kubelet.node import LEASE_DURATION, NodeAgent, NodeConfig
from kubelet.pods.syncer import CRASH_BACKOFF_MAX, PodSyncer
from kubelet.proxy.conntrack import Conntrack, FakeConntrack
from kubelet.proxy.hairpin import enable_hairpin
from kubelet.proxy.proxier import (
    DEFAULT_SERVICE_CIDR,
    MIN_SYNC_PERIOD,
    ServiceProxy,
)
from kubelet.proxy.proxier import RESYNC_PERIOD as PROXY_RESYNC_PERIOD
from kubelet.runtime import ContainerRuntime, RuntimeError_
from kubelet.volumes import Mounter, VolumeManager
from skiff.api.meta import meta
from skiff.api.v1 import core_pb2
from skiff.client.backoff import Backoff
from skiff.client.client import Client
from skiff.client.clock import Clock, RealClock
from skiff.client.events import EventRecorder
from skiff.client.informer import SharedInformerFactory, Store

log = logging.getLogger("kubelet")

RELIST_PERIOD = 1.0
VOLUME_REFRESH_PERIOD = 30.0
CRASH_BACKOFF_BASE = 10.0


@dataclass(frozen=True)
class KubeletConfig:
    node_name: str
    root_dir: Path  # pod volumes live under ROOT/pods/<uid>
    node_labels: dict[str, str] = field(default_factory=dict)
    node_ip: str = ""  # detected when empty
    port: int = 10250  # of the kubelet's own server, advertised in the Node's status
    relist_period: float = RELIST_PERIOD
    volume_refresh_period: float = VOLUME_REFRESH_PERIOD
    crash_backoff_base: float = CRASH_BACKOFF_BASE
    lease_duration: int = LEASE_DURATION
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR  # the pod range of the whole cluster
    network_resync_period: float = RESYNC_PERIOD
    network_probe_port: int = 0  # 0: the other nodes' pod networks are not probed
    dns: ClusterDns = field(default_factory=ClusterDns)  # the pods' resolv.conf
    # The service proxy: "auto" runs it once the node's pod network is ready, "on"
    # always, "off" never.
    proxy_mode: str = "auto"
    service_cidr: str = DEFAULT_SERVICE_CIDR
    proxy_min_sync_period: float = MIN_SYNC_PERIOD
    proxy_resync_period: float = PROXY_RESYNC_PERIOD
    proxy_hairpin: bool = False  # put the pods bridge's ports in hairpin mode (real hosts)


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


class Kubelet:
    """`host`: where the pod network writes its routes and rules; by default a FakeHost
    in memory (kubelet/main.py gives a Docker kubelet the real one)."""

    def __init__(self, config: KubeletConfig, client: Client, runtime: ContainerRuntime, *,
                 mounter: Mounter | None = None, clock: Clock | None = None,
                 host: Host | None = None, conntrack: Conntrack | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or RealClock()
        self.factory = SharedInformerFactory(client)
        self.pod_informer = self.factory.informer(
            core_pb2.Pod, field_selector=f"spec.nodeName={config.node_name}")
        self.secrets = self.factory.informer(core_pb2.Secret)
        self.config_maps = self.factory.informer(core_pb2.ConfigMap)
        self.nodes = self.factory.informer(core_pb2.Node)
        self.services = self.factory.informer(core_pb2.Service)
        self.source = InformerSource(self.secrets.store, self.config_maps.store)
        self.recorder = EventRecorder(client, "kubelet", host=config.node_name)
        host = host if host is not None else FakeHost()
        self.network = PodNetwork(
            node_name=config.node_name, cluster_cidr=parse_cidr(config.cluster_cidr),
            runtime=runtime, host=host,
            nodes=self.nodes.store.list, recorder=self.recorder, clock=self.clock,
            resync_period=config.network_resync_period, on_change=self._network_changed,
            probe_port=config.network_probe_port)
        self.proxy: ServiceProxy | None = None
        if config.proxy_mode != "off":
            self.services = self.factory.informer(core_pb2.Service)
            self.endpoints = self.factory.informer(core_pb2.Endpoints)
            self.proxy = ServiceProxy(
                host=host, conntrack=conntrack if conntrack is not None else FakeConntrack(),
                services=self.services.store.list, endpoints=self.endpoints.store.list,
                cluster_cidr=parse_cidr(config.cluster_cidr),
                service_cidr=parse_cidr(config.service_cidr) if config.service_cidr else None,
                enabled=self._proxy_enabled, clock=self.clock,
                min_sync_period=config.proxy_min_sync_period,
                resync_period=config.proxy_resync_period,
                hairpin=(lambda: enable_hairpin(self.network.bridge_interface))
                if config.proxy_hairpin else None)
        self.node = NodeAgent(client, runtime, NodeConfig(
            config.node_name, config.node_labels, config.node_ip, kubelet_port=config.port,
            lease_duration=config.lease_duration), clock=self.clock,
            network_conditions=self.network.node_conditions)
        self.volumes = VolumeManager(config.root_dir, self.source, mounter=mounter)
        self.pods = PodSyncer(
            node_name=config.node_name, node_ip=self.node.address, client=client,
            runtime=runtime, volumes=self.volumes,
            images=ImageManager(runtime, self.source, clock=self.clock),
            source=self.source, recorder=self.recorder, clock=self.clock,
            crash_backoff=Backoff(config.crash_backoff_base, CRASH_BACKOFF_MAX,
                                  clock=self.clock, wall=True),
            sandbox_network=self.network.sandbox_network, dns=config.dns,
            services=self.services.store.list)
        self._background: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Registers the node, then hands the pods to their workers and starts the
        background loops (heartbeats, relists, volume refreshes)."""
        self._background.append(asyncio.create_task(self.node.run(), name="node"))
        self.factory.start_all()
        # Running means registered (or having tried to be): the Node and its Lease exist.
        await asyncio.gather(self.factory.wait_for_sync(), self.node.first_beat.wait())
        # The pod network before the pods: a restarted kubelet's new sandboxes join the
        # bridge at once. Its rules and routes are rebuilt completely here.
        await self.network.sync_logged()
        self.nodes.add_handlers(*self.network.node_handlers())
        if self.proxy is not None:
            # Rebuilt completely (stale chains of an earlier run removed) before any pod
            # of this node is started, so that they reach services at once.
            await self.proxy.sync_logged()
            self.services.add_handlers(*self.proxy.handlers())
            self.endpoints.add_handlers(*self.proxy.handlers())
            self._background.append(asyncio.create_task(self.proxy.run(), name="proxy"))
        try:
            await self.pods.prime()
        except RuntimeError_ as err:
            log.warning("cannot list containers: %s", err)
        # Pods are handed to workers only now, with every Secret and ConfigMap they may
        # need in the caches: earlier, a pod would fail to start (or a restarted kubelet
        # would report FailedMount) for an object that exists.
        pods = self.pods
        self.pod_informer.add_handlers(on_add=pods.pod_updated,
                                       on_update=lambda old, new: pods.pod_updated(new),
                                       on_delete=pods.pod_deleted)
        # A change reaches the pods that use the object at once: their next sync rewrites
        # their volume files, and one waiting for a missing object starts.
        self.secrets.add_handlers(*self._object_handlers("Secret"))
        self.config_maps.add_handlers(*self._object_handlers("ConfigMap"))
        await self.pods.clean_orphaned_volumes()
        self._background += [
            asyncio.create_task(self.network.run(), name="pod-network"),
            asyncio.create_task(self._relist_forever(), name="relist"),
            asyncio.create_task(self._refresh_volumes_forever(), name="volumes")]

    async def stop(self) -> None:
        """Stops the kubelet's loops; containers keep running (a restarted kubelet adopts
        them)."""
        for task in self._background:
            task.cancel()
        await self.pods.stop()
        await self.factory.stop_all()
        await self.recorder.close()

    def _network_changed(self, state: NetworkState) -> None:
        # The Node shows it now; pods waiting for the network start, and new sandboxes
        # join the right one.
        self.node.wake()
        self.pods.wake_all()
        if self.proxy is not None:
            self.proxy.wake()

    def _proxy_enabled(self) -> bool:
        return self.config.proxy_mode == "on" or self.network.state.phase is Phase.READY

    def _object_handlers(self, kind: str) -> tuple[
            Callable[[Message], None], Callable[[Message, Message], None],
            Callable[[Message], None]]:
        """Informer handlers (add, update, delete) that wake the pods using the object."""
        def changed(obj: Message) -> None:
            m = meta(obj)
            self.pods.object_changed(kind, m.namespace, m.name)

        return changed, lambda old, new: changed(new), changed

    async def _relist_forever(self) -> None:
        while True:
            try:
                await self.pods.relist()
            except RuntimeError_ as err:
                log.warning("cannot list containers: %s", err)
            await self.clock.sleep(self.pods.relist_delay(self.config.relist_period))

    async def _refresh_volumes_forever(self) -> None:
        # A change of a Secret or ConfigMap wakes the pods that use it, and every sync
        # writes their files; this is the safety net (Kubernetes: about a minute).
        while True:
            await self.clock.sleep(self.config.volume_refresh_period)
            for pod in list(self.pods.pods.values()):
                if pod.metadata.HasField("deletion_timestamp"):
                    continue
                try:
                    await self.volumes.refresh(pod)
                except Exception as err:  # one pod's trouble must not stop the others
                    log.warning("pod %s/%s: volume refresh failed: %s",
                                pod.metadata.namespace, pod.metadata.name, err)
