"""Cluster execution: the demo DAG on two tiny synthetic scenes through `--profile workflow/profiles/slurm`,
against a real single-node SLURM on localhost (tests/slurm/start-local-slurm.sh: slurmctld, slurmd, slurmdbd
accounting, 2 fake GPUs as GRES).

Checks that every stage is an sbatch job (sacct, and the SLURM job id in every store's provenance), that the
outputs equal a local run's, that a failing stage fails the run without leaving a store behind, that a parameter
change resubmits only the stale jobs, and that an `scancel`led stage is rerun, not mistaken for complete.

Needs root (apt-get install, daemons); skipped otherwise. Run: `python -m pytest tests/test_slurm.py -m slurm`.
Every snakemake call is wrapped in `timeout -k 10`: the executor plugin waits forever, instead of failing, for a job
whose state it cannot query or does not recognise (see the README section "Run on a SLURM cluster").
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.lib.store import StoreError, read_store

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SLURM_DIR = Path(os.environ.get("OVGS_SLURM_DIR", "/tmp/ovgs-slurm"))
START, STOP = REPO / "tests/slurm/start-local-slurm.sh", REPO / "tests/slurm/stop-local-slurm.sh"
PROFILE = "workflow/profiles/slurm"
SCENES = {"tiny_a": 1, "tiny_b": 2}  # scene name -> synthetic seed
VARIANT = "tiny"
# Test-only overrides of the profile: poll job states every second instead of after 20 s (the plugin still adds
# 10 s per poll that finds no finished job), fail on the first error instead of retrying, short FS latency wait.
FAST = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
        "--retries", "0", "--latency-wait", "5"]
RUN_TIMEOUT = 420  # s; a full two-scene run takes ~1.5 min here


# ------------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------------
def demo_config(**train_overrides: int) -> dict:
    """tests/config/tiny.yaml with two smaller scenes; ``tiny_b=40`` overrides that scene's train_gs iterations."""
    cfg = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    base = cfg["scenes"][0]
    options = dict(base["options"], num_views=8, width=32, height=24, test_every=4, num_points=500)
    cfg["scenes"] = [dict(base, scene=name, options=dict(options, seed=seed)) for name, seed in SCENES.items()]
    cfg["run_methods"] = ["3dgs"]  # the scheduling machinery is method-agnostic; method stages run in test_workflow
    for scene in cfg["scenes"]:
        if scene["scene"] in train_overrides:
            scene["overrides"] = {"train_gs": {"iterations": train_overrides[scene["scene"]]}}
    cfg["stages"]["train_gs"]["variants"][VARIANT].update(
        iterations=60, checkpoint_every=20,
        densify={"refine_start_iter": 20, "refine_stop_iter": 50, "reset_every": 100000, "refine_every": 10})
    # one thread per job (two scenes in parallel on a 2-CPU node; OMP_NUM_THREADS follows threads, and the CPU
    # trainer is bit-reproducible only at a fixed thread count), gpu: 1 keeps the `--gpus` path exercised
    cfg["resources"] = {"default": {"threads": 1, "mem_mb": 1000, "runtime": 10, "gpu": 0},
                        "train_gs": {"threads": 1, "mem_mb": 2000, "runtime": 10, "gpu": 1},
                        "evaluate_render": {"gpu": 1}}
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float
    log: Path
    run_id: str | None = None

    def tail(self, n: int = 6000) -> str:
        return f"snakemake exit {self.returncode} after {self.seconds:.0f} s (log {self.log}):\n{self.output[-n:]}"


def snakemake_cmd(results: Path, config: Path, *args: str, slurm: bool, timeout: int = RUN_TIMEOUT) -> list[str]:
    cmd = ["timeout", "-k", "10", str(timeout), sys.executable, "-m", "snakemake", *args,
           "--configfile", str(config), "--nolock"]
    if slurm:
        cmd += ["--profile", PROFILE, "--slurm-logdir", str(results.parent / "slurm_logs"), *FAST]
    else:
        cmd += ["--cores", "2"]
    # --config takes every later word: keep it last; it replaces the profile's config block (torch_extensions_dir)
    return cmd + ["--config", f"results={results}", f"torch_extensions_dir={results.parent / 'torch_extensions'}"]


def start_snakemake(env: dict, results: Path, config: Path, *args: str, slurm: bool = True, name: str = "run",
                    timeout: int = RUN_TIMEOUT) -> tuple[subprocess.Popen, Path, float]:
    results.parent.mkdir(parents=True, exist_ok=True)
    log = results.parent / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(snakemake_cmd(results, config, *args, slurm=slurm, timeout=timeout), cwd=REPO,
                                env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    return proc, log, time.monotonic()


def finish(started: tuple[subprocess.Popen, Path, float], timeout: int = RUN_TIMEOUT + 30) -> Run:
    proc, log, t0 = started
    proc.wait(timeout=timeout)  # `timeout` inside has already killed a hung snakemake by then
    output = log.read_text()
    m = re.search(r"SLURM run ID: (\S+)", output)
    return Run(proc.returncode, output, time.monotonic() - t0, log, m.group(1) if m else None)


def run_snakemake(env: dict, results: Path, config: Path, *args: str, slurm: bool = True, name: str = "run") -> Run:
    return finish(start_snakemake(env, results, config, *args, slurm=slurm, name=name))


def planned_jobs(env: dict, results: Path, config: Path) -> dict[str, int]:
    """Jobs a dry run would execute, per rule."""
    proc = subprocess.run(snakemake_cmd(results, config, "--dry-run", "--quiet", "rules", slurm=False, timeout=120),
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


def sacct(env: dict, run_id: str | None = None) -> list[dict[str, str]]:
    """Allocations SLURM accounting knows (all, or one snakemake run's: the plugin names jobs by run id)."""
    cmd = ["sacct", "-X", "-n", "-P", "-S", "2020-01-01", "-o", "JobIDRaw,JobName,State,Comment,AllocTRES"]
    if run_id:
        cmd += ["--name", run_id]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=60).stdout
    keys = ("id", "name", "state", "comment", "tres")
    return [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]


def rule_of(comment: str) -> str:
    """The plugin's job comment: rule_<rule>[_wildcards_<values joined by _>]."""
    m = re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", comment)
    return m.group(1) if m else comment


def per_rule(jobs: list[dict[str, str]]) -> dict[str, int]:
    return dict(Counter(rule_of(j["comment"]) for j in jobs))


def stores(results: Path) -> dict[tuple[str, str], tuple[str, Path]]:
    """(scene, rule) -> (store kind, path) of every store the DAG writes."""
    out = {}
    for scene in SCENES:
        d = results / "synthetic" / scene
        out[scene, "ingest"] = ("scene", d / "scene.zarr")
        out[scene, "train_gs"] = ("gaussians", d / f"train_gs/{VARIANT}.zarr")
        out[scene, "evaluate_render"] = ("render_metrics", d / f"evaluate_render/{VARIANT}.zarr")
    return out


def job_of(kind: str, path: Path) -> str:
    return str(read_store(kind, path).attrs["provenance"]["slurm_job_id"])


def assert_same_arrays(kind: str, a: Path, b: Path) -> None:
    sa, sb = read_store(kind, a), read_store(kind, b)
    assert sorted(sa.keys()) == sorted(sb.keys())
    for name in sa.keys():
        x, y = sa.load(name), sb.load(name)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), f"{kind} {name}: {a} != {b}"


def leftovers(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.name.endswith(".zarr") or ".partial-" in p.name)


# ------------------------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slurm_env():
    """A running local SLURM (started by the script, stopped by its pid files) and the environment to reach it."""
    if os.geteuid() != 0:
        pytest.skip("needs root: tests/slurm/start-local-slurm.sh installs SLURM with apt-get and starts its daemons")
    if shutil.which("timeout") is None:
        pytest.skip("needs coreutils `timeout` to guard snakemake's SLURM executor against hangs")
    try:
        proc = subprocess.run(["bash", str(START), str(SLURM_DIR)], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.skip("start-local-slurm.sh did not finish within 15 min (apt or daemons stuck)")
    if proc.returncode != 0:
        why = {2: "not root", 3: "apt-get could not install slurm/munge/mariadb",
               4: "the daemons could not be brought up"}.get(proc.returncode, "failed")
        pytest.skip(f"local SLURM unavailable: start-local-slurm.sh exit {proc.returncode} ({why}):\n"
                    f"{(proc.stdout + proc.stderr)[-2000:]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}  # e.g. pytest itself in a job
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               SLURM_CONF=str(SLURM_DIR / "etc/slurm.conf"))
    yield env
    subprocess.run(["bash", str(STOP), str(SLURM_DIR)], capture_output=True, text=True, timeout=120)


@dataclass
class Demo:
    results: Path
    local: Path
    config: Path
    run: Run
    local_run: Run
    jobs: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture(scope="module")
def demo(slurm_env, tmp_path_factory):
    """The two-scene DAG once through SLURM and once locally (concurrently: the SLURM run mostly waits)."""
    root = tmp_path_factory.mktemp("slurm")
    config = write_config(root / "demo.yaml", demo_config())
    local = start_snakemake(slurm_env, root / "local" / "results", config, slurm=False, name="local")
    run = run_snakemake(slurm_env, root / "slurm" / "results", config, name="slurm")
    local_run = finish(local)
    assert local_run.returncode == 0, local_run.tail()
    assert run.returncode == 0, run.tail()
    assert run.run_id, "no 'SLURM run ID' in snakemake's output: did it run the slurm executor?"
    return Demo(root / "slurm" / "results", root / "local" / "results", config, run, local_run,
                sacct(slurm_env, run.run_id))


# ------------------------------------------------------------------------------------------------------------------
# tests (in file order: the later ones change the results of `demo`)
# ------------------------------------------------------------------------------------------------------------------
def test_every_stage_is_a_slurm_job(demo, slurm_env):
    jobs = demo.jobs
    assert per_rule(jobs) == {"ingest": 2, "train_gs": 2, "evaluate_render": 2, "report": 1}, jobs
    assert all(j["state"] == "COMPLETED" for j in jobs), jobs
    by_id = {j["id"]: j for j in jobs}
    for (scene, rule), (kind, path) in stores(demo.results).items():
        job = by_id.get(job_of(kind, path))
        assert job is not None, f"{path}: provenance job id {job_of(kind, path)} is not a job of this run: {jobs}"
        assert job["comment"] == f"rule_{rule}_wildcards_synthetic_{scene}" + ("" if rule == "ingest" else
                                                                                f"_{VARIANT}"), job
    # GPU stages asked for a GPU (gpu: 1 -> --gpus=1, a fake GRES here), CPU stages did not
    for j in jobs:
        assert ("gres/gpu=1" in j["tres"]) == (rule_of(j["comment"]) in ("train_gs", "evaluate_render")), j
    train_log = (demo.results / f"logs/synthetic/tiny_a/train_gs/{VARIANT}.log").read_text()
    assert "device: cpu" in train_log
    # the config's torch_extensions_dir reached the sbatch job as TORCH_EXTENSIONS_DIR (gsplat's build cache)
    assert f"gsplat CUDA build cache TORCH_EXTENSIONS_DIR={demo.results.parent / 'torch_extensions'}:" in train_log
    assert (demo.results / "report/report.md").read_text().count("tiny_") >= 2
    assert planned_jobs(slurm_env, demo.results, demo.config) == {}


def test_outputs_equal_local_run(demo):
    # CPU training is bit-reproducible run to run at a fixed thread count (snakemake sets OMP_NUM_THREADS from
    # `threads` in both executors), so even the trained Gaussians and their metrics must match exactly.
    for (scene, rule), (kind, path) in stores(demo.results).items():
        local_path = demo.local / path.relative_to(demo.results)
        assert_same_arrays(kind, local_path, path)
        a, b = read_store(kind, local_path).attrs, read_store(kind, path).attrs
        pa, pb = a.pop("provenance"), b.pop("provenance")
        assert pa["slurm_job_id"] is None and pb["slurm_job_id"] is not None
        assert pa["params"] == pb["params"]
        for cost in ("train_seconds", "peak_rss_mb", "peak_gpu_mb"):  # timing and memory, not content
            a.pop(cost, None), b.pop(cost, None)
        assert a == b, (kind, scene)
        if rule == "ingest":  # no input paths in its fingerprint: identical content -> identical fingerprint
            assert pa["fingerprint"] == pb["fingerprint"]
    cols = ["dataset", "scene", "variant", "psnr", "ssim", "baseline_psnr", "test_views", "num_gaussians"]
    pd.testing.assert_frame_equal(pd.read_csv(demo.local / "report/render_metrics.csv")[cols],
                                  pd.read_csv(demo.results / "report/render_metrics.csv")[cols])


def test_failing_stage_fails_the_run_and_leaves_no_store(demo, slurm_env):
    cfg = demo_config()
    cfg["scenes"].append({"dataset": "synthetic", "scene": "tiny_bad", "reader": "colmap",
                          "path": "/nonexistent/ovgs-slurm-test/tiny_bad"})
    config = write_config(demo.results.parent / "failing.yaml", cfg)
    run = run_snakemake(slurm_env, demo.results, config, name="failing")
    assert run.returncode not in (0, 124, 137), run.tail()
    assert "Error in rule ingest" in run.output and "tiny_bad" in run.output, run.tail()
    jobs = sacct(slurm_env, run.run_id)
    assert [(rule_of(j["comment"]), j["comment"].endswith("tiny_bad"), j["state"]) for j in jobs] == \
        [("ingest", True, "FAILED")], jobs
    assert leftovers(demo.results / "synthetic/tiny_bad") == []
    assert "nonexistent" in (demo.results / "logs/synthetic/tiny_bad/ingest.log").read_text()
    assert planned_jobs(slurm_env, demo.results, config)["ingest"] == 1


@pytest.mark.slow  # about 1.5-2 min; `make test-slow` runs it
def test_parameter_change_resubmits_only_stale_jobs(demo, slurm_env):
    config = write_config(demo.results.parent / "changed.yaml", demo_config(tiny_b=40))
    assert planned_jobs(slurm_env, demo.results, config) == {"train_gs": 1, "evaluate_render": 1, "report": 1,
                                                             "all": 1}
    kept = {key: job_of(*store) for key, store in stores(demo.results).items() if key[0] == "tiny_a" or
            key[1] == "ingest"}
    before = len(sacct(slurm_env))
    run = run_snakemake(slurm_env, demo.results, config, name="changed")
    assert run.returncode == 0, run.tail()
    assert len(sacct(slurm_env)) - before == 3
    jobs = sacct(slurm_env, run.run_id)
    assert sorted(j["comment"] for j in jobs) == [f"rule_evaluate_render_wildcards_synthetic_tiny_b_{VARIANT}",
                                                  "rule_report", f"rule_train_gs_wildcards_synthetic_tiny_b_{VARIANT}"]
    assert {key: job_of(*stores(demo.results)[key]) for key in kept} == kept, "a fresh store was rewritten"
    gs = read_store("gaussians", demo.results / f"synthetic/tiny_b/train_gs/{VARIANT}.zarr")
    assert gs.attrs["iterations"] == 40 and gs.attrs["provenance"]["slurm_job_id"] in {j["id"] for j in jobs}
    assert planned_jobs(slurm_env, demo.results, config) == {}


@pytest.mark.slow  # about 1.5-2 min; `make test-slow` runs it
def test_scancel_of_a_running_stage_is_rerun_not_taken_as_complete(demo, slurm_env):
    config = write_config(demo.results.parent / "cancelled.yaml", demo_config(tiny_a=80, tiny_b=40))
    stale = planned_jobs(slurm_env, demo.results, config)
    assert stale.get("train_gs", 0) >= 1 and "ingest" not in stale, stale
    store = demo.results / f"synthetic/tiny_a/train_gs/{VARIANT}.zarr"
    train_log = demo.results / f"logs/synthetic/tiny_a/train_gs/{VARIANT}.log"
    comment = f"rule_train_gs_wildcards_synthetic_tiny_a_{VARIANT}"
    started = start_snakemake(slurm_env, demo.results, config, name="cancelled", timeout=240)
    job_id, seen_running, deadline = None, None, time.monotonic() + 180
    try:
        while time.monotonic() < deadline and started[0].poll() is None:
            if job_id is None:
                out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], env=slurm_env, capture_output=True,
                                     text=True, timeout=30).stdout
                running = [line.split("|")[0] for line in out.splitlines() if line.endswith(f"|RUNNING|{comment}")]
                if running:
                    job_id, seen_running = running[0], time.time()
            # cancel mid-training: once the job has rewritten the stage log and the trainer has started
            elif train_log.exists() and train_log.stat().st_mtime >= seen_running - 1 and \
                    "device:" in train_log.read_text(errors="replace"):
                break
            time.sleep(0.3)
        assert job_id is not None, "train_gs of tiny_a never showed up RUNNING in squeue"
        subprocess.run(["scancel", job_id], env=slurm_env, check=True, timeout=30)
    finally:
        run = finish(started)
    # reported as failed by the executor (with sacct as status command, plugin 2.8.0 would wait forever here: sacct
    # says "CANCELLED by 0", which it does not recognise; the profile polls with squeue)
    assert f"SLURM-job '{job_id}' failed, SLURM status is: 'CANCELLED'" in run.output, run.tail()
    assert run.returncode not in (0, 124, 137), run.tail()
    state = {j["id"]: j["state"] for j in sacct(slurm_env, run.run_id)}
    assert state[job_id].startswith("CANCELLED"), state
    # nothing a rerun takes for complete: the cancelled stage's old store is gone (Snakemake deletes a job's outputs
    # when it starts it, and the StoreWriter never leaves a partial store at the final path) ...
    if store.exists():
        with pytest.raises(StoreError):
            read_store("gaussians", store)
    # ... and neither are the evaluate_render / report outputs computed from that old store: the rerun must plan the
    # cancelled stage and everything after it again, exactly the jobs that were stale before the cancel
    assert planned_jobs(slurm_env, demo.results, config) == stale, (
        "after the cancelled train_gs, snakemake takes the evaluate_render/report outputs of the OLD model for "
        "complete (it does not rerun a job whose outputs exist because an input is missing, and the old train_gs "
        "outputs, which carried the parameter change, are gone): downstream rules must list their upstream stages' "
        "parameters in `params:`")
    rerun = run_snakemake(slurm_env, demo.results, config, name="rerun")
    assert rerun.returncode == 0, rerun.tail()
    rerun_jobs = sacct(slurm_env, rerun.run_id)
    assert per_rule(rerun_jobs) == {k: v for k, v in stale.items() if k != "all"}
    gs = read_store("gaussians", store)
    assert gs.attrs["iterations"] == 80 and gs.attrs["provenance"]["slurm_job_id"] in {j["id"] for j in rerun_jobs}
    metrics = read_store("render_metrics", demo.results / f"synthetic/tiny_a/evaluate_render/{VARIANT}.zarr")
    assert metrics.attrs["provenance"]["inputs"]["gaussians"]["fingerprint"] == gs.attrs["provenance"]["fingerprint"]
    assert [p for p in leftovers(store.parent) if ".partial-" in p.name] == []
    assert planned_jobs(slurm_env, demo.results, config) == {}
