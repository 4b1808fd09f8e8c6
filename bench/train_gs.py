"""Benchmark of train_gs: scenes x recipe variants in one call, spread over the GPUs (one process per GPU), rows
appended to bench/results/train_gs.csv.

Each job trains one variant on one scene to the last ``--eval-at`` iteration and evaluates the scene's test views
(for lego the 25 frames of transforms_test.json, r_0, r_8, ..., r_192; the reader marks them ``is_test``) at every
``--eval-at`` iteration: float PSNR / SSIM of the clamped render against the 8-bit image, as in 3DGS's in-loop
report. ``train_seconds`` is the training loop only: gsplat's CUDA extension is built (or loaded) and its kernels,
the SSIM convolution and the optimiser are run once before any clock starts (``gsplat_build_seconds`` records the
build), and set-up (point cloud, images to the GPU) and evaluation are excluded. ``peak_gpu_mem_gib`` is torch's
peak allocation of the job (reset before it), ``device`` the GPU model.

A variant is a train_gs variant of config.yaml followed by ``+``-joined options: a name from ``OPTIONS`` or a
``dotted.key=JSON`` override, e.g. ``gpu_3dgs+aa+mcmc.cap_max=500000``, or ``resF@STEP`` (the steps before STEP at 1/F
resolution: ``downscale_schedule``), e.g. ``gpu_default+res4@2000+res2@10000``.

Examples (GPU; lego and fern from ../shared/data or --data-root):
    python -m bench.train_gs --scenes lego,fern --variants gpu_3dgs,gpu_3dgs+absgrad,gpu_3dgs+aa \\
        --eval-at 7000,30000 --out bench/results/train_gs.csv --note "..."
    python -m bench.train_gs --scaling views --variants gpu_3dgs --out bench/results/train_gs.csv
    python -m bench.train_gs --out bench/results/train_gs.csv --plot-scaling bench/results/train_gs_scaling.png
    python -m bench.train_gs --smoke --workers 2 --out /tmp/train_gs_smoke.csv      # tiny, CPU
    python -m bench.train_gs --scenes cpu_room_a,cpu_room_b --variants cpu_demo,cpu_demo+res4@150+res2@400 \
        --eval-at 800 --workers 2 --out bench/results/train_gs.csv                   # option comparisons, CPU
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from stages.lib.atomic import atomic_path
from stages.lib.params import deep_merge

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench.train_gs")

# name -> (reader, path under --data-root, reader options)
SCENES: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    "lego": ("nerf_json", "lego/data/nerf_synthetic/lego", {"background": [1.0, 1.0, 1.0]}),
    "fern": ("llff", "fern/data/nerf_llff_data/fern", {"factor": 8, "test_every": 8}),
    "room": ("synthetic", None, {"num_views": 150, "width": 512, "height": 512, "num_points": 100000}),
    "smoke": ("synthetic", None, {"num_views": 8, "width": 32, "height": 24, "num_points": 300, "test_every": 4}),
    # two small rooms for CPU comparisons of options (with the cpu_demo variant, ~5 min per run on one core)
    "cpu_room_a": ("synthetic", None, {"num_views": 24, "width": 64, "height": 48, "num_points": 3000, "test_every": 6,
                                       "seed": 4}),
    "cpu_room_b": ("synthetic", None, {"num_views": 24, "width": 64, "height": 48, "num_points": 3000, "test_every": 6,
                                       "seed": 5}),
}
# Named options of gsplat and of the 3DGS recipe, merged over the variant's parameters.
OPTIONS: dict[str, dict[str, Any]] = {
    "absgrad": {"densify": {"absgrad": True, "grow_grad2d": 0.0008}},  # gsplat's threshold for absolute gradients
    "aa": {"rasterize_mode": "antialiased"},
    "packed": {"packed": True},
    "tile8": {"tile_size": 8},  # gsplat's CUDA tiles of 8 x 8 pixels instead of 16 x 16 (the same render; speed only)
    # 3DGS-MCMC (gsplat simple_trainer's MCMC settings: initial opacity 0.5, scale 0.1 x kNN distance); NeRF-synthetic
    # cap 300k, about 3DGS's count on lego
    "mcmc": {"strategy": "mcmc", "init_opacity": 0.5, "init_scale": 0.1, "mcmc": {"cap_max": 300000}},
    "no_size_prune": {"densify": {"prune_scale3d": 1.0e9}},  # world-size pruning off (what train_gs did before)
    "screen_prune": {"densify": {"refine_scale2d_stop_iter": 15000, "prune_scale2d": 0.025, "grow_scale2d": 1.0e9}},
    "random_order": {"view_order": "random"},
    "random_rot": {"init_rotation": "random"},
    "point_colors": {"init_color": "points"},
    "decay_to_end": {"lr_means_steps": 0},  # position lr reaches its final value at the last iteration
    "opacity_lr_025": {"lr_opacities": 0.025},  # the later reference code's opacity lr
    "sep_ssim": {"ssim_method": "separable"},  # the same SSIM, window as row + column passes (speed only)
    "fft_ssim": {"ssim_method": "fft"},  # the same SSIM, window by FFT (speed only)
    "shifted_ssim": {"ssim_method": "shifted"},  # the same SSIM, window as shifted sums (with compile: fused)
    "fused_adam": {"fused_adam": True},  # torch's fused Adam kernel (speed only)
    "compile": {"compile_loss": True},  # torch.compile of the photometric loss (speed only)
    "graphs": {"compile_loss": True, "compile_mode": "reduce-overhead"},  # ... replayed as CUDA graphs (speed only)
}
# resF@STEP: train the steps before STEP at 1/F resolution (train_gs downscale_schedule), e.g. res4@2000+res2@10000
RESOLUTION_OPTION = re.compile(r"res(\d+)@(\d+)")
SCALING_VIEWS = (50, 100, 200, 400)
SCALING_CAPS = (250_000, 500_000, 1_000_000, 2_000_000)
SCALING_SIZE = {"width": 800, "height": 800, "num_points": 100000, "test_every": 8,
                "device": "cuda" if torch.cuda.is_available() else "cpu"}  # the room's views rendered on the GPU


@dataclass
class Job:
    scene: str
    variant: str
    reader: str
    path: str | None
    options: dict[str, Any]
    params: dict[str, Any]
    label: str


def resolve_variant(spec: str, variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``base+option+dotted.key=JSON`` -> train_gs parameters (ValueError naming an unknown part)."""
    base, *parts = spec.split("+")
    if base not in variants:
        raise ValueError(f"{spec}: {base!r} is no train_gs variant of config.yaml ({sorted(variants)})")
    params = {k: v for k, v in variants[base].items() if k != "after"}
    for part in parts:
        if "=" in part:
            key, value = part.split("=", 1)
            override: dict[str, Any] = json.loads(value)
            for name in reversed(key.split(".")):
                override = {name: override}
            params = deep_merge(params, override)
        elif part in OPTIONS:
            params = deep_merge(params, OPTIONS[part])
        elif resolution := RESOLUTION_OPTION.fullmatch(part):
            factor, until = map(int, resolution.groups())
            params["downscale_schedule"] = sorted([*params.get("downscale_schedule", []), [until, factor]])
        else:
            raise ValueError(f"{spec}: unknown option {part!r} (known: {sorted(OPTIONS)}, resF@STEP, or key=JSON)")
    return params


def views_for_train(n: int, test_every: int) -> int:
    """The smallest view count whose train split (every ``test_every``-th view held out) has ``n`` views."""
    v = n
    while v - math.ceil(v / test_every) < n:
        v += 1
    return v


def plan(args: argparse.Namespace, variants: dict[str, dict[str, Any]]) -> list[Job]:
    specs = [s for s in args.variants.split(",") if s]
    jobs = []
    scaling = [x for x in (args.scaling or "").split(",") if x]
    unknown = set(scaling) - {"views", "gaussians"}
    if unknown:
        raise SystemExit(f"bench.train_gs: --scaling takes views and/or gaussians, got {sorted(unknown)}")
    if "views" in scaling:
        for n in args.scaling_views or SCALING_VIEWS:
            opts = dict(SCALING_SIZE, num_views=views_for_train(n, SCALING_SIZE["test_every"]))
            jobs += [Job("room", s, "synthetic", None, opts, resolve_variant(s, variants), f"scaling_views{n}:{s}")
                     for s in specs]
    if "gaussians" in scaling:
        opts = dict(SCALING_SIZE, num_views=views_for_train(100, SCALING_SIZE["test_every"]))
        for cap in args.scaling_caps or SCALING_CAPS:
            for s in specs:
                params = resolve_variant(f"{s}+mcmc+mcmc.cap_max={cap}", variants)
                jobs.append(Job("room", s, "synthetic", None, opts, params, f"scaling_gaussians{cap}:{s}+mcmc"))
    if not scaling:
        for scene in [s for s in args.scenes.split(",") if s]:
            reader, rel, opts = SCENES[scene]
            path = args.scene_path.get(scene) or (str(Path(args.data_root) / rel) if rel else None)
            jobs += [Job(scene, s, reader, path, dict(opts), resolve_variant(s, variants), f"{scene}:{s}")
                     for s in specs]
    last = max(args.eval_at)
    for job in jobs:
        job.params["iterations"] = last
        job.params.setdefault("checkpoint_every", 0)
    return jobs


def check_devices(jobs: list[Job], device: torch.device) -> None:
    """Stop before any work if a job needs CUDA on a machine without it (naming the jobs)."""
    from stages.lib.gs_trainer import GSTrainConfig

    bad = [f"{j.label} ({'; '.join(GSTrainConfig.from_dict(j.params).cuda_only_options())})" for j in jobs
           if device.type != "cuda" and GSTrainConfig.from_dict(j.params).cuda_only_options()]
    if bad:
        raise SystemExit(f"bench.train_gs: CUDA-only options on a {device.type} machine: {', '.join(bad)}")


def warm_up(device: torch.device) -> float:
    """Build / load gsplat's CUDA extension and run its kernels, SSIM and Adam once; returns the build seconds."""
    if device.type != "cuda":
        return 0.0
    from stages.lib.gsplat_build import ensure_built
    from stages.lib.image_metrics import ssim
    from stages.lib.render import render

    seconds = ensure_built(log)
    n = 1000
    g = torch.Generator(device="cpu").manual_seed(0)
    means = (torch.rand(n, 3, generator=g) - 0.5).to(device).requires_grad_()
    quats = torch.rand(n, 4, generator=g).to(device)
    scales = torch.full((n, 3), 0.02, device=device)
    opac = torch.full((n,), 0.5, device=device)
    colors = torch.rand(n, 4, 3, generator=g).to(device)
    view = torch.eye(4, device=device)[None]
    view[0, 2, 3] = 3.0
    K = torch.tensor([[[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]], device=device)
    opt = torch.optim.Adam([means], lr=1e-3)
    for mode, packed, absgrad in (("classic", False, False), ("antialiased", True, True)):
        out, _, _ = render(means, quats, scales, opac, colors, view, K, 64, 64, sh_degree=1, rasterize_mode=mode,
                           packed=packed, absgrad=absgrad)
        (1 - ssim(out, out.detach() * 0.5)).backward()
        opt.step()
        opt.zero_grad()
    torch.cuda.synchronize()
    return seconds


def backend_parity(scene, params, sh_degree: int, device: torch.device) -> float:
    """Max abs difference between gsplat's CUDA rasteriser and the CPU path on one test view."""
    from stages.lib.gs_trainer import render_params

    i = int(scene.is_test.nonzero()[0][0])
    view = torch.from_numpy(scene.world_to_camera[i:i + 1]).float()
    K = torch.from_numpy(scene.intrinsics[i:i + 1]).float()
    with torch.no_grad():
        gpu, _, _ = render_params(params, view.to(device), K.to(device), scene.width, scene.height, sh_degree)
        cpu, _, _ = render_params({k: v.cpu() for k, v in params.items()}, view, K, scene.width, scene.height,
                                  sh_degree, backend="torch")
    return float((gpu.cpu() - cpu).abs().max())


def emit_line(line: str) -> None:
    """Write one JSON line to stdout in a single write call: workers share the parent's pipe, and ``print`` may send
    the text and its newline as two writes, between which another worker's line can land (two objects on one line).
    One write of less than the pipe's atomic size (4 KiB on Linux) is never split."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def profile_file(out: Path, label: str) -> Path:
    """Where ``--profile`` writes the tables of one job."""
    return out.with_name(f"{out.stem}_profile_{''.join(c if c.isalnum() else '_' for c in label)}.txt")


def sync_file(out: Path, label: str) -> Path:
    """Where ``--sync-report`` writes the host-device synchronisations of one job."""
    return out.with_name(f"{out.stem}_syncs_{''.join(c if c.isalnum() else '_' for c in label)}.txt")


class SyncRecorder:
    """Counts the loop's host-device synchronisations by call site: torch's sync debug mode warns at every
    synchronising CUDA call, and each warning's Python stack (innermost ``depth`` frames) is the key."""

    def __init__(self, depth: int = 4) -> None:
        self.depth = depth
        self.sites: dict[tuple[str, ...], int] = {}
        self._catch = warnings.catch_warnings()

    def start(self) -> None:
        self._catch.__enter__()
        warnings.simplefilter("always")
        warnings.showwarning = self._record
        torch.cuda.set_sync_debug_mode("warn")

    def stop(self) -> None:
        torch.cuda.set_sync_debug_mode("default")
        self._catch.__exit__(None, None, None)

    def _record(self, message, category, filename, lineno, file=None, line=None) -> None:
        frames = [f for f in traceback.extract_stack()[:-1] if not f.filename.endswith("warnings.py")]
        key = tuple(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[-self.depth:])
        self.sites[key] = self.sites.get(key, 0) + 1

    def table(self, steps: int) -> str:
        total = sum(self.sites.values())
        lines = [f"{total} synchronisations in {steps} steps ({total / max(steps, 1):.2f} per step); by call site "
                 "(innermost frame last):"]
        for key, n in sorted(self.sites.items(), key=lambda kv: -kv[1]):
            lines.append(f"{n:8d}  " + "  <-  ".join(reversed(key)))
        return "\n".join(lines)


def profile_tables(prof: "torch.profiler.profile", steps: int) -> str:
    """The profiler's ops by self device time and by self CPU time (top 30 each), with the per-step totals."""
    events = prof.key_averages()
    device_us = sum(e.self_device_time_total for e in events)
    cpu_us = sum(e.self_cpu_time_total for e in events)
    head = (f"{steps} steps: self device time {device_us / 1e3 / steps:.3f} ms/step, "
            f"self CPU time {cpu_us / 1e3 / steps:.3f} ms/step\n")
    return "\n".join([head, events.table(sort_by="self_device_time_total", row_limit=30),
                      events.table(sort_by="self_cpu_time_total", row_limit=30)])


def run_job(job: Job, device: torch.device, eval_at: list[int], build_seconds: float, worker: int,
            note: str, parity: bool = False, profile: tuple[int, int] | None = None,
            segment_every: int = 0, out: Path | None = None,
            sync_report: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    from stages.evaluate_render import evaluate_test_views
    from stages.ingest import load_source
    from stages.lib.gs_trainer import GSTrainConfig, train_rgb

    t0 = time.perf_counter()
    scene = load_source(job.reader, job.path, job.options)
    load_s = time.perf_counter() - t0
    cfg = GSTrainConfig.from_dict(job.params)
    test_names = [Path(scene.image_names[i]).stem for i in scene.is_test.nonzero()[0]]
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    rows: list[dict[str, Any]] = []
    clock = {"train": 0.0, "last": 0.0, "setup": time.perf_counter()}

    def on_start(trainer) -> None:
        sync()
        clock["last"] = time.perf_counter()
        clock["setup"] = clock["last"] - clock["setup"]

    prof: dict[str, Any] = {}

    def profile_and_segments(step: int, trainer) -> None:
        """``--profile`` / ``--segment-every``: profiled steps are excluded from ``train_seconds``."""
        if segment_every and step % segment_every == 0:
            sync()
            now = time.perf_counter()
            emit_line(json.dumps({"segment": job.label, "step": step,
                                  "seconds": now - clock.get("segment", clock["last"]),
                                  "gaussians": len(trainer.params["means"])}))
            clock["segment"] = now
        if profile and step == profile[0]:
            sync()
            clock["train"] += time.perf_counter() - clock["last"]
            prof["p"] = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]
                                               + ([torch.profiler.ProfilerActivity.CUDA] if cuda else []))
            prof["p"].start()
            prof["t0"] = clock["segment"] = time.perf_counter()
        if profile and step == profile[0] + profile[1] and "p" in prof:
            sync()
            wall = time.perf_counter() - prof["t0"]
            prof["p"].stop()
            text = (f"{job.label} steps {profile[0]}-{step} ({len(trainer.params['means'])} Gaussians), "
                    f"{wall / profile[1] * 1e3:.3f} ms/step wall under the profiler\n"
                    + profile_tables(prof["p"], profile[1]))
            if out is not None:
                profile_file(out, job.label).parent.mkdir(parents=True, exist_ok=True)
                profile_file(out, job.label).write_text(text)
            print(text, flush=True)
            clock["last"] = clock["segment"] = time.perf_counter()

    syncs = SyncRecorder() if sync_report and cuda else None

    def record_syncs(step: int) -> None:
        """``--sync-report``: the recorded steps are excluded from ``train_seconds``."""
        if syncs is None or step not in (sync_report[0], sync_report[0] + sync_report[1]):
            return
        sync()
        if step == sync_report[0]:
            clock["train"] += time.perf_counter() - clock["last"]
            syncs.start()
            return
        syncs.stop()
        text = f"{job.label} steps {sync_report[0]}-{step}: " + syncs.table(sync_report[1])
        if out is not None:
            sync_file(out, job.label).write_text(text + "\n")
        print(text, flush=True)
        clock["last"] = clock["segment"] = time.perf_counter()

    def on_step(step: int, trainer) -> None:
        profile_and_segments(step, trainer)
        record_syncs(step)
        if step not in eval_at:
            return
        sync()
        clock["train"] += time.perf_counter() - clock["last"]
        table, _ = evaluate_test_views(scene, trainer.params, cfg.sh_degree, device, num_previews=0,
                                       rasterize_mode=cfg.rasterize_mode)
        rows.append({
            "label": job.label, "scene": job.scene, "variant": job.variant, "iterations": step,
            "views": scene.num_views, "train_views": int((~scene.is_test).sum()),
            "test_views": int(scene.is_test.sum()),
            "test_view_names": " ".join(test_names), "width": scene.width, "height": scene.height,
            "psnr": table["psnr"].mean(), "ssim": table["ssim"].mean(), "baseline_psnr": table["baseline_psnr"].mean(),
            "train_seconds": clock["train"], "iters_per_second": step / clock["train"],
            "num_gaussians": len(trainer.params["means"]),
            "peak_gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0,
            "setup_seconds": clock["setup"], "scene_load_seconds": load_s, "gsplat_build_seconds": build_seconds,
            "device": torch.cuda.get_device_name(0) if cuda else "cpu", "worker": worker,
            "torch": torch.__version__, "params": json.dumps(job.params, sort_keys=True),
            "date": dt.date.today().isoformat(), "note": note,
        })
        emit_line(json.dumps(rows[-1]))
        sync()
        clock["last"] = clock["segment"] = time.perf_counter()

    params = train_rgb(scene, cfg, device, on_step=on_step, on_start=on_start, progress=False)
    if parity and device.type == "cuda":
        rows[-1]["cuda_vs_cpu_max_abs_diff"] = backend_parity(scene, params, cfg.sh_degree, device)
    return rows


def plot_scaling(csv: Path, png: Path) -> pd.DataFrame:
    """Training time and peak memory of the scaling rows (their last iteration) against train views and Gaussian
    count, each with the line through the origin and the smallest run (what linear scaling would give)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = pd.read_csv(csv)
    rows = rows[rows["label"].astype(str).str.startswith("scaling_")]
    rows = rows[rows["iterations"] == rows.groupby("label")["iterations"].transform("max")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    for col, (kind, x) in enumerate((("scaling_views", "train_views"), ("scaling_gaussians", "num_gaussians"))):
        sel = rows[rows["label"].str.startswith(kind)].sort_values(x)
        for row, y in enumerate(("train_seconds", "peak_gpu_mem_gib")):
            ax = axes[row, col]
            for variant, g in sel.groupby("variant"):
                ax.plot(g[x], g[y], "o-", label=variant)
                ax.plot(g[x], g[x] * (g[y].iloc[0] / g[x].iloc[0]), ":", color="grey")
            ax.set_xlabel(x.replace("_", " "))
            ax.set_ylabel(y.replace("_", " "))
            ax.grid(alpha=0.3)
            if len(sel):
                ax.legend(fontsize=8)
    fig.suptitle("train_gs scaling (dotted: linear from the smallest run)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return rows


def append_rows(out: Path, rows: pd.DataFrame) -> None:
    """Append to the CSV, keeping its columns and adding new ones (older rows get blanks)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and out.stat().st_size:
        rows = pd.concat([pd.read_csv(out), rows], ignore_index=True)
    rows.to_csv(out, index=False)


def part_path(out: Path, worker: int) -> Path:
    """Worker ``worker``'s rows, rewritten after each of its jobs (merged into ``out`` at the end, or by
    ``--merge-parts`` after an interrupted call)."""
    return out.with_name(f"{out.stem}.worker{worker}.csv")


def merge_parts(out: Path) -> list[Path]:
    """Append every worker part beside ``out`` to it and delete the parts."""
    parts = sorted(out.parent.glob(f"{out.stem}.worker*.csv"))
    if parts:
        append_rows(out, pd.concat([pd.read_csv(p) for p in parts], ignore_index=True))
        for p in parts:
            p.unlink()
    return parts


def worker_main(args: argparse.Namespace, jobs: list[Job]) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mine = jobs[args.worker::args.workers]
    build_s = warm_up(device)
    rows: list[dict[str, Any]] = []
    part = part_path(Path(args.out), args.worker)
    for job in mine:
        log.info("worker %d: %s", args.worker, job.label)
        rows += run_job(job, device, args.eval_at, build_s, args.worker, args.note, args.parity,
                        profile=args.profile, segment_every=args.segment_every, out=Path(args.out),
                        sync_report=args.sync_report)
        pd.DataFrame(rows).to_csv(part, index=False)  # after every job: a crash keeps the finished ones


def worker_gpus(visible: str | None, count: int) -> list[str]:
    """The GPU names a worker may be pinned to: the entries of the caller's ``CUDA_VISIBLE_DEVICES`` (a SLURM
    allocation, or a GPU picked by hand), else the indices of all ``count`` GPUs."""
    named = [g.strip() for g in (visible or "").split(",") if g.strip()]
    return (named or [str(i) for i in range(count)])[:count]


def spawn_workers(args: argparse.Namespace, jobs: list[Job], argv: list[str]) -> int:
    """One process per worker (GPU ``i % GPUs`` each); then their rows are merged into ``--out``."""
    out = Path(args.out)
    gpus = worker_gpus(os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.device_count())
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    procs = []
    for w in range(args.workers):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[w % len(gpus)]
        part_path(out, w).unlink(missing_ok=True)
        procs.append(subprocess.Popen([sys.executable, "-m", "bench.train_gs", *argv, "--workers", str(args.workers),
                                       "--worker", str(w)], cwd=REPO, env=env))
    codes = [p.wait() for p in procs]
    merge_parts(out)
    failed = [w for w, c in enumerate(codes) if c != 0]
    if failed:
        print(f"bench.train_gs: workers {failed} failed (their finished jobs are in {out})", file=sys.stderr)
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", default="lego", help=f"comma-separated, of {sorted(SCENES)}")
    p.add_argument("--variants", default="gpu_3dgs", help="comma-separated variant specs (see above)")
    p.add_argument("--eval-at", default="7000,30000", type=lambda s: sorted({int(x) for x in s.split(",") if x}),
                   help="iterations at which to evaluate; the last is the training length")
    p.add_argument("--scaling", default=None, metavar="views,gaussians",
                   help=f"synthetic room at 800x800: train views {SCALING_VIEWS} and/or 100 views with MCMC caps "
                        f"{SCALING_CAPS} (instead of --scenes)")
    p.add_argument("--scaling-views", default=None, type=lambda s: [int(x) for x in s.split(",") if x],
                   metavar="N,...", help=f"only these train-view counts of --scaling views (default {SCALING_VIEWS})")
    p.add_argument("--scaling-caps", default=None, type=lambda s: [int(x) for x in s.split(",") if x],
                   metavar="N,...", help=f"only these MCMC caps of --scaling gaussians (default {SCALING_CAPS})")
    p.add_argument("--data-root", default=str(REPO.parent / "shared/data"))
    p.add_argument("--scene-path", action="append", default=[], metavar="SCENE=PATH",
                   help="path of one scene (e.g. a packed copy: bench/pack_nerf_scene.py)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per visible GPU, 1 on CPU)")
    p.add_argument("--smoke", action="store_true", help="tiny synthetic scene, 40 iterations, CPU-able")
    p.add_argument("--parity", action="store_true",
                   help="also compare the CUDA and CPU renderers (last row of each job)")
    p.add_argument("--profile", default=None, metavar="START:STEPS",
                   type=lambda s: tuple(int(x) for x in s.split(":")),
                   help="torch.profiler over STEPS steps from step START of every job (excluded from "
                        "train_seconds): ops by device and CPU time into <out>_profile_<label>.txt")
    p.add_argument("--sync-report", default=None, metavar="START:STEPS",
                   type=lambda s: tuple(int(x) for x in s.split(":")),
                   help="count the host-device synchronisations of STEPS steps from step START by call site "
                        "(CUDA only; excluded from train_seconds) into <out>_syncs_<label>.txt")
    p.add_argument("--segment-every", type=int, default=0, metavar="N",
                   help="print the loop's seconds per N steps and the Gaussian count (JSON lines)")
    p.add_argument("--note", default="", help="free text stored in every row (conditions of the run)")
    p.add_argument("--out", required=True, help="CSV to append rows to")
    p.add_argument("--merge-parts", action="store_true",
                   help="only merge worker parts left beside --out by an interrupted call into it")
    p.add_argument("--plot-scaling", default=None, metavar="PNG",
                   help="only plot the scaling rows of --out into PNG (time and memory vs views and Gaussians)")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.scene_path = dict(s.split("=", 1) for s in args.scene_path)
    if args.merge_parts:
        print(f"merged {[p.name for p in merge_parts(Path(args.out))]} into {args.out}")
        return 0
    if args.plot_scaling:
        print(plot_scaling(Path(args.out), Path(args.plot_scaling))[["label", "train_views", "num_gaussians",
                                                                     "train_seconds", "peak_gpu_mem_gib"]])
        return 0
    if args.smoke:
        args.scenes, args.scaling = "smoke", None
        args.eval_at = [20, 40] if args.eval_at == [7000, 30000] else args.eval_at
    variants = yaml.safe_load((REPO / "config.yaml").read_text())["stages"]["train_gs"]["variants"]
    jobs = plan(args, variants)
    if args.workers is None:
        args.workers = max(1, torch.cuda.device_count())
    args.workers = max(1, min(args.workers, len(jobs)))
    if args.worker is not None:
        worker_main(args, jobs)
        return 0
    check_devices(jobs, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return spawn_workers(args, jobs, argv)


if __name__ == "__main__":
    sys.exit(main())
