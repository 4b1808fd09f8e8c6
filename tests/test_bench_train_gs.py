"""bench/train_gs.py on CPU: variant specs, the job plan (scaling sizes included), a --smoke run over two worker
processes merged into an existing CSV, and the stop before any work when a job needs CUDA."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from bench.train_gs import (
    SCALING_CAPS,
    SCALING_VIEWS,
    SyncRecorder,
    parser,
    plan,
    plot_scaling,
    profile_file,
    resolve_variant,
    views_for_train,
    worker_gpus,
)

REPO = Path(__file__).resolve().parents[1]
VARIANTS = yaml.safe_load((REPO / "config.yaml").read_text())["stages"]["train_gs"]["variants"]


def test_variant_spec_merges_options_and_overrides():
    p = resolve_variant("gpu_3dgs+aa+absgrad+mcmc.cap_max=500000+densify.refine_every=50", VARIANTS)
    assert p["init_rotation"] == "identity" and p["rasterize_mode"] == "antialiased"
    assert p["densify"] == {"absgrad": True, "grow_grad2d": 0.0008, "refine_every": 50}
    assert p["mcmc"] == {"cap_max": 500000}
    assert "rasterize_mode" not in VARIANTS["gpu_3dgs"], "the config's variant is not modified"
    with pytest.raises(ValueError, match="unknown option 'fast'"):
        resolve_variant("gpu_3dgs+fast", VARIANTS)
    coarse = resolve_variant("gpu_default+res2@10000+res4@2000", VARIANTS)
    assert coarse["downscale_schedule"] == [[2000, 4], [10000, 2]], "resF@STEP pairs in step order"
    with pytest.raises(ValueError, match="'gpu_x' is no train_gs variant"):
        resolve_variant("gpu_x", VARIANTS)


def test_plan_scenes_and_scaling():
    args = parser().parse_args(["--scenes", "lego,fern", "--variants", "gpu_3dgs,gpu_3dgs+aa", "--out", "x.csv",
                                "--scene-path", "fern=/data/fern"])
    args.scene_path = dict(s.split("=", 1) for s in args.scene_path)
    jobs = plan(args, VARIANTS)
    assert [j.label for j in jobs] == ["lego:gpu_3dgs", "lego:gpu_3dgs+aa", "fern:gpu_3dgs", "fern:gpu_3dgs+aa"]
    assert jobs[0].path.endswith("lego/data/nerf_synthetic/lego") and jobs[2].path == "/data/fern"
    assert all(j.params["iterations"] == 30000 for j in jobs)
    args = parser().parse_args(["--scaling", "views", "--variants", "gpu_3dgs", "--out", "x.csv"])
    jobs = plan(args, VARIANTS)
    for job, n in zip(jobs, SCALING_VIEWS):
        v = job.options["num_views"]
        assert v - math.ceil(v / 8) == n and (job.options["width"], job.options["height"]) == (800, 800)
    args = parser().parse_args(["--scaling", "gaussians", "--out", "x.csv"])
    caps = [j.params["mcmc"]["cap_max"] for j in plan(args, VARIANTS)]
    assert caps == list(SCALING_CAPS) and views_for_train(100, 8) == 115
    both = plan(parser().parse_args(["--scaling", "views,gaussians", "--out", "x.csv"]), VARIANTS)
    assert [j.label.split(":")[0] for j in both] == [f"scaling_views{n}" for n in SCALING_VIEWS] + \
        [f"scaling_gaussians{c}" for c in SCALING_CAPS]
    some = plan(parser().parse_args(["--scaling", "views", "--scaling-views", "200,400", "--out", "x.csv"]), VARIANTS)
    assert [j.label for j in some] == ["scaling_views200:gpu_3dgs", "scaling_views400:gpu_3dgs"]
    some = plan(parser().parse_args(["--scaling", "gaussians", "--scaling-caps", "250000,1000000", "--out", "x.csv"]),
                VARIANTS)
    assert [j.params["mcmc"]["cap_max"] for j in some] == [250000, 1000000]
    with pytest.raises(SystemExit, match="views and/or gaussians"):
        plan(parser().parse_args(["--scaling", "pixels", "--out", "x.csv"]), VARIANTS)


def test_workers_stay_on_the_callers_gpus():
    """A caller pinned to GPUs 2,3 (by hand or by SLURM) gets its workers on 2 and 3, not on 0 and 1."""
    assert worker_gpus("2,3", 2) == ["2", "3"]
    assert worker_gpus("1", 1) == ["1"]
    assert worker_gpus(None, 2) == ["0", "1"] and worker_gpus("", 2) == ["0", "1"]
    assert worker_gpus("", 0) == [] and worker_gpus("3", 0) == []


def run_bench(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "bench.train_gs", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)


def test_smoke_run_over_two_workers_appends_to_the_csv(tmp_path):
    out = tmp_path / "train_gs.csv"
    pd.DataFrame([{"label": "old", "iterations": 1, "psnr": 20.0}]).to_csv(out, index=False)
    proc = run_bench("--smoke", "--workers", "2", "--variants", "cpu_demo,gpu_3dgs+aa+packed", "--note", "smoke",
                     "--profile", "10:5", "--segment-every", "10", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-4000:]
    segments = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"segment"')]
    assert sorted((s["segment"], s["step"]) for s in segments) == sorted(
        (f"smoke:{v}", step) for v in ("cpu_demo", "gpu_3dgs+aa+packed") for step in (10, 20, 30, 40))
    for label in ("smoke:cpu_demo", "smoke:gpu_3dgs+aa+packed"):
        text = profile_file(out, label).read_text()
        assert text.startswith(f"{label} steps 10-15") and "Self CPU" in text
    rows = pd.read_csv(out)
    assert rows["label"].tolist()[0] == "old" and rows["psnr"].iloc[0] == 20.0
    new = rows.iloc[1:]
    assert sorted(zip(new["label"], new["iterations"])) == [("smoke:cpu_demo", 20), ("smoke:cpu_demo", 40),
                                                           ("smoke:gpu_3dgs+aa+packed", 20),
                                                           ("smoke:gpu_3dgs+aa+packed", 40)]
    assert set(new["worker"]) == {0, 1} and set(new["device"]) == {"cpu"} and set(new["note"]) == {"smoke"}
    assert (new["test_views"] == 2).all() and (new["train_views"] == 6).all()
    assert (new["train_seconds"] > 0).all() and new["psnr"].notna().all() and (new["num_gaussians"] > 0).all()
    late = new.sort_values("iterations").groupby("label")["train_seconds"]
    assert (late.last() > late.first()).all(), "the clock runs on between evaluations"
    assert '"rasterize_mode": "antialiased"' in new[new["label"].str.contains("aa")]["params"].iloc[0]
    assert not list(tmp_path.glob("train_gs.worker*")), "worker parts are merged and removed"


def test_parts_of_an_interrupted_call_are_merged(tmp_path):
    out = tmp_path / "train_gs.csv"
    pd.DataFrame([{"label": "old", "psnr": 20.0}]).to_csv(out, index=False)
    for w in (0, 1):
        pd.DataFrame([{"label": f"lego:w{w}", "psnr": 30.0 + w, "worker": w}]).to_csv(
            tmp_path / f"train_gs.worker{w}.csv", index=False)
    proc = run_bench("--merge-parts", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert pd.read_csv(out)["label"].tolist() == ["old", "lego:w0", "lego:w1"]
    assert not list(tmp_path.glob("train_gs.worker*"))


def test_cuda_only_variant_stops_before_any_work_on_cpu(tmp_path):
    proc = run_bench("--smoke", "--variants", "cpu_demo,gpu_3dgs+mcmc", "--out", str(tmp_path / "x.csv"))
    assert proc.returncode != 0
    assert "CUDA-only options on a cpu machine: smoke:gpu_3dgs+mcmc (strategy: mcmc" in proc.stderr
    assert not (tmp_path / "x.csv").exists()


def test_scaling_plot_takes_the_last_iteration_of_each_scaling_run(tmp_path):
    rows = [{"label": f"scaling_views{n}:gpu_3dgs", "variant": "gpu_3dgs", "iterations": it, "train_views": n,
             "num_gaussians": 1000 * n, "train_seconds": n * it / 1000, "peak_gpu_mem_gib": n / 100}
            for n in SCALING_VIEWS for it in (7000, 30000)]
    rows += [{"label": "lego:gpu_3dgs", "variant": "gpu_3dgs", "iterations": 30000, "train_views": 100,
              "num_gaussians": 1, "train_seconds": 1.0, "peak_gpu_mem_gib": 1.0}]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    picked = plot_scaling(tmp_path / "t.csv", tmp_path / "s.png")
    assert sorted(picked["train_views"]) == list(SCALING_VIEWS) and set(picked["iterations"]) == {30000}
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_a_json_line_goes_out_in_one_write(monkeypatch):
    """Workers share one stdout pipe: each line must be a single write (text and newline together), or another
    worker's line can land between them (seen once under load: two JSON objects on one line)."""
    from bench.train_gs import emit_line

    writes: list[str] = []

    class Recorder:
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

        def flush(self) -> None:
            writes.append("<flush>")

    monkeypatch.setattr(sys, "stdout", Recorder())
    emit_line('{"segment": "a", "step": 10}')
    assert writes == ['{"segment": "a", "step": 10}\n', "<flush>"]


def test_sync_recorder_counts_synchronisations_by_call_site(monkeypatch):
    """The recorder keys each sync warning by its Python call site and restores warnings and the debug mode."""
    modes = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    rec = SyncRecorder(depth=1)

    def synchronising_call():
        warnings.warn("called a synchronizing CUDA operation")

    showwarning = warnings.showwarning
    rec.start()
    for _ in range(3):
        synchronising_call()
    warnings.warn("called a synchronizing CUDA operation")
    rec.stop()
    assert modes == ["warn", "default"]
    assert warnings.showwarning is showwarning
    counts = sorted(rec.sites.values())
    assert counts == [1, 3]
    assert any("synchronising_call" in key[-1] for key, n in rec.sites.items() if n == 3)
    assert rec.table(2).startswith("4 synchronisations in 2 steps (2.00 per step)")
