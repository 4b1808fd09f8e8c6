"""SAGA end to end through Snakemake on the tiny synthetic scene with oracle priors: a point prompt on a train view
selects the right object on a test view, and the report gains SAGA's promptable and semantic rows."""

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_runner import planned_jobs, seed_tiny_gaussians, snakemake, tiny_config

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


@pytest.fixture(scope="module")
def saga_run(tmp_path_factory, tiny_gaussians):
    tmp = tmp_path_factory.mktemp("saga")
    configfile = tmp / "tiny_saga.yaml"
    configfile.write_text(yaml.safe_dump(tiny_config("tiny_saga.yaml")))
    results = tmp / "results"
    seed_tiny_gaussians(results, tiny_gaussians)
    snakemake(results, configfile=configfile, timeout=1800)
    return results, configfile


def right_object_selections(scene_dir) -> int:
    """Objects whose point prompt (SPIn points, seed 0, the reference mask's scale) on the reference view renders,
    on the target view, a mask matching the prompted object better than any other GT instance by IOU_MARGIN."""
    scene = load_scene(scene_dir / "scene.zarr")
    field = SagaField.load(scene_dir / "train_features/tiny_saga.zarr")
    knots = read_store("mask_scales", scene_dir / "mask_scales/tiny_saga.zarr").load("scale_knots")
    count = 0
    for inst, ref, tgt in prompt_objects(scene.gt_instance, scene.is_test, PromptEvalConfig()):
        mask = scene.gt_instance[ref] == inst
        pos, neg = spin_prompts(mask, 3, 3, np.random.default_rng(0))
        scale = reference_scale(field, camera(scene, ref), mask, knots)
        selected = field.segment(PointPrompt(ref, pos, scale, neg), camera(scene, ref), threshold=0.5)
        pred = field.render_selection(selected, camera(scene, tgt)).numpy()
        ious = {int(i): mask_iou(pred, scene.gt_instance[tgt] == i) for i in np.unique(scene.gt_instance[tgt])}
        count += ious[inst] > max(v for i, v in ious.items() if i != inst) + IOU_MARGIN
    return count


@pytest.mark.timeout(1800)
def test_saga_report_rows_and_prompt_selects_the_object(saga_run):
    results, configfile = saga_run
    assert planned_jobs(results, configfile) == {}
    report = (results / "report/report.md").read_text()
    assert "Promptable 3D segmentation" in report
    prompts = pd.read_csv(results / "report/prompt_metrics.csv")
    assert set(prompts["method"]) == {"saga"} and {"NVOS mIoU", "SPIn-NeRF mIoU"} <= set(prompts.columns)
    semantic = pd.read_csv(results / "report/semantic_metrics.csv")
    assert "saga" in set(semantic["method"])

    nvos = prompts[prompts["dataset"] != "mean"].iloc[0]
    assert nvos["NVOS mIoU"] > NVOS_MIOU_MIN, nvos
    assert right_object_selections(results / "synthetic/tiny_room") >= MIN_SELECTED_OBJECTS
    scene = load_scene(results / "synthetic/tiny_room/scene.zarr")
    field = SagaField.load(results / "synthetic/tiny_room/train_features/tiny_saga.zarr")
    ref = int(np.nonzero(~scene.is_test)[0][0])
    with pytest.raises(PromptError, match="outside"):
        field.segment(PointPrompt(ref, [(1e4, 0.0)], 0.5), camera(scene, ref), threshold=0.5)
