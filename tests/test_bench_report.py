"""Bench report pieces: protocol rows, tables for reading, cost from benchmark files and the stages' memory records,
label splatting."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from stages.lib.bench_cost import job_costs, sharing_summary, stage_cost_table
from stages.lib.bench_figures import cost_plot, splat_labels
from stages.lib.bench_tables import long_metrics, markdown, protocol_table, semantic_rows
from stages.lib.stage_cost import logged_cost, peak_rss_mb, read_stage_cost


def semantic_csv(path, miou19, lerf):
    pd.DataFrame([
        {"dataset": "d", "scene": "s", "protocol": "scannet_3d", "subset": "19 classes", "query": "", "mIoU": miou19,
         "mAcc": 50.0},
        {"dataset": "d", "scene": "s", "protocol": "lerf_2d", "subset": "query", "query": "chair", "mIoU": 1.0},
        {"dataset": "d", "scene": "s", "protocol": "lerf_2d", "subset": "mean", "query": "", "mIoU": lerf,
         "mAcc@0.25": 100.0, "mAcc@0.5": 0.0},
    ]).to_csv(path, index=False)
    return str(path)


def entry(method, level, scene, table):
    return {"method": method, "level": level, "priors": f"masks: oracle, {level}", "dataset": "d", "scene": scene,
            "tables": {"evaluate_semantic": table}}


def test_semantic_rows_take_the_subset_rows_and_the_lerf_mean_only():
    rows = semantic_rows(pd.DataFrame([
        {"protocol": "scannet_3d", "subset": "15 classes", "mIoU": 40.0, "mAcc": 60.0},
        {"protocol": "lerf_2d", "subset": "query", "query": "x", "mIoU": 99.0, "mAcc@0.25": 1.0, "mAcc@0.5": 1.0},
        {"protocol": "lerf_2d", "subset": "mean", "query": "", "mIoU": 30.0, "mAcc@0.25": 50.0, "mAcc@0.5": 25.0},
    ]))
    assert rows.values.tolist() == [["scannet_3d", "15 mIoU (%)", 40.0], ["scannet_3d", "15 mAcc (%)", 60.0],
                                    ["lerf_2d", "mIoU (%)", 30.0], ["lerf_2d", "mAcc@0.25 (%)", 50.0],
                                    ["lerf_2d", "mAcc@0.5 (%)", 25.0]]


def test_protocol_table_means_over_scenes_in_level_order(tmp_path):
    entries = [entry("m", "strong", "s1", semantic_csv(tmp_path / "1.csv", 20.0, 10.0)),
               entry("m", "strong", "s2", semantic_csv(tmp_path / "2.csv", 30.0, 20.0)),
               entry("m", "clean", "s1", semantic_csv(tmp_path / "3.csv", 80.0, 60.0))]
    table = protocol_table(long_metrics(entries), "scannet_3d", ["clean", "strong"])
    assert table["Level"].tolist() == ["clean", "strong"]
    assert table["19 mIoU (%)"].tolist() == [80.0, 25.0]
    assert table["scenes"].tolist() == [1, 2]
    assert table["Priors"].tolist() == ["masks: oracle, clean", "masks: oracle, strong"]


def test_markdown_integers_as_integers_best_in_bold_and_no_nan():
    table = pd.DataFrame({"Method": ["a", "b", "c"], "mIoU (%)": [10.0, 42.25, np.nan], "scenes": [1, 2, 3]})
    text = markdown(table)
    lines = text.splitlines()
    assert lines[0] == "| Method | mIoU (%) | scenes |"
    assert lines[2] == "| a | 10.0 | 1 |"
    assert lines[3] == "| b | **42.2** | 2 |" or lines[3] == "| b | **42.3** | 2 |"
    assert lines[4] == "| c | – | 3 |"
    assert "nan" not in text


def test_job_costs_count_rows_sharing_a_job_and_read_the_stages_memory_records(tmp_path):
    def bench_file(name, seconds, rss):
        path = tmp_path / name
        path.write_text(f"s\th:m:s\tmax_rss\tmax_vms\n{seconds}\t0:00:01\t{rss}\tNA\n")
        return str(path)

    def stage_log(name, rss, gpu):
        path = tmp_path / name
        record = json.dumps({"stage": "x", "wall_s": 1.0, "peak_rss_mb": rss, "peak_gpu_mb": gpu})
        path.write_text(f"2026 INFO stages: loading\n2026 INFO stages: stage cost: {record}\n")
        return str(path)

    shared = bench_file("gs.tsv", 10.0, 500.0)
    own_a, own_b = bench_file("a.tsv", 2.0, 100.0), bench_file("b.tsv", 4.0, 300.0)
    # train_gs's and a's codebook logs hold the stage's record; b's log is missing (the benchmark's RSS, no GPU value)
    logs = {"gs": stage_log("gs.log", 800.0, 2048.5), "ca": stage_log("ca.log", 150.0, 0.0)}
    entries = [{"method": "a", "level": "clean", "dataset": "d", "scene": "s",
                "benchmarks": {"train_gs": ["gs", shared], "codebook": ["ca", own_a]},
                "logs": {"train_gs": logs["gs"], "codebook": logs["ca"]}},
               {"method": "b", "level": "clean", "dataset": "d", "scene": "s",
                "benchmarks": {"train_gs": ["gs", shared], "codebook": ["cb", own_b]},
                "logs": {"train_gs": logs["gs"], "codebook": str(tmp_path / "missing.log")}}]
    jobs = job_costs(entries)
    assert sharing_summary(jobs) == {"jobs run": 3, "jobs without sharing": 4, "wall time run (s)": 16.0,
                                     "wall time without sharing (s)": 26.0}
    table = stage_cost_table(jobs, ["train_gs", "codebook"])
    assert list(table.columns) == ["Method", "Stage", "Wall time (s)", "Peak RSS (MB)", "Peak GPU memory (MB)",
                                   "Rows sharing the job"]
    assert table.fillna(-1.0).values.tolist() == [
        ["a", "train_gs", 10.0, 800.0, 2048.5, 2], ["a", "codebook", 2.0, 150.0, 0.0, 1],
        ["b", "train_gs", 10.0, 800.0, 2048.5, 2], ["b", "codebook", 4.0, 300.0, -1.0, 1]]
    text = markdown(table, best=False)
    assert "| a | train_gs | 10.0 | 800.0 | 2048.5 | 2 |" in text and "| b | codebook | 4.0 | 300.0 | – | 1 |" in text
    cost_plot(table, tmp_path / "cost.png")
    assert (tmp_path / "cost.png").read_bytes()[:4] == b"\x89PNG"


def test_stage_cost_is_logged_with_positive_memory(tmp_path):
    log = logging.getLogger("test_stage_cost")
    path = tmp_path / "stage.log"
    handler = logging.FileHandler(path)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with logged_cost(log, "demo"):
            np.ones(4_000_000).sum()  # 32 MB touched
    finally:
        log.removeHandler(handler)
        handler.close()
    cost = read_stage_cost(str(path))
    assert cost["wall_s"] > 0 and cost["peak_rss_mb"] >= 32 and cost["peak_gpu_mb"] >= 0
    assert cost["peak_rss_mb"] == pytest.approx(peak_rss_mb(), abs=1.0)
    assert read_stage_cost(str(tmp_path / "none.log")) is None


def test_splat_labels_nearest_point_wins_and_points_behind_are_dropped():
    K = np.array([[2.0, 0, 2.0], [0, 2.0, 2.0], [0, 0, 1]])
    w2c = np.eye(4)
    # on the optical axis at depth 1 and 2 (pixel (2, 2)), behind the camera, and at depth 2 towards pixel (0, 0)
    points = np.array([[0.0, 0, 1], [0.0, 0, 2], [0.0, 0, -1], [-1.9, -1.9, 2.0]])
    labels = np.array([5, 7, 9, 3])
    out = splat_labels(points, labels, K, w2c, 4, 4, radius=1)  # 3 x 3 squares
    assert out[2, 2] == 5 and out[1, 1] == 5  # the nearer point on the axis covers the far one and the corner's
    assert out[0, 0] == 3 and out[0, 1] == 3
    assert 7 not in out and 9 not in out
    assert (out == -1).sum() == 4
    # default: 16 pixels, 3 points in front -> radius ceil(sqrt(16 / 3)) - 1 = 2, every pixel covered
    assert (splat_labels(points, labels, K, w2c, 4, 4) >= 0).all()
