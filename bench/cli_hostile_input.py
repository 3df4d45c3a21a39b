"""What hostile manifests cost `skiff apply`: time and peak memory until it refuses them.

Each input runs as a user runs it (`python -m cli.main apply -f FILE`, a fresh process) with
no server listening: every one of them must be refused before anything is sent. Prints the
median wall time and the largest peak RSS over the runs, beside those of a one-line broken
manifest (what starting the CLI costs), and, with --before CHECKOUT, beside the same inputs
on another checkout of Skiff (capped at --cap-seconds and --cap-mib, as the alias bomb once
grew past 9 GB).

Usage: python bench/cli_hostile_input.py [--runs N] [--before /path/to/old/checkout]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fixtures.hostile import ALIAS_BOMB  # noqa: E402
from fixtures.measure import run_measured  # noqa: E402

MIB = 1024 * 1024
CLOSED_PORT = "127.0.0.1:9"  # discard: nothing listens, so nothing can have been sent



def inputs() -> dict[str, str]:
    huge = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "huge"},
            "data": {"blob": "x" * (100 * MIB)}}
    return {
        "broken.yaml": "apiVersion: v1\nkind: [\n",
        "bomb.yaml": ALIAS_BOMB,
        "deep-lists.yaml": "[" * 100_000,
        "deep-maps.yaml": "x: " + "{a: " * 100_000,
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "huge-100MiB.yaml": json.dumps(huge),
    }


def run_once(checkout: Path, path: Path, cap_seconds: float, cap_bytes: int
             ) -> tuple[float, int, str]:
    """(seconds, peak RSS in bytes, the last line of stderr or how it ended)."""
    result = run_measured(
        [sys.executable, "-m", "cli.main", "--server", CLOSED_PORT, "apply", "-f", str(path)],
        cwd=checkout, env={**os.environ, "SKIFF_CONFIG": "/nonexistent",
                           "PYTHONPATH": str(checkout)},
        timeout=cap_seconds, address_space=cap_bytes)
    says = (result.stderr.strip().splitlines() or [""])[-1]
    if result.code > 128 or result.code < 0:
        says = (f"killed after {result.seconds:.0f} s" if result.seconds >= cap_seconds
                else f"signal {result.code - 128}")
    elif "MemoryError" in says:
        says = f"MemoryError at the {cap_bytes // MIB} MiB cap"
    return result.seconds, result.max_rss_bytes, says


def measure(checkout: Path, path: Path, runs: int, cap_seconds: float, cap_bytes: int
            ) -> tuple[float, int, str]:
    results = [run_once(checkout, path, cap_seconds, cap_bytes) for _ in range(runs)]
    return (statistics.median(r[0] for r in results), max(r[1] for r in results),
            results[-1][2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, help="another Skiff checkout to compare with")
    parser.add_argument("--cap-seconds", type=float, default=30)
    parser.add_argument("--cap-mib", type=int, default=2048)
    args = parser.parse_args()
    cap_bytes = args.cap_mib * MIB
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        print(f"{'input':<18} {'median s':>9} {'peak MiB':>9}  "
              + (f"{'before s':>9} {'MiB':>7}  " if args.before else "") + "says")
        for name, text in inputs().items():
            path = Path(tmp) / name
            path.write_text(text)
            runs = 1 if path.stat().st_size > 10 * MIB else args.runs
            seconds, rss, says = measure(REPO, path, runs, args.cap_seconds, cap_bytes)
            line = f"{name:<18} {seconds:>9.2f} {rss / MIB:>9.0f}  "
            if args.before:
                before_s, before_rss, before_says = measure(
                    args.before, path, 1, args.cap_seconds, cap_bytes)
                line += f"{before_s:>9.2f} {before_rss / MIB:>7.0f}  "
                says += f"  | before: {before_says[:80]}"
            print(line + says.replace(tmp + "/", "")[:160], flush=True)


if __name__ == "__main__":
    main()
