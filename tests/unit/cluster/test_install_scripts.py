"""The install scripts' own logic, run by bash on this machine, with no host changed: the
sources the venv is stamped with, files written only when they change, the env file's
quoting, and the paths that deploy/uninstall.sh (standalone) shares with install-common.sh.
The scripts on real hosts: tests/integration/test_install.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cluster.components import DEFAULT_CLUSTER_DNS

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
SCRIPTS = ("install-common.sh", "install-server.sh", "install-agent.sh", "uninstall.sh")


def bash(script: str, *, repo: Path = REPO) -> subprocess.CompletedProcess[str]:
    """`script` after sourcing install-common.sh, as the install scripts do."""
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; PROG=test; REPO="$1"; . "$2"; {script}', "bash",
         str(repo), str(DEPLOY / "install-common.sh")],
        capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_parses(name: str) -> None:
    checked = subprocess.run(["bash", "-n", str(DEPLOY / name)], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def assignments(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^(SKIFF_[A-Z_]+)=(.*)$", path.read_text(), re.M))


def test_uninstall_names_the_paths_the_installs_use() -> None:
    common, uninstall = (assignments(DEPLOY / n) for n in ("install-common.sh", "uninstall.sh"))
    shared = set(common) & set(uninstall)
    assert {"SKIFF_VENV", "SKIFF_ETC", "SKIFF_STATE", "SKIFF_UNIT_DIR", "SKIFF_SERVER_UNIT",
            "SKIFF_AGENT_UNIT", "SKIFF_DNS_UNIT", "SKIFF_DNS_SOCKET", "SKIFF_COMMAND",
            "SKIFF_COMMAND_MARK", "SKIFF_UNINSTALL"} <= shared
    assert {k: common[k] for k in shared} == {k: uninstall[k] for k in shared}
    mark = uninstall["SKIFF_UNINSTALL_MARK"].strip('"')
    assert mark in (DEPLOY / "uninstall.sh").read_text().splitlines()[1]


def test_agents_use_skiff_ups_cluster_dns_address() -> None:
    common = assignments(DEPLOY / "install-common.sh")
    assert common["SKIFF_CLUSTER_DNS"].split()[0] == DEFAULT_CLUSTER_DNS


def test_write_file_changes_only_what_differs(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "skiff.env"
    script = (f'write_file {target} 600 <<<"A=1"; echo "${{#CHANGED[@]}}"; '
              f'write_file {target} 600 <<<"A=1"; echo "${{#CHANGED[@]}}"; '
              f'chmod 644 {target}; write_file {target} 600 <<<"A=1"; echo "${{#CHANGED[@]}}"; '
              f'write_file {target} 600 <<<"A=2"; echo "${{#CHANGED[@]}}"')
    result = bash(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1", "2", "3"]
    assert target.read_text() == "A=2\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["skiff.env"]  # no temporary left


def test_an_env_file_value_reads_back_unchanged_by_systemds_rules() -> None:
    result = bash('env_line SKIFF_X \'a "quoted" \\ value\'')
    assert result.stdout == 'SKIFF_X="a \\"quoted\\" \\\\ value"\n'
    refused = bash('plain_value --node-name "two words"')
    assert refused.returncode == 1
    assert 'test: error: --node-name "two words": must not be empty nor contain spaces' \
        in refused.stderr


def test_the_venv_is_stamped_with_its_sources_and_nothing_else(tmp_path: Path) -> None:
    repo = tmp_path / "checkout"
    for path, text in {"pyproject.toml": "[project]\n", "README.md": "r\n",
                       "pkg/__init__.py": "", "pkg/mod.py": "x = 1\n",
                       "tests/test_x.py": "", "deploy/install-agent.sh": "",
                       "pkg/__pycache__/mod.cpython-311.pyc": "cached"}.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)

    def digest() -> str:
        result = bash("source_paths | tr '\\n' ' '; echo; source_digest", repo=repo)
        assert result.returncode == 0, result.stderr
        return result.stdout

    first = digest()
    assert first.splitlines()[0].split() == ["pyproject.toml", "README.md", "pkg"]
    (repo / "tests" / "test_x.py").write_text("changed")
    (repo / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_text("recompiled")
    assert digest() == first
    (repo / "pkg" / "mod.py").write_text("x = 2\n")
    assert digest() != first


def test_the_scripts_pass_shellcheck_where_it_is_installed() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    checked = subprocess.run(["shellcheck", "-x", *(str(DEPLOY / n) for n in SCRIPTS)],
                             capture_output=True, text=True, cwd=REPO, check=False)
    assert checked.returncode == 0, checked.stdout
