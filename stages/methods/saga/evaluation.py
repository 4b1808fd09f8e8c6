"""Promptable-segmentation evaluation of a SAGA field on a scene with ground truth (NVOS and SPIn-NeRF protocols).

Our reading for synthetic scenes: every furniture instance (GT instance id >= ``min_instance``) seen by at least
``min_area`` pixels in a train view and a test view is an object; its reference view is the train view showing it
largest, its target view the test view showing it largest; the prompt scale is the normalised Eq. 2 scale of the
reference mask (rendered depth of the field, the scene's mask-scale normaliser). Prompts come from
``stages.lib.promptable`` with a fixed seed per object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stages.lib.promptable import nvos_prompts, pixel_accuracy, spin_prompts
from stages.lib.scene import SceneData
from stages.lib.semantic_metrics import mask_iou
from stages.methods.saga.cameras import Camera
from stages.methods.saga.field import SagaField
from stages.methods.saga.prompt import PointPrompt
from stages.methods.saga.scales import normalise_scales, view_mask_scales

PROTOCOLS = {"nvos": nvos_prompts, "spin": spin_prompts}


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


def evaluate_prompts(saga: SagaField, scene: SceneData, knots: np.ndarray, cfg: PromptEvalConfig) -> list[dict]:
    """One row per (protocol, object): IoU and pixel accuracy of the target-view mask, and the prompt used."""
    if scene.gt_instance is None:
        raise ValueError(f"{scene.source}: no gt_instance ground truth to take prompt objects from")
    rows = []
    for inst, ref, tgt in prompt_objects(scene.gt_instance, scene.is_test, cfg):
        ref_mask, gt = scene.gt_instance[ref] == inst, scene.gt_instance[tgt] == inst
        ref_cam, tgt_cam = camera(scene, ref), camera(scene, tgt)
        scale = reference_scale(saga, ref_cam, ref_mask, knots)
        fmap = saga.feature_map(ref_cam)
        for protocol in cfg.protocols:
            rng = np.random.default_rng([cfg.seed, inst])
            pos, neg = PROTOCOLS[protocol](ref_mask, cfg.num_positive, cfg.num_negative, rng)
            prompt = PointPrompt(view=ref, positive=pos, negative=neg, scale=scale)
            selected = saga.segment(prompt, ref_cam, cfg.threshold, fmap)
            pred = saga.render_selection(selected, tgt_cam).cpu().numpy()
            rows.append({"protocol": protocol, "instance": inst, "reference_view": ref, "target_view": tgt,
                         "scale": scale, "selected": int(selected.sum()), "iou": mask_iou(pred, gt),
                         "accuracy": pixel_accuracy(pred, gt)})
    return rows


def protocol_summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """mIoU / mAcc (means over objects) and the object count per protocol."""
    out: dict[str, dict[str, float]] = {}
    for protocol in sorted({r["protocol"] for r in rows}):
        sel = [r for r in rows if r["protocol"] == protocol]
        out[protocol] = {"mIoU": float(np.mean([r["iou"] for r in sel])),
                         "mAcc": float(np.mean([r["accuracy"] for r in sel])), "objects": len(sel)}
    return out
