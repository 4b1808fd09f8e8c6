"""Promptable-segmentation evaluation of a SAGA field (NVOS and SPIn-NeRF protocols, ``stages.lib.promptable``).

A scene with NVOS or SPIn-NeRF annotations is scored by its dataset's protocol on its annotated views. Our reading for
scenes without them (synthetic scenes with GT instances): every furniture instance (GT instance id >=
``min_instance``) seen by at least ``min_area`` pixels in a train view and a test view is an object; its reference
view is the train view showing it largest; every protocol of ``protocols`` prompts it. SPIn-NeRF scores it on the test
view showing it largest. NVOS scores it on two target views, the ``nearest`` and the ``largest`` test view
(``stages.lib.promptable.target_view``), as the variants ``nvos_nearest`` and ``nvos_largest``; the summary's ``nvos``
is the variant ``nvos_target`` names (default ``nearest``: NVOS is built on LLFF forward-facing captures, Sec. 4.1, A.2).
The prompt scale is the normalised Eq. 2 scale of the task's scale region (rendered depth of the field, the scene's
mask-scale normaliser). Prompt points are drawn with a fixed seed per object; the selection is made once per task and
rendered on each target view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from stages.lib.promptable import (
    DATASET_PROTOCOLS,
    TARGET_RULES,
    PromptTask,
    dataset_tasks,
    precision_recall,
    score_mask,
    synthetic_task,
    target_view,
    view_angle,
)
from stages.lib.rendered_depth import Camera
from stages.lib.scene import SceneData
from stages.methods.saga.field import SagaField
from stages.methods.saga.prompt import PointPrompt
from stages.methods.saga.scales import normalise_scales, view_mask_scales

PROTOCOLS = ("nvos", "spin")


@dataclass
class PromptEvalConfig:
    """Protocols, prompt counts, similarity threshold and object choice (see the module docstring)."""

    protocols: list[str] = field(default_factory=lambda: ["nvos", "spin"])
    num_positive: int = 3
    num_negative: int = 3
    threshold: float = 0.75
    min_area: int = 20
    min_instance: int = 6
    max_objects: int = 0
    seed: int = 0
    nvos_target: str = "nearest"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.protocols) - set(PROTOCOLS))
        if unknown or not self.protocols:
            raise ValueError(f"protocols must be among {sorted(PROTOCOLS)}, got {self.protocols}")
        if self.nvos_target not in TARGET_RULES:
            raise ValueError(f"nvos_target must be one of {TARGET_RULES}, got {self.nvos_target!r}")


class PromptObject(NamedTuple):
    """An evaluable object: its GT instance id, reference train view and the test view of each target rule."""

    instance: int
    reference_view: int
    targets: dict[str, int]


def camera(scene: SceneData, view: int) -> Camera:
    return Camera(scene.world_to_camera[view], scene.intrinsics[view], scene.width, scene.height)


def prompt_objects(gt_instance: np.ndarray, is_test: np.ndarray, world_to_camera: np.ndarray,
                   cfg: PromptEvalConfig) -> list[PromptObject]:
    """Every evaluable object, by instance id, with its target view under each rule of ``TARGET_RULES``."""
    ids = [int(i) for i in np.unique(gt_instance) if i >= cfg.min_instance]
    train, test = np.nonzero(~is_test)[0], np.nonzero(is_test)[0]
    objects = []
    for inst in ids:
        area = (gt_instance == inst).sum(axis=(1, 2))
        ref, seen = int(train[np.argmax(area[train])]), test[area[test] >= cfg.min_area]
        if area[ref] >= cfg.min_area and len(seen):
            objects.append(PromptObject(inst, ref, {rule: target_view(rule, ref, seen, area, world_to_camera)
                                                    for rule in TARGET_RULES}))
    return objects[:cfg.max_objects] if cfg.max_objects else objects


def reference_scale(saga: SagaField, cam: Camera, mask: np.ndarray, knots: np.ndarray) -> float:
    """The normalised Eq. 2 scale of a reference mask (0.5 when it has no rendered depth)."""
    depth = saga.depth(cam).cpu().numpy()
    metric, _ = view_mask_scales(depth, cam.intrinsics, cam.world_to_camera, mask[None])
    s = normalise_scales(metric, knots)[0]
    return float(s) if np.isfinite(s) else 0.5


def prompt_tasks(scene: SceneData, cfg: PromptEvalConfig) -> list[PromptTask]:
    """The dataset's own prompt task when the scene has NVOS / SPIn-NeRF annotations, else synthetic tasks from the
    GT instances (module docstring)."""
    if scene.annotations is not None and scene.annotations.protocol in DATASET_PROTOCOLS:
        return dataset_tasks(scene.annotations)
    if scene.gt_instance is None:
        raise ValueError(f"{scene.source}: neither NVOS / SPIn-NeRF annotations nor gt_instance ground truth to take "
                         f"prompts from")
    tasks = []
    for obj in prompt_objects(scene.gt_instance, scene.is_test, scene.world_to_camera, cfg):
        for protocol in cfg.protocols:
            rules = list(TARGET_RULES) if protocol == "nvos" else ["largest"]
            targets = [(obj.targets[r], scene.gt_instance[obj.targets[r]] == obj.instance) for r in rules]
            tasks.append(synthetic_task(protocol, obj.instance, obj.reference_view,
                                        scene.gt_instance[obj.reference_view] == obj.instance, targets, rules))
    return tasks


def evaluate_prompts(saga: SagaField, scene: SceneData, knots: np.ndarray, cfg: PromptEvalConfig) -> list[dict]:
    """One row per (task, target view): its protocol variant (``PromptTask.labelled_targets``), IoU, pixel accuracy,
    precision, recall, the angle between the reference and target cameras' optical axes (degrees) and the prompt used;
    the object label is the target image's name on annotated datasets, the GT instance id on synthetic scenes."""
    from_dataset = scene.annotations is not None and scene.annotations.protocol in DATASET_PROTOCOLS
    rows = []
    for task in prompt_tasks(scene, cfg):
        ref_cam = camera(scene, task.reference_view)
        scale = reference_scale(saga, ref_cam, task.scale_region, knots)
        pos, neg = task.points(cfg.num_positive, cfg.num_negative, np.random.default_rng([cfg.seed, task.instance]))
        prompt = PointPrompt(view=task.reference_view, positive=pos, negative=neg, scale=scale)
        selected = saga.segment(prompt, ref_cam, cfg.threshold, saga.feature_map(ref_cam))
        for view, gt, variant in task.labelled_targets():
            pred = saga.render_selection(selected, camera(scene, view)).cpu().numpy()
            iou, accuracy = score_mask(pred, gt)
            precision, recall = precision_recall(pred, gt)
            label = scene.image_names[view] if from_dataset else str(task.instance)
            angle = float(view_angle(scene.world_to_camera[task.reference_view], scene.world_to_camera[view]))
            rows.append({"protocol": variant, "instance": task.instance, "object": label,
                         "reference_view": task.reference_view, "target_view": view, "view_angle": angle,
                         "scale": scale, "selected": int(selected.sum()), "iou": iou, "accuracy": accuracy,
                         "precision": precision, "recall": recall})
    return rows


def protocol_summary(rows: list[dict], nvos_target: str = "nearest") -> dict[str, dict[str, float]]:
    """mIoU / mAcc (means over scored objects) and the object count per protocol variant of the rows; on synthetic
    scenes ``nvos`` repeats the variant ``nvos_<nvos_target>`` (module docstring)."""
    out: dict[str, dict[str, float]] = {}
    for protocol in sorted({r["protocol"] for r in rows}):
        sel = [r for r in rows if r["protocol"] == protocol]
        out[protocol] = {"mIoU": float(np.mean([r["iou"] for r in sel])),
                         "mAcc": float(np.mean([r["accuracy"] for r in sel])), "objects": len(sel)}
    if f"nvos_{nvos_target}" in out and "nvos" not in out:
        out = {"nvos": out[f"nvos_{nvos_target}"], **out}
    return out
