"""Shared pieces of the method benchmarks: oracle corruption presets, recipe parameters, timed in-process stages,
the benchmark room (scene + RGB Gaussians trained once and shared by every method and corruption level)."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
import yaml

from stages import train_gs
from stages.ingest import load_source
from stages.lib.cli import run_stage
from stages.lib.store import read_store

REPO = Path(__file__).resolve().parents[1]
# Oracle corruption presets (stages.lib.oracle): masks per MaskCorruption, features per FeatureCorruption.
CORRUPTION = {
    "clean": ({}, {}),
    "moderate": ({"under_segment": 0.1, "over_segment": 0.1, "boundary_jitter": 1, "dropout": 0.1},
                 {"noise": 0.5, "confusion": 0.1}),
    "strong": ({"under_segment": 0.3, "over_segment": 0.3, "boundary_jitter": 2, "dropout": 0.25},
               {"noise": 1.0, "confusion": 0.3, "context_noise": 0.5}),
}
# The same knobs with the merges and cuts fixed per piece for the whole scene (MaskCorruption.persistent): errors that
# repeat from view to view, as a real segmenter's do.
CORRUPTION.update({f"{level}_persistent": ({**CORRUPTION[level][0], "persistent": True}, CORRUPTION[level][1])
                   for level in ("moderate", "strong")})
GPU_ROOM = {"num_views": 150, "width": 512, "height": 512, "num_points": 100000, "device": "cuda"}


def load_config() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def recipe_params(config: dict[str, Any], method: str) -> dict[str, dict[str, Any]]:
    """Each stage's parameters for a method recipe (without the ``after`` wiring, which a bench replaces)."""
    recipe = config["methods"][method]
    return {stage: {k: v for k, v in config["stages"][stage]["variants"][variant].items() if k != "after"}
            for stage, variant in recipe.items()}


def device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def base_row(method: str, scene_options: dict[str, Any]) -> dict[str, Any]:
    """Columns every bench row carries: date, device (GPU model), method, scene size."""
    return {"date": dt.date.today().isoformat(), "device": device_name(), "method": method,
            "concurrent": int(os.environ.get("BENCH_CONCURRENT", "1")),
            "views": scene_options.get("num_views"),
            "size": f"{scene_options.get('width')}x{scene_options.get('height')}"}


def timed(stage: str, main: Callable, parser: Callable, argv: list[str], rows: list[dict], base: dict) -> None:
    """Run one stage in process; record its wall time and peak GPU memory."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    run_stage(main, parser(), argv)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    rows.append({**base, "stage": stage, "seconds": time.perf_counter() - t0, "peak_gpu_mem_gib": peak})
    print(json.dumps(rows[-1]), flush=True)


def save_partial(rows: list[dict], out: Path) -> None:
    """All rows so far to ``<out>.partial.csv`` (rewritten whole), so a run stopped by a time limit keeps what it
    measured; the final append to ``out`` removes it."""
    pd.DataFrame(rows).to_csv(out.with_suffix(".partial.csv"), index=False)


def append_rows(rows: list[dict], out: Path) -> pd.DataFrame:
    """Append ``rows`` to the CSV ``out`` (header when new) under its header's columns, and drop the partial file;
    returns the table. Rows with a column the file lacks rewrite the file with the union of the columns."""
    table = pd.DataFrame(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        table.to_csv(out, index=False)
    elif set(table.columns) <= set(header := pd.read_csv(out, nrows=0).columns):
        table.reindex(columns=header).to_csv(out, mode="a", header=False, index=False)
    else:
        pd.concat([pd.read_csv(out), table]).to_csv(out, index=False)
    out.with_suffix(".partial.csv").unlink(missing_ok=True)
    return table


def bench_room(work: Path, scene_options: dict[str, Any], gs_params: dict[str, Any], rows: list[dict],
               base: dict, reuse: bool = False) -> tuple[Path, Path]:
    """The synthetic room's scene store and RGB Gaussians under ``work``; trained once, reused when ``reuse``."""
    work.mkdir(parents=True, exist_ok=True)
    scene, gaussians = work / "scene.zarr", work / "train_gs.zarr"
    if reuse and gaussians.exists():
        seconds = read_store("gaussians", gaussians).attrs["train_seconds"]
        rows.append({**base, "level": "", "stage": "train_gs", "seconds": seconds, "note": "reused"})
        return scene, gaussians
    t0 = time.perf_counter()
    load_source("synthetic", None, scene_options).write(scene, "ingest", scene_options, "synthetic", "bench_room",
                                                        "synthetic")
    rows.append({**base, "level": "", "stage": "ingest", "seconds": time.perf_counter() - t0})
    timed("train_gs", train_gs.main, train_gs.parser,
          ["--scene", str(scene), "--out", str(gaussians), "--params", json.dumps(gs_params)], rows,
          {**base, "level": ""})
    return scene, gaussians


def level_params(params: dict[str, dict[str, Any]], level: str, work: Path) -> tuple[dict[str, dict[str, Any]], Path]:
    """A recipe's stage parameters with the level's oracle corruption applied to masks and features, and the
    level's own folder under ``work`` (created)."""
    mask_c, feat_c = CORRUPTION[level]
    folder = work / level
    folder.mkdir(parents=True, exist_ok=True)
    p = {k: dict(v) for k, v in params.items()}
    p["masks"]["corruption"] = mask_c
    if "features" in p:
        p["features"]["corruption"] = feat_c
    return p, folder
