"""Known-answer tests of the promptable protocols' target-view choice (``stages.lib.promptable.target_view``: NVOS
target on the nearest or the largest test view), its per-object diagnostics and the protocol summary."""

import math

import numpy as np
import pytest

from stages.lib.promptable import (
    PromptTask,
    camera_centre,
    precision_recall,
    synthetic_task,
    target_view,
    view_angle,
)
from stages.methods.saga.evaluation import PromptEvalConfig, prompt_objects, protocol_summary


def yawed(deg: float, centre: tuple[float, float, float]) -> np.ndarray:
    """World-to-camera pose of a camera at ``centre`` whose optical axis is +z turned ``deg`` about the y axis."""
    a = math.radians(deg)
    rot = np.array([[math.cos(a), 0.0, -math.sin(a)], [0.0, 1.0, 0.0], [math.sin(a), 0.0, math.cos(a)]])
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = rot, -rot @ np.asarray(centre, float)
    return w2c


# view 0: reference; 1: 30 deg off; 2: 90 deg off (object largest there); 3 / 4: parallel, 2 m / 1 m away;
# 5: a copy of 4 (ties on angle and distance, the lower index wins)
POSES = np.stack([yawed(0, (0, 0, -5)), yawed(30, (0, 0, -5)), yawed(90, (-5, 0, 0)), yawed(0, (2, 0, -5)),
                  yawed(0, (1, 0, -5)), yawed(0, (1, 0, -5))])


def test_optical_axis_angle_and_centre_known_answers():
    assert view_angle(POSES[0], POSES[1]) == pytest.approx(30.0)
    assert view_angle(POSES[0], POSES[2]) == pytest.approx(90.0)
    assert view_angle(POSES[0], POSES[0]) == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(camera_centre(POSES[3]), [2, 0, -5]) and np.allclose(camera_centre(POSES[2]), [-5, 0, 0])


def test_target_view_nearest_and_largest_on_hand_made_cameras():
    areas = np.array([50, 40, 90, 30, 30, 30])
    assert target_view("largest", 0, np.array([1, 2, 3, 4, 5]), areas, POSES) == 2
    assert target_view("nearest", 0, np.array([1, 2, 3, 4, 5]), areas, POSES) == 4  # angle 0, 1 m beats 2 m
    assert target_view("nearest", 0, np.array([5, 4]), areas, POSES) == 4  # full tie: lower view index
    assert target_view("nearest", 0, np.array([1, 2]), areas, POSES) == 1  # 30 deg beats 90 deg
    with pytest.raises(ValueError, match="target rule"):
        target_view("farthest", 0, np.array([1]), areas, POSES)


def test_prompt_objects_keep_both_target_views():
    gt = np.zeros((6, 4, 4), np.int32)
    gt[0, :3, :3] = 7  # reference (train) view: 9 pixels
    gt[1, :2, :2] = 7  # test views below: 4, 16, 1 (below min_area), 4 pixels
    gt[2] = 7
    gt[3, 0, 0] = 7
    gt[4, :2, :2] = 7
    is_test = np.array([False, True, True, True, True, False])
    cfg = PromptEvalConfig(min_area=2, min_instance=6)
    (obj,) = prompt_objects(gt, is_test, POSES, cfg)
    assert obj.instance == 7 and obj.reference_view == 0 and obj.targets == {"nearest": 4, "largest": 2}
    assert prompt_objects(gt, is_test, POSES, PromptEvalConfig(min_area=20, min_instance=6)) == []


def test_task_variants_and_summary_headline():
    mask = np.zeros((9, 9), bool)
    mask[2:7, 2:7] = True
    nvos = synthetic_task("nvos", 7, 0, mask, [(4, mask), (2, mask)], ["nearest", "largest"])
    spin = synthetic_task("spin", 7, 0, mask, [(2, mask)], ["largest"])
    dataset = PromptTask("nvos", 0, 0, mask, ~mask, mask, [(3, mask)])
    assert [v for _, _, v in nvos.labelled_targets()] == ["nvos_nearest", "nvos_largest"]
    assert [v for _, _, v in spin.labelled_targets()] == ["spin"]
    assert [v for _, _, v in dataset.labelled_targets()] == ["nvos"]
    with pytest.raises(ValueError, match="one rule"):
        synthetic_task("nvos", 7, 0, mask, [(4, mask)], ["nearest", "largest"])
    rows = [{"protocol": "nvos_nearest", "iou": 0.9, "accuracy": 0.99}, {"protocol": "nvos_largest", "iou": 0.5,
            "accuracy": 0.9}, {"protocol": "spin", "iou": 0.7, "accuracy": 0.95}]
    near, large = protocol_summary(rows, "nearest"), protocol_summary(rows, "largest")
    assert near["nvos"]["mIoU"] == 0.9 and large["nvos"]["mIoU"] == 0.5 and near["nvos_largest"]["mIoU"] == 0.5
    assert list(near) == ["nvos", "nvos_largest", "nvos_nearest", "spin"]
    assert list(protocol_summary([{"protocol": "nvos", "iou": 0.3, "accuracy": 0.8}])) == ["nvos"]  # dataset task
    with pytest.raises(ValueError, match="nvos_target"):
        PromptEvalConfig(nvos_target="farthest")


def test_precision_recall_known_answer():
    pred, gt = np.array([1, 1, 1, 0], bool), np.array([1, 0, 0, 1], bool)
    assert precision_recall(pred, gt) == (pytest.approx(1 / 3), 0.5)
    assert precision_recall(np.zeros(3, bool), np.zeros(3, bool)) == (0.0, 0.0)


def test_bench_keeps_per_object_nvos_rows(tmp_path):
    from bench.saga import OBJECT_COLUMNS, nvos_object_rows

    table = tmp_path / "prompt.csv"
    table.write_text("dataset,scene,protocol,object,mIoU,mAcc,objects,category,reference_view,target_view,view_angle,"
                     "precision,recall\n"
                     "synthetic,room,nvos,mean,50.0,90.0,1,,,,,,\n"
                     "synthetic,room,nvos_nearest,7,80.0,99.0,1,chair,3,8,4.6,90.0,88.0\n"
                     "synthetic,room,nvos_largest,7,20.0,95.0,1,chair,3,16,120.0,50.0,25.0\n"
                     "synthetic,room,spin,7,70.0,98.0,1,chair,3,16,120.0,80.0,85.0\n")
    rows = nvos_object_rows(table, {"level": "clean"})
    assert [r["target_rule"] for r in rows] == ["nearest", "largest"] and set(OBJECT_COLUMNS) < set(rows[0])
    assert rows[1]["target_view"] == 16 and rows[1]["iou"] == 0.2 and rows[1]["recall"] == 0.25
    assert rows[0]["level"] == "clean" and rows[0]["category"] == "chair" and rows[0]["view_angle"] == 4.6
