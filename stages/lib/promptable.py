"""Promptable-segmentation protocols (SAGA Sec. 4, A.2): NVOS (points from the scribbles of a reference view) and
SPIn-NeRF (points inside / outside the reference view's mask); IoU and pixel accuracy of the rendered mask on each
target view.

A ``PromptTask`` holds one prompted object: the reference view, the regions positive and negative points are drawn
from, the region whose scale sets the prompt scale, and the (view, ground-truth mask) pairs it is scored on. Tasks
come from the dataset's own annotations (``dataset_tasks``: NVOS scribbles and target mask, SPIn-NeRF masks) or, on
synthetic scenes, from the GT instances. Definitions: IoU = |P & G| / |P | G| (1 when both are empty), accuracy =
fraction of pixels where P and G agree; a protocol's mIoU / mAcc is the mean over its scored (object, view) pairs.

Our readings. NVOS: SAGA draws random points from the scribbles; the prompt scale is that of the positive scribble's
pixels (NVOS gives no reference mask). SPIn-NeRF: the reference is the first annotated view (file-name order) and the
prompt scale that of its mask. Synthetic scenes, which have no hand-drawn scribbles: the positive scribble is the
object's core (pixels at least half the mask's largest inner distance from its border), the negative scribble the
band of pixels 2 to 6 pixels outside the mask. Prompts are drawn with a fixed seed per object.

Target view on synthetic scenes (``target_view``, rules ``TARGET_RULES``). NVOS is built on LLFF forward-facing
captures: its target view looks at the same side of the object as the reference view. ``nearest`` mirrors that: among
the test views showing the object by at least ``min_area`` pixels, the one whose optical axis makes the smallest angle
with the reference camera's (angles equal to 1e-6 degrees tie), ties broken by the smaller distance between the camera
centres, then by the lower view index. ``largest`` takes the test view showing the object by the most pixels (lowest
index on ties); on a 360-degree trajectory it may look at the object from the other side, the harder, all-around
variant. Precision |P & G| / |P| and recall |P & G| / |G| are 0 when their denominator is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import distance_transform_edt

from stages.lib.annotations import QueryAnnotations
from stages.lib.semantic_metrics import mask_iou

NEGATIVE_BAND = (2.0, 6.0)
TARGET_RULES = ("nearest", "largest")
ANGLE_TIE_DEG = 1e-6
DATASET_PROTOCOLS = {"nvos": "nvos", "spin_nerf": "spin"}  # annotation protocol -> prompt protocol


@dataclass
class PromptTask:
    """One prompted object (module docstring); regions and masks are [H,W] bool."""

    protocol: str
    instance: int
    reference_view: int
    positive: np.ndarray
    negative: np.ndarray
    scale_region: np.ndarray
    targets: list[tuple[int, np.ndarray]] = field(default_factory=list)
    target_rules: list[str] = field(default_factory=list)  # rule of each target (synthetic); empty: the dataset's

    def labelled_targets(self) -> list[tuple[int, np.ndarray, str]]:
        """(view, GT mask, variant) of every target: ``nvos_<rule>`` for a synthetic NVOS target chosen by a rule of
        ``TARGET_RULES``, the task's protocol otherwise (the dataset's own targets, SPIn-NeRF)."""
        rules = self.target_rules or [""] * len(self.targets)
        return [(view, mask, f"nvos_{rule}" if self.protocol == "nvos" and rule in TARGET_RULES else self.protocol)
                for (view, mask), rule in zip(self.targets, rules)]

    def points(self, n_pos: int, n_neg: int, rng: np.random.Generator
               ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """Positive and negative pixel centres drawn from the task's regions."""
        return sample_points(self.positive, n_pos, rng), sample_points(self.negative, n_neg, rng)


def score_mask(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """(IoU, pixel accuracy) of a predicted mask against the ground truth."""
    return mask_iou(pred, gt), pixel_accuracy(pred, gt)


def dataset_tasks(annotations: QueryAnnotations) -> list[PromptTask]:
    """The prompt task of an NVOS or SPIn-NeRF scene from its annotations (queries as the readers write them)."""
    def masks_of(query: str) -> list[tuple[int, np.ndarray]]:
        index = annotations.queries.index(query)
        rows = np.nonzero(annotations.query == index)[0]
        return [(int(annotations.view[r]), annotations.masks[r]) for r in rows]

    if annotations.protocol == "nvos":
        (ref, pos), (_, neg) = masks_of("positive scribble")[0], masks_of("negative scribble")[0]
        return [PromptTask("nvos", 0, ref, pos, neg, pos, masks_of("object"))]
    if annotations.protocol == "spin_nerf":
        ref, mask = masks_of("reference object")[0]
        return [PromptTask("spin", 0, ref, mask, ~mask, mask, masks_of("object"))]
    raise ValueError(f"annotations of protocol {annotations.protocol!r} hold no prompts; "
                     f"prompt protocols: {sorted(DATASET_PROTOCOLS)}")


def synthetic_task(protocol: str, instance: int, reference_view: int, reference_mask: np.ndarray,
                   targets: list[tuple[int, np.ndarray]], rules: list[str]) -> PromptTask:
    """A synthetic object's task: NVOS regions from ``nvos_scribbles``, SPIn-NeRF regions inside / outside the mask;
    ``rules[i]`` is the rule of ``TARGET_RULES`` that chose ``targets[i]``."""
    if not reference_mask.any():
        raise ValueError("cannot draw prompts for an empty object mask")
    if len(rules) != len(targets) or not set(rules) <= set(TARGET_RULES):
        raise ValueError(f"one rule of {TARGET_RULES} per target view, got {rules} for {len(targets)} targets")
    pos, neg = nvos_scribbles(reference_mask) if protocol == "nvos" else (reference_mask, ~reference_mask)
    return PromptTask(protocol, instance, reference_view, pos, neg, reference_mask, list(targets), list(rules))


def optical_axis(world_to_camera: np.ndarray) -> np.ndarray:
    """World direction of the camera's +z (viewing) axis: the third row of the rotation (OpenCV axes)."""
    return np.asarray(world_to_camera, np.float64)[..., 2, :3]


def camera_centre(world_to_camera: np.ndarray) -> np.ndarray:
    """World position of the camera centre, -R^T t."""
    w2c = np.asarray(world_to_camera, np.float64)
    return -np.einsum("...ji,...j->...i", w2c[..., :3, :3], w2c[..., :3, 3])


def view_angle(w2c_a: np.ndarray, w2c_b: np.ndarray) -> np.ndarray:
    """Angle in degrees between the optical axes of two cameras (broadcasts over leading dimensions)."""
    a, b = optical_axis(w2c_a), optical_axis(w2c_b)
    cos = np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def target_view(rule: str, reference: int, candidates: np.ndarray, areas: np.ndarray,
                world_to_camera: np.ndarray) -> int:
    """The target view ``rule`` picks among ``candidates`` (view indices, non-empty) for a reference view
    (module docstring); ``areas`` [V] are the object's pixel counts, ``world_to_camera`` [V,4,4] the poses."""
    candidates = np.asarray(candidates)
    if rule == "largest":
        return int(candidates[np.argmax(areas[candidates])])
    if rule != "nearest":
        raise ValueError(f"target rule must be one of {TARGET_RULES}, got {rule!r}")
    angle = np.round(view_angle(world_to_camera[reference], world_to_camera[candidates]) / ANGLE_TIE_DEG)
    distance = np.linalg.norm(camera_centre(world_to_camera[candidates]) - camera_centre(world_to_camera[reference]),
                              axis=-1)
    return int(candidates[np.lexsort((candidates, distance, angle))[0]])


def precision_recall(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """(|P & G| / |P|, |P & G| / |G|) of two boolean masks, 0 for an empty denominator."""
    pred, gt = pred.astype(bool), gt.astype(bool)
    both = float(np.sum(pred & gt))
    return both / max(int(pred.sum()), 1), both / max(int(gt.sum()), 1)


def pixel_accuracy(pred: np.ndarray, gt: np.ndarray) -> float:
    """Fraction of pixels where the two boolean masks agree."""
    return float(np.mean(pred.astype(bool) == gt.astype(bool)))


def nvos_scribbles(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) scribbles [H,W] bool of an object mask (see the module docstring)."""
    mask = mask.astype(bool)
    if not mask.any():
        raise ValueError("cannot draw scribbles for an empty object mask")
    inner = distance_transform_edt(mask)
    positive = inner >= 0.5 * inner.max()
    outer = distance_transform_edt(~mask)
    negative = (outer >= NEGATIVE_BAND[0]) & (outer <= NEGATIVE_BAND[1])
    return positive, negative


def sample_points(region: np.ndarray, n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """``n`` pixel centres (x, y) drawn without replacement from a boolean region (fewer if it is smaller)."""
    ys, xs = np.nonzero(region)
    pick = rng.choice(len(xs), size=min(n, len(xs)), replace=False) if len(xs) else np.zeros(0, int)
    return [(float(xs[i]) + 0.5, float(ys[i]) + 0.5) for i in pick]


def nvos_prompts(mask: np.ndarray, n_pos: int, n_neg: int, rng: np.random.Generator
                 ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """NVOS protocol: positive points from the positive scribble, negative points from the negative one."""
    positive, negative = nvos_scribbles(mask)
    return sample_points(positive, n_pos, rng), sample_points(negative, n_neg, rng)


def spin_prompts(mask: np.ndarray, n_pos: int, n_neg: int, rng: np.random.Generator
                 ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """SPIn-NeRF protocol: positive points inside the reference mask, negative points outside it."""
    mask = mask.astype(bool)
    if not mask.any():
        raise ValueError("cannot draw prompts for an empty object mask")
    return sample_points(mask, n_pos, rng), sample_points(~mask, n_neg, rng)
