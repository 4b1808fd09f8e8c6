"""Promptable-segmentation evaluation of a SAGA field (NVOS and SPIn-NeRF protocols, ``stages.lib.promptable``).

A scene with NVOS or SPIn-NeRF annotations is scored by its dataset's protocol on its annotated views. Our reading for
scenes without them (synthetic scenes with GT instances): every furniture instance (GT instance id >=
``min_instance``) seen by at least ``min_area`` pixels in a train view and a test view is an object; its reference
view is the train view showing it largest, its target view the test view showing it largest; every protocol of
``protocols`` prompts it. The prompt scale is the normalised Eq. 2 scale of the task's scale region (rendered depth of
the field, the scene's mask-scale normaliser). Prompt points are drawn with a fixed seed per object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stages.lib.promptable import DATASET_PROTOCOLS, PromptTask, dataset_tasks, score_mask, synthetic_task
from stages.lib.scene import SceneData
from stages.methods.saga.cameras import Camera
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

    def __post_init__(self) -> None:
        unknown = sorted(set(self.protocols) - set(PROTOCOLS))
        if unknown or not self.protocols:
            raise ValueError(f"protocols must be among {sorted(PROTOCOLS)}, got {self.protocols}")


def camera(scene: SceneData, view: int) -> Camera:
    return Camera(scene.world_to_camera[view], scene.intrinsics[view], scene.width, scene.height)


def prompt_objects(gt_instance: np.ndarray, is_test: np.ndarray, cfg: PromptEvalConfig) -> list[tuple[int, int, int]]:
    """(instance, reference train view, target test view) of every evaluable object, by instance id."""
    ids = [int(i) for i in np.unique(gt_instance) if i >= cfg.min_instance]
    train, test = np.nonzero(~is_test)[0], np.nonzero(is_test)[0]
    objects = []
    for inst in ids:
        area = (gt_instance == inst).sum(axis=(1, 2))
        ref, tgt = train[np.argmax(area[train])], test[np.argmax(area[test])]
        if area[ref] >= cfg.min_area and area[tgt] >= cfg.min_area:
            objects.append((inst, int(ref), int(tgt)))
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
    return [synthetic_task(protocol, inst, ref, scene.gt_instance[ref] == inst, tgt, scene.gt_instance[tgt] == inst)
            for inst, ref, tgt in prompt_objects(scene.gt_instance, scene.is_test, cfg) for protocol in cfg.protocols]


def evaluate_prompts(saga: SagaField, scene: SceneData, knots: np.ndarray, cfg: PromptEvalConfig) -> list[dict]:
    """One row per (task, target view): IoU and pixel accuracy of the rendered selection, and the prompt used; the
    object label is the target image's name on annotated datasets, the GT instance id on synthetic scenes."""
    from_dataset = scene.annotations is not None and scene.annotations.protocol in DATASET_PROTOCOLS
    rows = []
    for task in prompt_tasks(scene, cfg):
        ref_cam = camera(scene, task.reference_view)
        scale = reference_scale(saga, ref_cam, task.scale_region, knots)
        pos, neg = task.points(cfg.num_positive, cfg.num_negative, np.random.default_rng([cfg.seed, task.instance]))
        prompt = PointPrompt(view=task.reference_view, positive=pos, negative=neg, scale=scale)
        selected = saga.segment(prompt, ref_cam, cfg.threshold, saga.feature_map(ref_cam))
        for view, gt in task.targets:
            pred = saga.render_selection(selected, camera(scene, view)).cpu().numpy()
            iou, accuracy = score_mask(pred, gt)
            label = scene.image_names[view] if from_dataset else str(task.instance)
            rows.append({"protocol": task.protocol, "instance": task.instance, "object": label,
                         "reference_view": task.reference_view, "target_view": view, "scale": scale,
                         "selected": int(selected.sum()), "iou": iou, "accuracy": accuracy})
    return rows


def protocol_summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """mIoU / mAcc (means over objects) and the object count per protocol."""
    out: dict[str, dict[str, float]] = {}
    for protocol in sorted({r["protocol"] for r in rows}):
        sel = [r for r in rows if r["protocol"] == protocol]
        out[protocol] = {"mIoU": float(np.mean([r["iou"] for r in sel])),
                         "mAcc": float(np.mean([r["accuracy"] for r in sel])), "objects": len(sel)}
    return out
