"""CCL-LGS end to end through Snakemake on the tiny scene with oracle priors (tests/config/tiny_ccl.yaml, in the shared
DAG run of tests/conftest.py ``methods_run``), and a rerun after a change of the contrastive margin."""

import pandas as pd
import pytest
import yaml
from chance_levels import whole_image_iou
from workflow_runner import methods_config, planned_jobs

from stages.lib.store import read_store

SCENE = "synthetic/tiny_room"
# Measured on the tiny scene (CPU, clean oracle priors): LERF 2D mIoU 75.9 % (selecting the whole image scores 12.5 %),
# localization 68.8 %, 3D-OVS mIoU 77.8 % over 8 classes (a constant label scores at most 1/8), ScanNet 3D mIoU 70.1 %.
MARGIN_2D = 0.3  # mIoU points above those chance levels
MIOU_3D_MIN = 50.0
LOC_MIN = 40.0
# The first test to use the shared methods DAG run (tests/conftest.py ``methods_run``) also runs it; the limit leaves
# room for a busy machine.
pytestmark = pytest.mark.timeout(2400)


def test_ccl_rows_in_the_report_clearly_above_chance(methods_run):
    results, configfile = methods_run
    report = (results / "report/report.md").read_text()
    assert "3D-OVS protocol" in report and "CCL-LGS Table 1 layout" in report and "ccl" in report
    semantic = pd.read_csv(results / "report/semantic_metrics.csv")
    ccl = semantic[semantic["method"] == "ccl"]
    lerf = ccl[(ccl["protocol"] == "lerf_2d") & (ccl["subset"] == "mean")].iloc[0]
    chance = whole_image_iou(results / f"{SCENE}/scene.zarr") * 100
    assert lerf["mIoU"] > chance + MARGIN_2D * 100, (lerf, chance)
    assert lerf["loc. acc"] > LOC_MIN, lerf
    ovs = ccl[ccl["protocol"] == "3dovs_2d"].iloc[0]
    classes = int(ovs["subset"].split()[0])
    assert ovs["mIoU"] > 100.0 / classes + MARGIN_2D * 100, ovs
    scannet = ccl[(ccl["protocol"] == "scannet_3d") & (ccl["subset"] == "19 classes")].iloc[0]
    assert scannet["mIoU"] > MIOU_3D_MIN, scannet
    assert read_store("prototypes", results / f"{SCENE}/codebook/ccl_tiny.zarr").attrs["margin"] == 0.7  # default m
    assert planned_jobs(results, configfile) == {}


def test_margin_change_reruns_the_codebook_and_its_dependants(methods_run, tmp_path):
    results, _ = methods_run
    changed = tmp_path / "margin.yaml"
    changed.write_text(yaml.safe_dump(methods_config(
        {"stages": {"codebook": {"variants": {"ccl_tiny": {"margin": 0.5}}}}})))
    assert planned_jobs(results, changed) == {"codebook": 1, "train_features": 1, "evaluate_semantic": 1,
                                              "report": 1, "all": 1}
