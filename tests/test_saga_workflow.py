"""SAGA end to end through Snakemake on the tiny synthetic scene with oracle priors: a point prompt on a train view
selects the right object on a test view, and the report gains SAGA's promptable and semantic rows."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from workflow_runner import REPO, planned_jobs, snakemake

from stages.lib.promptable import spin_prompts
from stages.lib.scene import load_scene
from stages.lib.semantic_metrics import mask_iou
from stages.methods.saga.evaluation import PromptEvalConfig, camera, prompt_objects
from stages.methods.saga.field import SagaField
from stages.methods.saga.prompt import PointPrompt, PromptError

# The prompted object's IoU on the target view must beat every other object's by this much (IoU points).
IOU_MARGIN = 0.1


def merged(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.fixture(scope="module")
def saga_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("saga")
    config = merged(yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text()),
                    yaml.safe_load((REPO / "tests/config/tiny_saga.yaml").read_text()))
    configfile = tmp / "tiny_saga.yaml"
    configfile.write_text(yaml.safe_dump(config))
    results = tmp / "results"
    snakemake(results, configfile=configfile)
    return results, configfile


def test_saga_report_rows_and_prompt_selects_the_object(saga_run):
    results, configfile = saga_run
    assert planned_jobs(results, configfile) == {}
    report = (results / "report/report.md").read_text()
    assert "Promptable 3D segmentation" in report
    prompts = pd.read_csv(results / "report/prompt_metrics.csv")
    assert set(prompts["method"]) == {"saga"} and {"NVOS mIoU", "SPIn-NeRF mIoU"} <= set(prompts.columns)
    semantic = pd.read_csv(results / "report/semantic_metrics.csv")
    assert "saga" in set(semantic["method"])

    scene = load_scene(results / "synthetic/tiny_room/scene.zarr")
    field = SagaField.load(results / "synthetic/tiny_room/train_features/tiny_saga.zarr")
    objects = prompt_objects(scene.gt_instance, scene.is_test, PromptEvalConfig())
    inst, ref, tgt = max(objects, key=lambda o: (scene.gt_instance[o[2]] == o[0]).sum())
    pos, neg = spin_prompts(scene.gt_instance[ref] == inst, 3, 3, np.random.default_rng(0))
    selected = field.segment(PointPrompt(ref, pos, 0.5, neg), camera(scene, ref), threshold=0.5)
    pred = field.render_selection(selected, camera(scene, tgt)).numpy()
    ious = {int(i): mask_iou(pred, scene.gt_instance[tgt] == i) for i in np.unique(scene.gt_instance[tgt])}
    best_other = max(v for i, v in ious.items() if i != inst)
    assert ious[inst] > best_other + IOU_MARGIN, (inst, ious)
    with pytest.raises(PromptError, match="outside"):
        field.segment(PointPrompt(ref, [(1e4, 0.0)], 0.5), camera(scene, ref), threshold=0.5)
    assert isinstance(selected, torch.Tensor)
