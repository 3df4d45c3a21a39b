"""`SkiffCluster`: what the `skiff_cluster` fixture hands a test.

A running cluster (made for the session, or reused), its kubeconfig (a file of the
session's own, with the one context `skiff-NAME`, current), and synchronous helpers over
the async client, so plain `def test_...` functions can use it: apply manifests, read,
delete, wait for a condition, read logs and events, load images, run the `skiff` CLI.

The client lives on an event loop in a thread of its own (a gRPC channel belongs to the
loop it was opened on); the helpers hand it coroutines and wait for the answer. An async
test opens a client on its own loop with `client()`.

`apply` is `skiff apply -f -` itself, run against the cluster's config: the very
create-or-update (three-way merge, conflict retries) users get from the CLI.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cluster import multinode
from cluster.supervisor import Say
from skiff.api import convert, kinds
from skiff.client import errors
from skiff.client.client import Client

R = TypeVar("R")
Manifest = str | Path | dict[str, Any] | Iterable[dict[str, Any]]
Condition = str | Callable[[dict[str, Any]], bool]

DEFAULT_TIMEOUT = 120.0
POLL_SECONDS = 0.5


class WaitTimeout(AssertionError):
    """wait_for gave up: the condition did not hold within the timeout. An AssertionError,
    so pytest reports it as the test's failure, with the object's last state."""


@dataclass
class Touched:
    """The namespaces a test used through the helpers: where a failure report looks."""

    namespaces: list[str] = field(default_factory=list)

    def add(self, namespace: str) -> None:
        if namespace and namespace not in self.namespaces:
            self.namespaces.append(namespace)


class SkiffCluster:
    """A running Skiff cluster for tests; see the module's docstring."""

    def __init__(self, name: str, *, kubeconfig: Path, nodes: list[str], owned: bool,
                 say: Say) -> None:
        self.name = name
        self.context = multinode.context_name(name)
        self.kubeconfig = kubeconfig
        self.nodes = nodes
        self.owned = owned  # made by this session (deleted at its end unless kept)
        self.touched = Touched()
        self._say = say
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name=f"skiff-cluster-{name}", daemon=True)
        self._thread.start()
        self._client: Client = self._on_loop(self._open_client())

    async def _open_client(self) -> Client:
        return self.client()

    def client(self) -> Client:
        """A new async client of this cluster on the caller's event loop (close it, or use
        `async with`)."""
        return Client.from_config(str(self.kubeconfig), context=self.context)

    # ---- running coroutines on the cluster's loop ----

    def _on_loop(self, coroutine: Coroutine[Any, Any, R], timeout: float | None = None) -> R:
        __tracebackhide__ = True
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def call(self, fn: Callable[[Client], Awaitable[R]], timeout: float | None = None) -> R:
        """`fn(client)` on the cluster's own client, waited for: any call of the async
        client from a plain test, e.g. `skiff_cluster.call(lambda c: c.version())`."""
        __tracebackhide__ = True  # failures point at the test's line

        async def run() -> R:
            return await fn(self._client)

        return self._on_loop(run(), timeout)

    def close(self) -> None:
        """Closes the client and stops its loop (the cluster itself is the fixture's)."""
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):  # best effort: the session is ending anyway
            self._on_loop(self._client.close(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # ---- objects ----

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
        """The object, Kubernetes-shaped (what `skiff get -o yaml` prints)."""
        __tracebackhide__ = True  # failures point at the test's line
        k = kinds.lookup(kind)
        namespace = namespace if k.namespaced else ""
        self.touched.add(namespace)
        return convert.to_dict(self.call(lambda c: c.get(k, name, namespace)))

    def list(self, kind: str, namespace: str = "default", *,
             label_selector: str = "") -> builtins.list[dict[str, Any]]:
        """The objects of a kind in a namespace ("" for all), Kubernetes-shaped."""
        __tracebackhide__ = True  # failures point at the test's line
        k = kinds.lookup(kind)
        namespace = namespace if k.namespaced else ""
        self.touched.add(namespace)
        items, _ = self.call(lambda c: c.list(k, namespace, label_selector=label_selector))
        return [convert.to_dict(item) for item in items]

    def delete(self, kind: str, name: str, namespace: str = "default", *,
               wait: bool = False, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Deletes the object; False when there was none. With `wait`, returns once it is
        gone (finalizers done)."""
        __tracebackhide__ = True  # failures point at the test's line
        k = kinds.lookup(kind)
        namespace = namespace if k.namespaced else ""
        try:
            self.call(lambda c: c.delete(k, name, namespace))
        except errors.NotFound:
            return False
        if wait:
            self.wait_for(kind, name, "deleted", namespace=namespace, timeout=timeout)
        return True

    def create_namespace(self, name: str) -> None:
        __tracebackhide__ = True  # failures point at the test's line
        self.call(lambda c: c.create_manifest(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
        self.touched.add(name)

    def apply(self, manifest: Manifest, namespace: str | None = None) -> builtins.list[str]:
        """Creates or updates the objects of `manifest` as `skiff apply -f` does: YAML text
        (several documents are fine), a path to a file or folder, a dict or a list of them.
        Objects without a namespace go to `namespace` (else "default"). Returns apply's
        lines (`deployment.apps/web created`); raises CalledProcessError with its message
        when apply fails."""
        __tracebackhide__ = True  # failures point at the test's line
        if isinstance(manifest, Path):
            source, text = str(manifest), None
            documents = [d for p in _manifest_files(manifest)
                         for d in yaml.safe_load_all(p.read_text())]
        else:
            text = manifest if isinstance(manifest, str) else yaml.safe_dump_all(
                [manifest] if isinstance(manifest, dict) else list(manifest))
            source, documents = "-", list(yaml.safe_load_all(text))
        for document in documents:
            if isinstance(document, dict):
                meta = document.get("metadata") or {}
                self.touched.add(meta.get("namespace") or namespace or "default")
        args = ["apply", "-f", source] + (["--namespace", namespace] if namespace else [])
        return self.run(*args, input=text).stdout.splitlines()

    def wait_for(self, kind: str, name: str, condition: Condition, *,
                 namespace: str = "default", timeout: float = DEFAULT_TIMEOUT
                 ) -> dict[str, Any]:
        """Waits until the object meets `condition` and returns it. `condition` is a
        status condition type ("Available", "Ready", "Complete": its status is "True"),
        "deleted" (the object is gone), or a callable on the Kubernetes-shaped object.
        Raises WaitTimeout, with the object's last state, after `timeout` seconds."""
        __tracebackhide__ = True  # failures point at the test's line
        k = kinds.lookup(kind)
        namespace = namespace if k.namespaced else ""
        self.touched.add(namespace)
        met = _condition(condition)
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while True:
            try:
                last = convert.to_dict(self.call(lambda c: c.get(k, name, namespace)))
            except errors.NotFound:
                if condition == "deleted":
                    return {}
                last = None
            else:
                if condition != "deleted" and met(last):
                    return last
            if time.monotonic() > deadline:
                where = f" in namespace {namespace}" if namespace else ""
                state = ("it does not exist" if last is None else
                         "its status:\n" + yaml.safe_dump(last.get("status") or {}))
                raise WaitTimeout(f"{k.kind} {name}{where}: not {_describe(condition)} "
                                  f"within {timeout:g} s; {state}")
            time.sleep(POLL_SECONDS)

    def logs(self, pod: str, namespace: str = "default", *, container: str = "",
             tail_lines: int | None = None, timeout: float = 60.0) -> str:
        """A pod container's output so far (the only container's when not named)."""
        __tracebackhide__ = True  # failures point at the test's line
        self.touched.add(namespace)

        async def read(client: Client) -> bytes:
            chunks = [chunk async for chunk in client.logs(
                pod, namespace, container=container, tail_lines=tail_lines)]
            return b"".join(chunks)

        return self.call(read, timeout=timeout).decode(errors="replace")

    def events(self, namespace: str = "default") -> builtins.list[dict[str, Any]]:
        """The namespace's events, oldest first."""
        __tracebackhide__ = True  # failures point at the test's line
        events = self.list("Event", namespace)
        return sorted(events, key=_event_time)

    # ---- images and the CLI ----

    def load_image(self, *images: str) -> None:
        """Copies images from this machine's Docker engine into every node (pods use them
        with imagePullPolicy IfNotPresent or Never)."""
        __tracebackhide__ = True  # failures point at the test's line
        multinode.load_images(self.name, list(images), say=self._say)

    def run(self, *args: str, check: bool = True, input: str | None = None,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """The `skiff` CLI with this cluster's config: `run("get", "pods", "-o", "wide")`.
        With `check`, a failure raises CalledProcessError (its stderr in the message)."""
        __tracebackhide__ = True  # failures point at the test's line
        result = subprocess.run(self._cli(args), env=self._cli_env(), text=True,
                                capture_output=True, timeout=timeout, input=input, check=False)
        if check and result.returncode != 0:
            raise CliFailed(result)
        return result


    def popen(self, *args: str) -> subprocess.Popen[str]:
        """The `skiff` CLI with this cluster's config, started and left running (say,
        `popen("port-forward", "svc/web", ":80")`), its stdout and stderr as pipes of
        text; the caller stops it."""
        return subprocess.Popen(self._cli(args), env=self._cli_env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    @staticmethod
    def _cli(args: tuple[str, ...]) -> builtins.list[str]:
        return [sys.executable, "-m", "cli.main", *args]

    def _cli_env(self) -> dict[str, str]:
        # The CLI of this very installation (or checkout), with the cluster's config.
        path = os.pathsep.join(p for p in (str(multinode.REPO), os.environ.get("PYTHONPATH"))
                               if p)
        return {**os.environ, "SKIFF_CONFIG": str(self.kubeconfig), "PYTHONPATH": path}


class CliFailed(subprocess.CalledProcessError):
    """`skiff ...` exited non-zero; the message carries what it printed."""

    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(result.returncode, result.args, result.stdout, result.stderr)

    def __str__(self) -> str:
        command = " ".join(str(a) for a in self.cmd[3:])
        return (f"skiff {command} exited {self.returncode}:\n"
                f"{(self.stderr or '').strip()}\n{(self.stdout or '').strip()}").strip()


def _manifest_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    return [path]


def _condition(condition: Condition) -> Callable[[dict[str, Any]], bool]:
    if callable(condition):
        return condition

    def has(obj: dict[str, Any]) -> bool:
        conditions = (obj.get("status") or {}).get("conditions") or []
        return any(c.get("type") == condition and c.get("status") == "True"
                   for c in conditions)

    return has


def _describe(condition: Condition) -> str:
    if callable(condition):
        return f"matching {getattr(condition, '__name__', 'the condition')}"
    return condition


def _event_time(event: dict[str, Any]) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime")
               or event.get("firstTimestamp") or (event.get("metadata") or {})
               .get("creationTimestamp") or "")
