"""The committed generated code is exactly what proto/generate.sh makes today."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run([str(REPO / "proto" / "generate.sh"), str(tmp_path)], check=True,
                   env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    fresh = sorted((tmp_path / "skiff" / "api" / "v1").iterdir())
    assert fresh, "generate.sh produced nothing"
    stale = [f.name for f in fresh
             if not filecmp.cmp(f, REPO / "skiff" / "api" / "v1" / f.name, shallow=False)]
    committed = {p.name for p in (REPO / "skiff" / "api" / "v1").glob("*_pb2*")}
    missing = committed ^ {f.name for f in fresh}
    assert not stale and not missing, (
        f"generated code is out of date ({stale or missing}): run proto/generate.sh")
