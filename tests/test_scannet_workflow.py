"""The DAG on a ScanNet-layout scan: a small synthetic room written as a ScanNet scan (colour, 16-bit depth, poses,
label-filt, instance-filt, labels mesh, aggregation + segs), ingested by the scannet reader, then 3DGS and every method
with oracle priors at tiny size (OpenInsGaussian: tests/config/tiny_scannet.yaml; CCL-LGS, SAGA, Proto-SaGa: their
tiny_*.yaml; SAS: config.yaml's demo recipe) to the report, which shows each method's 3D (ScanNet protocol, the mesh's
points) and 2D (LERF protocol, label-filt on the test views) numbers.

Marked slow: 37 jobs, each starting Python with torch (about 3 s of CPU apiece), on a 32x24, 8-view scan."""

import math

import pandas as pd
import pytest
import yaml
from chance_levels import constant_label_miou, whole_image_iou
from workflow_runner import snakemake, tiny_config

from stages.lib.readers.scannet_layout import write_scannet_scan
from stages.lib.store import read_store
from stages.lib.synthetic import SyntheticConfig, make_scene

SCAN = "scene0000_00"
pytestmark = pytest.mark.timeout(3600)  # the run (in the first test's setup) outlasts the default 900 s on a busy machine
# mIoU points above chance that each method must reach (3D, 2D): about half of what it measured on this scan (CPU,
# oracle priors; chance: one label for every point 2.7 %, selecting every pixel 12.5 %): OpenInsGaussian 42.6 / 13.7
# (40 RGB + 25 field iterations; 46.0 / 16.2 with Eq. 8's earlier reading, the raw L1 / D: on a field this far from
# trained, the L1 norm on OpenGaussian's scale rejects more masks), CCL-LGS 60.2 / 46.8, SAGA 67.8 / 34.8,
# Proto-SaGa 56.9 / 30.7, SAS 90.5 / 83.1.
MARGINS = {"openins": (20.0, 0.5), "ccl": (25.0, 15.0), "saga": (30.0, 10.0), "protosaga": (25.0, 8.0),
           "sas": (40.0, 35.0)}


@pytest.fixture(scope="module")
def scannet_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scannet")
    room = make_scene(SyntheticConfig(seed=2, num_objects=8, num_views=8, width=32, height=24, test_every=4,
                                      num_points=1000))
    scan = write_scannet_scan(room, tmp / "scans", SCAN)
    config = tiny_config("tiny_scannet.yaml", "tiny_ccl.yaml", "tiny_saga.yaml", "tiny_protosaga.yaml",
                         {"run_methods": ["3dgs", *MARGINS]})
    config["scenes"][0]["path"] = str(scan)
    configfile = tmp / "tiny_scannet.yaml"
    configfile.write_text(yaml.safe_dump(config))
    results = tmp / "results"
    snakemake(results, configfile=configfile, timeout=3600)
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
    openins = three_d[three_d["method"] == "openins"]
    assert len(openins) == 1 and (two_d["method"] == "openins").any()
    assert 0.0 < openins.iloc[0]["mIoU"] <= 100.0 and math.isfinite(two_d["mIoU"].mean())


@pytest.mark.slow
def test_every_method_reports_3d_and_2d_numbers_above_chance(scannet_run):
    results, _ = scannet_run
    scene = results / f"scannet/{SCAN}/scene.zarr"
    chance_3d, chance_2d = constant_label_miou(scene) * 100, whole_image_iou(scene) * 100
    semantic = pd.read_csv(results / "report/semantic_metrics.csv")
    semantic = semantic[semantic["scene"] == SCAN]
    three_d = semantic[(semantic["protocol"] == "scannet_3d") & (semantic["subset"] == "19 classes")]
    two_d = semantic[(semantic["protocol"] == "lerf_2d") & (semantic["subset"] == "mean")]
    three_d, two_d = three_d.set_index("method")["mIoU"], two_d.set_index("method")["mIoU"]
    assert sorted(three_d.index) == sorted(two_d.index) == sorted(MARGINS)
    report = (results / "report/report.md").read_text()
    for method in MARGINS:
        assert report.count(f"| {method} ") >= 2, method  # a row in the ScanNet table and one in the LERF table
        margin_3d, margin_2d = MARGINS[method]
        assert three_d[method] > chance_3d + margin_3d, (method, three_d[method], chance_3d)
        assert two_d[method] > chance_2d + margin_2d, (method, two_d[method], chance_2d)
