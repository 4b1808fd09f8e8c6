"""Run the project's Snakemake workflow from tests, with results in a temporary folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

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


def merged(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` merged in recursively (dicts merge, everything else replaces)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def tiny_config(*extra: str | dict) -> dict:
    """tests/config/tiny.yaml with further test configs (file names under tests/config/ or dicts) merged over it."""
    config = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    for part in extra:
        config = merged(config, part if isinstance(part, dict) else yaml.safe_load((REPO / "tests/config" / part).read_text()))
    return config


# The methods whose end-to-end tests share one DAG run on the tiny room (tests/conftest.py ``methods_run``).
METHOD_CONFIGS = ("tiny_ccl.yaml", "tiny_saga.yaml", "tiny_protosaga.yaml", "tiny_sas.yaml")


def methods_config(*extra: str | dict) -> dict:
    """tests/config/tiny.yaml with the tiny configurations of CCL-LGS, SAGA, Proto-SaGa / Gaga and SAS
    (``METHOD_CONFIGS``) merged over it and ``extra`` over those; ``run_methods`` lists every method of the four."""
    parts = [yaml.safe_load((REPO / "tests/config" / name).read_text()) for name in METHOD_CONFIGS]
    config = tiny_config(*parts, *extra)
    config["run_methods"] = list(dict.fromkeys(method for part in parts for method in part["run_methods"]))
    return config


TINY_SCENE = "synthetic/tiny_room"
TINY_GAUSSIANS = (f"{TINY_SCENE}/scene.zarr", f"{TINY_SCENE}/train_gs/tiny.zarr", f"{TINY_SCENE}/train_gs/tiny.ply",
                  f"logs/{TINY_SCENE}/ingest.log", f"logs/{TINY_SCENE}/train_gs/tiny.log")


def train_tiny_gaussians(results: Path) -> Path:
    """Ingest the tiny room and train its ``tiny`` RGB Gaussians into ``results`` (once per test session, see
    ``tests/conftest.py``). The limit leaves room for a busy machine: train_gs takes about 50 s on two idle cores and
    was measured at 870 s beside other work on two loaded ones."""
    snakemake(results, str(results / TINY_GAUSSIANS[1]), timeout=2400)
    return results


def seed_tiny_gaussians(results: Path, source: Path) -> None:
    """Copy the tiny room's scene and ``tiny`` RGB Gaussians from ``source`` into ``results``, so a method's DAG test
    starts at its own stages. A ``--touch`` run of ingest and train_gs (it runs neither stage, it only touches their
    outputs in DAG order) records Snakemake's metadata for the copies as a real run does: a later change of the scene
    or of ``train_gs`` parameters reruns them and their dependants (tests/test_workflow.py)."""
    for relative in TINY_GAUSSIANS:
        target = results / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if (source / relative).is_dir():
            shutil.copytree(source / relative, target, copy_function=shutil.copy2)
        else:
            shutil.copy2(source / relative, target)
    snakemake(results, str(results / TINY_GAUSSIANS[1]), "--touch", "--forcerun", "ingest", "train_gs")
