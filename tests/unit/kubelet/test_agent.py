"""The kubelet put together (kubelet/agent.py, kubelet/main.py): a `--fake-runtime`
kubelet, a hollow node, runs pods in memory and mounts nothing for real."""

from __future__ import annotations

from pathlib import Path

from kubelet.agent import Kubelet
from kubelet.main import kubelet_config, make_mounter, make_runtime, parse_args
from kubelet.network.fake import FakeHost
from kubelet.runtime.fake import FakeRuntime
from kubelet.volumes import FakeMounter, mount_points
from skiff.api.convert import from_dict
from skiff.api.v1 import core_pb2
from skiff.client.client import Client


async def test_a_fake_runtime_kubelets_secret_volume_goes_through_the_fake_mounter(
        tmp_path: Path) -> None:
    args = parse_args(["--fake-runtime", "--node-name", "hollow-1", "--node-ip", "10.0.0.9",
                       "--root-dir", str(tmp_path / "kubelet"), "--server", "127.0.0.1:1"])
    runtime = make_runtime(args.fake_runtime)
    mounter = make_mounter(args.fake_runtime)
    assert isinstance(runtime, FakeRuntime) and isinstance(mounter, FakeMounter)
    async with Client(args.server) as client:  # never called: nothing here starts
        kubelet = Kubelet(kubelet_config(args, args.node_ip), client, runtime,
                          mounter=mounter)
        secret = core_pb2.Secret()
        secret.metadata.name, secret.metadata.namespace = "token", "default"
        secret.data["token"] = b"TOP-SECRET"
        kubelet.secrets.store._put("default/token", secret)
        pod, _ = from_dict({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "uid-p"},
            "spec": {"nodeName": "hollow-1",
                     "volumes": [{"name": "t", "secret": {"secretName": "token"}}],
                     "containers": [{"name": "c", "image": "busybox", "volumeMounts": [
                         {"name": "t", "mountPath": "/var/run/token"}]}]}})
        assert isinstance(pod, core_pb2.Pod)
        paths = await kubelet.volumes.setup(pod)
        volume = paths["t"]
        assert (Path(volume) / "token").read_bytes() == b"TOP-SECRET"
        assert mounter.points() == [str(Path(volume).resolve())]  # mounted, in memory
        assert not [p for p in mount_points() if p.startswith(str(tmp_path))]  # not really
        await kubelet.volumes.teardown("uid-p")
        assert mounter.points() == [] and not (tmp_path / "kubelet" / "pods" / "uid-p").exists()


async def test_the_service_proxy_is_wired_to_the_kubelets_informers_and_host() -> None:
    def kubelet_with(*flags: str) -> Kubelet:
        args = parse_args(["--fake-runtime", "--node-name", "hollow-2", "--server",
                           "127.0.0.1:1", *flags])
        return Kubelet(kubelet_config(args, "10.0.0.9"), client, make_runtime(True),
                       host=host)

    host = FakeHost()
    async with Client("127.0.0.1:1") as client:  # never called: nothing here starts
        assert kubelet_with("--proxy-services", "off").proxy is None
        auto = kubelet_with()  # auto: waits for the node's pod network
        assert auto.proxy is not None and await auto.proxy.sync() is False
        kubelet = kubelet_with("--proxy-services", "on")
        proxy = kubelet.proxy
        assert proxy is not None
        svc = core_pb2.Service()
        svc.metadata.namespace, svc.metadata.name = "default", "web"
        svc.spec.cluster_ip = "10.96.0.20"
        svc.spec.ports.add(name="http", port=80, protocol="TCP")
        kubelet.services.store._put("default/web", svc)
        assert await proxy.sync()
        assert any("default/web:http has no endpoints" in r
                   for r in host.tables["filter"]["SKIFF-SERVICES"])
