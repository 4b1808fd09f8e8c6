"""Run the project's Snakemake workflow from tests, with results in a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def snakemake(results: Path, *args: str, configfile: Path = REPO / "tests/config/tiny.yaml",
              timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    """``snakemake`` in the repository root with the given config and ``results`` folder."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(configfile),
           "--config", f"results={results}", "--nolock", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def planned_jobs(results: Path, configfile: Path = REPO / "tests/config/tiny.yaml", *targets: str) -> dict[str, int]:
    """Jobs a dry run would execute, per rule (parsed from Snakemake's job-stats table)."""
    out = snakemake(results, *targets, "--dry-run", "--quiet", "rules", configfile=configfile).stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts
