"""Hostile manifests at the real `skiff` CLI, against a real apiserver: a YAML alias bomb,
deep nesting, an object past the server's request limit, annotations past Kubernetes' cap.
Each ends in one line on stderr and exit 1, in bounded time and memory, with nothing stored.

Time and memory bounds here are generous ceilings that catch a regression (the bomb grew
past 9 GB before); the figures themselves are in bench/cli_hostile_input.py."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from fixtures.cli import ENV, REPO, Cli, get
from fixtures.hostile import ALIAS_BOMB
from fixtures.measure import Measured, run_measured

from cli.yamlload import MAX_DEPTH
from skiff.api.v1 import core_pb2
from skiff.client import errors

MIB = 1024 * 1024



def measured(cli: Cli, *args: str) -> Measured:
    """The CLI's own time and peak RSS, as a user runs it."""
    return run_measured(cli.argv(*args), cwd=REPO, env=ENV)


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[:2000]
    assert "Traceback" not in stderr
    return lines[0]


def absent(address: str, name: str, namespace: str = "default") -> bool:
    try:
        get(address, core_pb2.ConfigMap, name, namespace)
    except errors.NotFound:
        return True
    return False


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_an_alias_bomb_is_refused_in_one_line_with_bounded_time_and_memory(
        cli: Cli, tmp_path: Path) -> None:
    bomb = write(tmp_path / "bomb.yaml", ALIAS_BOMB)
    result = measured(cli, "apply", "-f", bomb)
    assert result.code == 1, result.stderr[-2000:]
    assert one_error_line(result.stderr) == (
        f"error: error parsing {bomb}: line 9, column 24: document contains excessive aliasing")
    assert result.seconds < 10
    assert result.max_rss_bytes < 100 * MIB
    assert absent(cli.address, "lol")


@pytest.mark.parametrize("text", [
    "[" * 100_000,
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: " + "{a: " * 100_000,
    "- " * 100_000,
], ids=["lists", "mappings", "block-lists"])
def test_deep_nesting_is_one_clear_error(cli: Cli, tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "deep.yaml", text)
    result = cli("create", "-f", path)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert line.startswith(f"error: error parsing {path}: line ")
    assert "exceeded max" in line and "depth" in line


def test_deep_json_is_one_clear_error(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000)
    result = cli("apply", "-f", path)
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"error: error parsing {path}: exceeded max depth of {MAX_DEPTH} (lists and mappings "
        "nested inside each other)")


def test_a_100_mib_manifest_is_refused_before_anything_is_sent(
        cli: Cli, tmp_path: Path) -> None:
    name = f"huge-{uuid.uuid4().hex[:6]}"
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
           "data": {"blob": "x" * (100 * MIB)}}
    path = write(tmp_path / "huge.yaml", json.dumps(obj))  # JSON is YAML too
    result = measured(cli, "apply", "-f", path)
    assert result.code == 1
    assert one_error_line(result.stderr) == (
        f'error: {path}: ConfigMap "{name}" is too large: {len(json.dumps(obj))} bytes as '
        "JSON, over the limit of 3145728 bytes (3 MiB) for a request")
    assert result.seconds < 30
    assert absent(cli.address, name)


def test_size_limits_are_checked_before_connecting(tmp_path: Path) -> None:
    # No server at this address: the size is refused first, so nothing was ever sent.
    path = write(tmp_path / "big.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "
                 f"big\ndata:\n  blob: {'x' * (4 * MIB)}\n")
    result = Cli("127.0.0.1:9")("create", "-f", path)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    match = re.fullmatch(rf'error: {path}: ConfigMap "big" is too large: (\d+) bytes as JSON, '
                         r"over the limit of 3145728 bytes \(3 MiB\) for a request", line)
    assert match and 4 * MIB < int(match[1]) < 4 * MIB + 100, line


def test_apply_refuses_an_object_whose_last_applied_annotation_passes_the_cap(
        cli: Cli, tmp_path: Path) -> None:
    name = f"notes-{uuid.uuid4().hex[:6]}"

    def manifest(size: int) -> str:
        return write(tmp_path / "notes.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                     f"  name: {name}\ndata:\n  text: {'x' * size}\n")

    assert cli.ok("apply", "-f", manifest(200 * 1024)) == f"configmap/{name} created\n"
    result = cli("apply", "-f", manifest(300 * 1024))  # the update path
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f'error: {tmp_path}/notes.yaml: ConfigMap "{name}" is invalid: '
        "metadata.annotations: Too long: must have at most 262144 bytes")
    live = get(cli.address, core_pb2.ConfigMap, name, "default")
    assert len(live.data["text"]) == 200 * 1024  # untouched
    # `create` records no annotation: the same object is within every limit.
    other = write(tmp_path / "other.yaml",
                  Path(manifest(300 * 1024)).read_text().replace(name, name + "-c"))
    assert cli.ok("create", "-f", other) == f"configmap/{name}-c created\n"
    assert cli.ok("delete", "configmap", name, name + "-c").count("deleted") == 2
