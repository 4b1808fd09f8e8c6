"""The DAG on a ScanNet-layout scan: a small synthetic room written as a ScanNet scan (colour, 16-bit depth, poses,
label-filt, instance-filt, labels mesh, aggregation + segs), ingested by the scannet reader, then 3DGS and
OpenInsGaussian with oracle priors (tests/config/tiny_scannet.yaml) to the report, which shows the 3D (ScanNet
protocol, the mesh's points) and 2D (LERF protocol, label-filt on the test views) numbers.

Marked slow: its eleven jobs each start Python with torch (about 3 s of CPU apiece), so even at 40 RGB and 25 feature
iterations on a 32x24, 8-view scan it needs about 2 CPU-minutes, more than the default run allows."""

import math

import pandas as pd
import pytest
import yaml
from workflow_runner import REPO, snakemake

from stages.lib.readers.scannet_layout import write_scannet_scan
from stages.lib.store import read_store
from stages.lib.synthetic import SyntheticConfig, make_scene

SCAN = "scene0000_00"


@pytest.fixture(scope="module")
def scannet_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scannet")
    room = make_scene(SyntheticConfig(seed=2, num_objects=8, num_views=8, width=32, height=24, test_every=4,
                                      num_points=1000))
    scan = write_scannet_scan(room, tmp / "scans", SCAN)
    config = yaml.safe_load((REPO / "tests/config/tiny_scannet.yaml").read_text())
    config["scenes"][0]["path"] = str(scan)
    configfile = tmp / "tiny_scannet.yaml"
    configfile.write_text(yaml.safe_dump(config))
    results = tmp / "results"
    snakemake(results, configfile=configfile)
    return results, room


@pytest.mark.slow
def test_scannet_scan_runs_to_the_report(scannet_run):
    results, room = scannet_run
    scene = read_store("scene", results / f"scannet/{SCAN}/scene.zarr")
    assert scene.attrs["reader"] == "scannet" and scene.sizes["V"] == 8
    for name in ("depth", "gt_semantic", "gt_instance", "points_semantic", "points_instance"):
        assert name in scene, name
    assert (scene.load("gt_instance") == room.gt_instance).all()
    assert (scene.load("points_instance") == room.points_instance).all()
    report = (results / "report/report.md").read_text()
    assert SCAN in report and "ScanNet protocol" in report and "LERF protocol" in report
    render = pd.read_csv(results / "report/render_metrics.csv")
    assert (render["scene"] == SCAN).any()
    semantic = pd.read_csv(results / "report/semantic_metrics.csv")
    semantic = semantic[semantic["scene"] == SCAN]
    three_d = semantic[(semantic["protocol"] == "scannet_3d") & (semantic["subset"] == "19 classes")]
    two_d = semantic[semantic["protocol"] == "lerf_2d"]
    assert len(three_d) == 1 and three_d.iloc[0]["method"] == "openins" and len(two_d) > 0
    assert 0.0 < three_d.iloc[0]["mIoU"] <= 100.0 and math.isfinite(two_d["mIoU"].mean())
