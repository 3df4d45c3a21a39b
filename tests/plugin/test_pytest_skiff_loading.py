"""Loading the plugin costs nothing: every pytest run of an environment with skiff installed
loads it (entry point pytest11), so it must import nothing heavy and do nothing until a test
asks for its fixtures; and a checkout that also names it with `-p` loads it once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def env(*paths: Path) -> dict[str, str]:
    path = os.pathsep.join([*(str(p) for p in paths), str(REPO)])
    return {**os.environ, "PYTHONPATH": path}


def test_importing_the_plugin_imports_no_client_and_no_cluster_tooling() -> None:
    probe = ("import sys, pytest_skiff.plugin; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('grpc', 'cluster', 'skiff', 'cli', 'docker', 'yaml')))")
    result = subprocess.run([sys.executable, "-c", probe], env=env(), capture_output=True,
                            text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_the_entry_point_and_p_together_load_it_once(tmp_path: Path) -> None:
    # An installed skiff, as far as pytest's entry point discovery can tell.
    dist = tmp_path / "site" / "skiff-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: skiff\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(
        "[pytest11]\npytest_skiff.plugin = pytest_skiff.plugin\n")
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    for extra in ([], ["-p", "pytest_skiff.plugin"]):
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *extra, "-p", "no:cacheprovider", "--rootdir",
             str(tmp_path), "--help"], cwd=tmp_path, env=env(tmp_path / "site"),
            capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("--skiff-nodes=N") == 1, result.stdout
        ran = subprocess.run(
            [sys.executable, "-m", "pytest", *extra, "-p", "no:cacheprovider", "--rootdir",
             str(tmp_path), "-q", str(tmp_path)], cwd=tmp_path, env=env(tmp_path / "site"),
            capture_output=True, text=True, timeout=60, check=False)
        assert ran.returncode == 0 and "1 passed" in ran.stdout, ran.stdout + ran.stderr
        assert "skiff" not in ran.stdout.replace("skiff_", "")  # no word from it
