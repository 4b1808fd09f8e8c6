"""The bench target on the smallest scene: OpenInsGaussian and OpenGaussian at the clean and strong oracle levels
(tests/config/tiny_bench.yaml), shared stages planned once, and the comparison report with its tables and pictures."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from workflow_runner import REPO, planned_jobs, snakemake

from stages.lib.store import read_store

CONFIG = REPO / "tests/config/tiny_bench.yaml"
SCENE = "synthetic/bench_tiny"
# ingest and the RGB Gaussians once; masks once per level (both methods read whole_oracle); features per method and
# level; the feature field, codebook and pseudo-GT refinement once per level (shared); association and evaluation
# per method and level.
SHARED_ONCE = {"ingest": 1, "train_gs": 1, "masks": 2, "features": 4, "train_features": 2, "codebook": 2,
               "pseudo_gt": 2, "associate": 4, "evaluate_semantic": 4, "bench_manifest": 1, "bench": 1, "train_gs_scaling": 1}
PNG = b"\x89PNG\r\n\x1a\n"


def test_bench_plans_every_shared_stage_once(tmp_path):
    assert planned_jobs(tmp_path / "results", CONFIG, "bench") == SHARED_ONCE


def test_train_gs_scaling_rule_draws_the_committed_gpu_rows(tmp_path):
    """The report's RGB-Gaussian scaling figure comes from the committed bench CSV, by its own rule."""
    results = tmp_path / "results"
    snakemake(results, str(results / "report/bench/train_gs_scaling.png"), configfile=CONFIG, timeout=600)
    assert (results / "report/bench/train_gs_scaling.png").read_bytes()[:8] == PNG
    assert not list((results / "report/bench").glob("*.partial-*")), "no partial file left beside the figure"
    assert planned_jobs(results, CONFIG, str(results / "report/bench/train_gs_scaling.png")) == {}


@pytest.mark.slow  # 24 jobs: about 15 min on a loaded 2-core machine
@pytest.mark.timeout(2400)
def test_bench_writes_the_comparison_report(tmp_path):
    results = tmp_path / "results"
    snakemake(results, "bench", configfile=CONFIG, timeout=2400)
    out = results / "report/bench"

    # the strong level's masks carry the preset of the one corruption table
    strong = yaml.safe_load((REPO / "config.yaml").read_text())["bench"]["corruption_levels"]["strong"]["masks"]
    masks = read_store("masks", results / SCENE / "masks/whole_oracle__strong.zarr")
    assert {k: masks.attrs["corruption"][k] for k in strong} == strong

    md = (out / "bench.md").read_text()
    assert "nan" not in md.lower()
    for title in ("ScanNet protocol", "LERF protocol", "Cost per method and stage", "Predicted classes",
                  "Text queries on a test view"):
        assert title in md
    scannet = pd.read_csv(out / "tables/scannet_3d.csv")
    assert sorted(zip(scannet["Method"], scannet["Level"])) == [
        ("opengaussian", "clean"), ("opengaussian", "strong"), ("openins", "clean"), ("openins", "strong")]
    assert scannet["scenes"].tolist() == [1, 1, 1, 1]
    assert set(scannet["Priors"]) == {"masks: oracle, clean; features: oracle, clean",
                                      "masks: oracle, strong; features: oracle, strong"}
    best = scannet["19 mIoU (%)"].max()
    assert f"**{best:.1f}**" in md
    assert set(pd.read_csv(out / "bench_metrics.csv")["protocol"]) == {"scannet_3d", "lerf_2d"}

    for name in ("figures/robustness_scannet_3d.png", "figures/robustness_lerf_2d.png",
                 "figures/scene_synthetic_bench_tiny.png", "figures/topdown_synthetic_bench_tiny.png",
                 "figures/queries_synthetic_bench_tiny.png", "cost.png", "train_gs_scaling.png"):
        assert (out / name).read_bytes()[:8] == PNG, name

    cost = pd.read_csv(out / "cost.csv")
    sharing = cost.groupby("Stage")["Rows sharing the job"].max().to_dict()
    assert sharing["train_gs"] == 4 and sharing["masks"] == 2 and sharing["features"] == 1
    assert (cost["Wall time (s)"] > 0).all()
    # every stage logged its own peak memory (getrusage on CPU; no CUDA touched: 0 MB GPU)
    assert (cost["Peak RSS (MB)"] > 0).all() and (cost["Peak GPU memory (MB)"] == 0.0).all()

    # the scene figure's predicted maps come from the 19-class labels the evaluation kept per scan point
    scene = read_store("scene", results / SCENE / "scene.zarr")
    evaluation = read_store("semantic_metrics", results / SCENE / "evaluate_semantic/bench_tiny.zarr")
    labels = evaluation.load("points_pred_3d")
    assert labels.shape == (len(scene.load("points_xyz")),) and labels.min() >= -1 and labels.max() < 19

    assert planned_jobs(results, CONFIG, "bench") == {}, "a finished bench must have nothing left to do"
