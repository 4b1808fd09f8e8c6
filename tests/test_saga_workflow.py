"""SAGA end to end through Snakemake on the tiny synthetic scene with oracle priors (the shared DAG run of
tests/conftest.py ``methods_run``, tests/config/tiny_saga.yaml): a point prompt on a train view selects the right
object on a test view, the report gains SAGA's promptable and semantic rows (ScanNet 3D and 3D-OVS through the vote
labels), and a changed SAGA objective parameter reruns only its stage and the stages after it."""

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_runner import methods_config, planned_jobs

from stages.lib.promptable import spin_prompts
from stages.lib.scene import load_scene
from stages.lib.semantic_metrics import mask_iou
from stages.lib.store import read_store
from stages.methods.saga.evaluation import PromptEvalConfig, camera, prompt_objects, reference_scale
from stages.methods.saga.field import SagaField
from stages.methods.saga.prompt import PointPrompt, PromptError

# Measured on the tiny scene (150 feature iterations, CPU): NVOS-protocol mIoU 48.9 % (8 objects); with SPIn prompts
# (seed 0) at the reference mask's scale, 3 of the 8 objects are their own best-matching GT instance on the target
# view by >= 0.49 IoU (0.92 vs 0.01, 0.69 vs 0.07, 0.56 vs 0.05); the others are under-trained small objects.
# The test asks for 2 of those 3.
NVOS_MIOU_MIN = 30.0
IOU_MARGIN = 0.2
MIN_SELECTED_OBJECTS = 2
# Measured: 3D-OVS mIoU 72.2 % over 8 classes through the vote labels (chance at most 12.5 %).
OVS_MARGIN = 30.0
# The first test to use the shared methods DAG run (tests/conftest.py ``methods_run``) also runs it; the limit leaves
# room for a busy machine.
pytestmark = pytest.mark.timeout(2400)


def right_object_selections(scene_dir) -> int:
    """Objects whose point prompt (SPIn points, seed 0, the reference mask's scale) on the reference view renders,
    on the target view, a mask matching the prompted object better than any other GT instance by IOU_MARGIN."""
    scene = load_scene(scene_dir / "scene.zarr")
    field = SagaField.load(scene_dir / "train_features/tiny_saga.zarr")
    knots = read_store("mask_scales", scene_dir / "mask_scales/tiny_saga.zarr").load("scale_knots")
    count = 0
    for inst, ref, targets in prompt_objects(scene.gt_instance, scene.is_test, scene.world_to_camera,
                                             PromptEvalConfig()):
        tgt = targets["largest"]
        mask = scene.gt_instance[ref] == inst
        pos, neg = spin_prompts(mask, 3, 3, np.random.default_rng(0))
        scale = reference_scale(field, camera(scene, ref), mask, knots)
        selected = field.segment(PointPrompt(ref, pos, scale, neg), camera(scene, ref), threshold=0.5)
        pred = field.render_selection(selected, camera(scene, tgt)).numpy()
        ious = {int(i): mask_iou(pred, scene.gt_instance[tgt] == i) for i in np.unique(scene.gt_instance[tgt])}
        count += ious[inst] > max(v for i, v in ious.items() if i != inst) + IOU_MARGIN
    return count


def test_saga_report_rows_and_prompt_selects_the_object(methods_run):
    results, configfile = methods_run
    assert planned_jobs(results, configfile) == {}
    report = (results / "report/report.md").read_text()
    assert "Promptable 3D segmentation" in report
    prompts = pd.read_csv(results / "report/prompt_metrics.csv")
    assert set(prompts["method"]) == {"saga"} and {"NVOS mIoU", "SPIn-NeRF mIoU"} <= set(prompts.columns)
    semantic = pd.read_csv(results / "report/semantic_metrics.csv")
    assert "saga" in set(semantic["method"])
    ovs = semantic[(semantic["method"] == "saga") & (semantic["protocol"] == "3dovs_2d")]
    assert len(ovs) == 1 and np.isfinite(ovs[["mIoU", "mAcc"]].to_numpy()).all(), ovs
    classes = int(ovs["subset"].item().split()[0])
    assert ovs["mIoU"].item() > 100.0 / classes + OVS_MARGIN, ovs  # a constant class map scores at most 1 / classes
    assert "3D-OVS protocol" in report

    nvos = prompts[prompts["dataset"] != "mean"].iloc[0]
    assert nvos["NVOS mIoU"] > NVOS_MIOU_MIN, nvos
    assert right_object_selections(results / "synthetic/tiny_room") >= MIN_SELECTED_OBJECTS
    scene = load_scene(results / "synthetic/tiny_room/scene.zarr")
    field = SagaField.load(results / "synthetic/tiny_room/train_features/tiny_saga.zarr")
    ref = int(np.nonzero(~scene.is_test)[0][0])
    with pytest.raises(PromptError, match="outside"):
        field.segment(PointPrompt(ref, [(1e4, 0.0)], 0.5), camera(scene, ref), threshold=0.5)


def test_objective_change_reruns_the_field_and_its_dependants(methods_run, tmp_path):
    results, _ = methods_run
    changed = tmp_path / "tiny_saga_changed.yaml"  # A.1's N_p, pixels sampled per step
    changed.write_text(yaml.safe_dump(methods_config(
        {"stages": {"train_features": {"variants": {"tiny_saga": {"objective_params": {"num_pixels": 200}}}}}})))
    assert planned_jobs(results, changed) == {"train_features": 1, "codebook": 1, "associate": 1,
                                              "evaluate_semantic": 1, "evaluate_prompt": 1, "report": 1, "all": 1}
