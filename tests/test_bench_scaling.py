"""The bench's scaling run: scenes derived by number of views, the growth exponent fit, the "faster than linear"
sentence, the report's scaling files, and the plan of the tiny bench with scaling on (shared stages once per scene)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_runner import REPO, merged, planned_jobs, snakemake

from stages.bench_report import write_bench_report
from stages.lib.bench_scaling import (
    exponent_column,
    faster_than_linear,
    growth_exponent,
    growth_exponents,
    scaling_costs,
    scaling_level,
    scaling_scenes,
)
from stages.lib.store import write_store

PNG = b"\x89PNG\r\n\x1a\n"


def test_growth_exponent_is_the_slope_of_log_cost_against_log_size():
    n = np.array([50.0, 150.0, 300.0])
    assert growth_exponent(n, 3.0 * n**1.5) == pytest.approx(1.5)
    assert growth_exponent(n, 0.2 * n) == pytest.approx(1.0)
    assert growth_exponent(n, np.full(3, 7.0)) == pytest.approx(0.0)
    # least squares over noisy points: log c = [0, 1, 3] at log n = [0, 1, 2] -> slope 1.5
    assert growth_exponent(np.exp([0.0, 1.0, 2.0]), np.exp([0.0, 1.0, 3.0])) == pytest.approx(1.5)
    # non-positive costs (GPU memory on CPU) and a size that never changes give no exponent
    assert np.isnan(growth_exponent(n, np.zeros(3)))
    assert np.isnan(growth_exponent(np.full(3, 4000.0), n))
    assert growth_exponent(n, np.array([0.0, 2.0, 4.0])) == pytest.approx(1.0)  # the two positive points


def exponents_table(wall: dict[str, float]) -> pd.DataFrame:
    column = exponent_column("Wall time (s)", "Views")
    return pd.DataFrame([{"Method": m, "Stage": s, column: b} for (m, s), b in
                         ((tuple(k.split("/")), v) for k, v in wall.items())])


def test_faster_than_linear_names_every_stage_above_one_or_says_none_does():
    column = exponent_column("Wall time (s)", "Views")
    assert column == "Wall time vs views"
    table = exponents_table({"a/train_gs": 1.52, "a/codebook": 1.0, "b/train_gs": 1.52, "b/associate": 0.4,
                             "b/evaluate_semantic": float("nan")})
    assert faster_than_linear(table, column, "wall time", "views") == (
        "Stages whose wall time grows faster than linearly in the views (exponent above 1): a train_gs (1.52), "
        "b train_gs (1.52).")
    # an exactly linear fit a rounding error above 1 is linear
    linear = exponents_table({"a/train_gs": 1.0 + 1e-12, "a/masks": 0.3, "a/codebook": 1.004})
    assert faster_than_linear(linear, column, "wall time", "views") == (
        "No stage's wall time grows faster than linearly in the views (every exponent at most 1.00).")


def bench_config(views, **scaling):
    return {"scenes": [{"dataset": "d", "scene": "room", "reader": "synthetic",
                        "options": {"num_views": 150, "width": 512, "height": 512},
                        "overrides": {"ingest": {"num_views": 150}}},
                       {"dataset": "d", "scene": "other", "reader": "colmap", "path": "x"}],
            "bench": {"levels": ["clean", "strong"], "scaling": {"views": views, **scaling}}}


def test_scaling_scenes_differ_from_the_bench_scene_only_in_views_and_reuse_it_at_its_own_size():
    config = bench_config([300, 50, 150])
    scenes = scaling_scenes(config)
    assert [(s.dataset, s.scene, s.views) for s in scenes] == [("d", "room_v50", 50), ("d", "room", 150),
                                                              ("d", "room_v300", 300)]
    assert scenes[0].entry["options"] == {"num_views": 50, "width": 512, "height": 512}
    assert scenes[0].entry["overrides"] == {"ingest": {}}
    assert scenes[1].entry is config["scenes"][0]
    assert config["scenes"][0]["options"]["num_views"] == 150  # the table's entry is left as it was
    assert scaling_level(config) == "clean" and scaling_level(bench_config([8, 16], level="strong")) == "strong"
    assert scaling_scenes({"scenes": config["scenes"], "bench": {"levels": ["clean"]}}) == []
    # snakemake --config 'bench={scaling: {views: [16, 8]}}' passes digit strings
    assert [s.views for s in scaling_scenes(bench_config(["16", "8"]))] == [8, 16]
    with pytest.raises(ValueError, match="only the synthetic reader"):
        scaling_scenes(bench_config([8, 16], scene="d/other"))
    with pytest.raises(ValueError, match="not one of bench.levels"):
        scaling_level(bench_config([8, 16], level="severe"))
    with pytest.raises(ValueError, match="not in the scenes table"):
        scaling_scenes(bench_config([8, 16], scene="d/none"))


def bench_file(path, seconds, rss):
    path.write_text(f"s\th:m:s\tmax_rss\tmax_vms\n{seconds}\t0:00:01\t{rss}\tNA\n")
    return str(path)


def gaussians_store(path, n):
    """A train_gs store of ``n`` Gaussians."""
    with write_store("gaussians", path, "train_gs", {}) as w:
        for name, shape in (("means", (n, 3)), ("quats", (n, 4)), ("scales", (n, 3)), ("opacities", (n,)),
                            ("sh0", (n, 1, 3)), ("shN", (n, 0, 3))):
            w.write(name, np.zeros(shape, np.float32))
        w.attrs.update(sh_degree=0, background=[0.0, 0.0, 0.0], iterations=1)
    return str(path)


def scaling_entries(tmp_path):
    """Methods a and b at n = 50 / 150 / 300 views sharing train_gs per scene: its wall time 0.01 n^1.5 s, 20 n
    Gaussians, peak GPU memory 2 n MB; a's codebook takes 0.1 n s, b's 4 s, neither logged a GPU value."""
    entries = []
    for views in (50, 150, 300):
        scene = f"room_v{views}"
        gs = bench_file(tmp_path / f"gs{views}.tsv", 0.01 * views**1.5, 500.0 + views)
        gs_log = tmp_path / f"gs{views}.log"
        gs_log.write_text("stage cost: " + json.dumps({"stage": "train_gs", "wall_s": 1.0,
                                                       "peak_rss_mb": 500.0 + views, "peak_gpu_mb": 2.0 * views}))
        store = gaussians_store(tmp_path / f"gs{views}.zarr", 20 * views)
        for method, codebook in (("a", 0.1 * views), ("b", 4.0)):
            entries.append({
                "method": method, "level": "clean", "dataset": "d", "scene": scene, "views": views,
                "gaussians": store,
                "benchmarks": {"train_gs": ["gs", gs],
                               "codebook": [method, bench_file(tmp_path / f"{method}{views}.tsv", codebook, 300.0)]},
                "logs": {"train_gs": str(gs_log), "codebook": str(tmp_path / "missing.log")}})
    return entries


def test_scaling_report_writes_costs_per_size_exponents_and_the_plot(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    write_bench_report({"levels": ["clean"], "scenes": {}, "entries": [], "scaling": scaling_entries(tmp_path)}, out)

    costs = pd.read_csv(out / "scaling/scaling.csv")
    assert list(costs.columns) == ["Method", "Stage", "Views", "Gaussians", "Wall time (s)", "Peak RSS (MB)",
                                   "Peak GPU memory (MB)"]
    assert costs[["Method", "Stage", "Views", "Gaussians"]].values.tolist() == [
        ["a", "train_gs", 50, 1000], ["a", "train_gs", 150, 3000], ["a", "train_gs", 300, 6000],
        ["a", "codebook", 50, 1000], ["a", "codebook", 150, 3000], ["a", "codebook", 300, 6000],
        ["b", "train_gs", 50, 1000], ["b", "train_gs", 150, 3000], ["b", "train_gs", 300, 6000],
        ["b", "codebook", 50, 1000], ["b", "codebook", 150, 3000], ["b", "codebook", 300, 6000]]
    assert costs["Wall time (s)"].tolist()[:3] == pytest.approx([0.01 * n**1.5 for n in (50, 150, 300)])
    assert costs["Peak GPU memory (MB)"].tolist()[:3] == [100.0, 300.0, 600.0]

    exponents = pd.read_csv(out / "scaling/exponents.csv").set_index(["Method", "Stage"])
    assert list(exponents.columns) == [
        "Wall time vs views", "Peak RSS vs views", "Peak GPU memory vs views",
        "Wall time vs gaussians", "Peak RSS vs gaussians", "Peak GPU memory vs gaussians"]
    assert exponents.loc[("a", "train_gs"), "Wall time vs views"] == pytest.approx(1.5)
    assert exponents.loc[("a", "train_gs"), "Wall time vs gaussians"] == pytest.approx(1.5)
    assert exponents.loc[("a", "train_gs"), "Peak GPU memory vs views"] == pytest.approx(1.0)
    assert exponents.loc[("a", "codebook"), "Wall time vs views"] == pytest.approx(1.0)
    assert exponents.loc[("b", "codebook"), "Wall time vs views"] == pytest.approx(0.0)
    assert np.isnan(exponents.loc[("b", "codebook"), "Peak GPU memory vs views"])  # no record: no GPU value

    assert (out / "scaling/scaling.png").read_bytes()[:8] == PNG
    md = (out / "bench.md").read_text()
    assert "## Scaling: cost against scene size" in md and "50, 150, 300 views" in md
    assert ("- Stages whose wall time grows faster than linearly in the views (exponent above 1): a train_gs (1.50), "
            "b train_gs (1.50).") in md
    # peak GPU memory 2 n MB is linear (its fit lands within rounding of 1), peak RSS 500 + n MB grows slower
    assert "- No stage's peak GPU memory grows faster than linearly in the views" in md
    assert "- No stage's peak RSS grows faster than linearly in the views" in md
    assert "| a | train_gs | 1.50 |" in md and "nan" not in md.lower()


def test_report_without_scaling_run_leaves_the_scaling_folder_empty(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    write_bench_report({"levels": ["clean"], "scenes": {}, "entries": []}, out)
    assert list((out / "scaling").iterdir()) == [] and "Scaling" not in (out / "bench.md").read_text()


def test_scaling_costs_take_the_gaussians_of_each_methods_own_store():
    jobs = pd.DataFrame([{"method": m, "dataset": "d", "scene": "s", "stage": "train_gs", "wall_s": 1.0,
                          "peak_rss_mb": 1.0, "peak_gpu_mb": 0.0} for m in ("a", "sas")])
    sizes = pd.DataFrame([{"method": "a", "dataset": "d", "scene": "s", "views": 8, "gaussians": 1500.0},
                          {"method": "sas", "dataset": "d", "scene": "s", "views": 8, "gaussians": float("nan")}])
    table = scaling_costs(jobs, sizes, ["train_gs"])
    assert table["Gaussians"].tolist()[0] == 1500 and pd.isna(table["Gaussians"].tolist()[1])
    assert growth_exponents(table).shape == (2, 8)


TINY = yaml.safe_load((REPO / "tests/config/tiny_bench.yaml").read_text())
# the tiny bench (openins, opengaussian at clean and strong on a 10-view scene) with a scaling run at 6 / 10 / 14 views
SCALING = merged(TINY, {"bench": {"scaling": {"views": [6, 10, 14]}}})


def test_bench_plan_with_scaling_adds_two_scenes_with_each_shared_stage_once(tmp_path):
    config = tmp_path / "bench_scaling.yaml"
    config.write_text(yaml.safe_dump(SCALING))
    jobs = planned_jobs(tmp_path / "results", config, "bench")
    # the tiny bench's own jobs (tests/test_bench_workflow.py) plus, per derived scene (6 and 14 views; the 10-view
    # size is the bench scene itself): ingest, train_gs, masks, the feature field, codebook and pseudo-GT once,
    # features, association and evaluation per method, at the clean level only
    assert jobs == {"ingest": 3, "train_gs": 3, "masks": 4, "features": 8, "train_features": 4, "codebook": 4,
                    "pseudo_gt": 4, "associate": 8, "evaluate_semantic": 8, "bench_manifest": 1, "bench": 1,
                    "train_gs_scaling": 1}


def test_bench_manifest_with_scaling_names_every_method_at_three_sizes(tmp_path):
    config = tmp_path / "bench_scaling.yaml"
    config.write_text(yaml.safe_dump(SCALING))
    results = tmp_path / "results"
    snakemake(results, str(results / "report/bench/manifest.json"), configfile=config)
    manifest = json.loads((results / "report/bench/manifest.json").read_text())
    rows = {(e["scene"], e["views"], e["method"], e["level"]) for e in manifest["scaling"]}
    assert rows == {(s, v, m, "clean") for s, v in (("bench_tiny_v6", 6), ("bench_tiny", 10), ("bench_tiny_v14", 14))
                    for m in ("openins", "opengaussian")}
    assert {e["gaussians"] for e in manifest["scaling"]} == {
        f"{results}/synthetic/{s}/train_gs/bench_tiny.zarr" for s in ("bench_tiny_v6", "bench_tiny", "bench_tiny_v14")}
    assert len(manifest["entries"]) == 4  # the bench's own rows are unchanged


@pytest.mark.slow  # 36 jobs: 10.6 min on a loaded 2-core machine
@pytest.mark.timeout(2400)
def test_bench_with_scaling_writes_costs_at_three_sizes(tmp_path):
    config = tmp_path / "bench_scaling.yaml"
    config.write_text(yaml.safe_dump(merged(SCALING, {"bench": {"levels": ["clean"]}})))
    results = tmp_path / "results"
    snakemake(results, "bench", configfile=config, timeout=2400)
    out = results / "report/bench"

    costs = pd.read_csv(out / "scaling/scaling.csv")
    assert sorted(set(costs["Views"])) == [6, 10, 14] and set(costs["Method"]) == {"openins", "opengaussian"}
    assert len(costs) == 2 * 9 * 3 and (costs["Wall time (s)"] > 0).all() and (costs["Peak RSS (MB)"] > 0).all()
    assert (costs["Gaussians"] > 0).all()  # read from each size's train_gs store
    # the 10-view size is the bench scene itself: its RGB Gaussians are the job the bench's own rows used
    shared = pd.read_csv(out / "cost.csv").set_index(["Method", "Stage"]).loc[("openins", "train_gs"), "Wall time (s)"]
    at_10 = costs[(costs["Views"] == 10) & (costs["Stage"] == "train_gs")]["Wall time (s)"]
    assert at_10.tolist() == pytest.approx([shared, shared])

    exponents = pd.read_csv(out / "scaling/exponents.csv")
    assert len(exponents) == 2 * 9 and exponents["Wall time vs views"].notna().all()
    assert faster_than_linear(exponents, "Wall time vs views", "wall time", "views") in (out / "bench.md").read_text()
    assert (out / "scaling/scaling.png").read_bytes()[:8] == PNG
    assert planned_jobs(results, config, "bench") == {}, "a finished bench must have nothing left to do"
