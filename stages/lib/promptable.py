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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import distance_transform_edt

from stages.lib.annotations import QueryAnnotations
from stages.lib.semantic_metrics import mask_iou

NEGATIVE_BAND = (2.0, 6.0)
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


def synthetic_task(protocol: str, instance: int, reference_view: int, reference_mask: np.ndarray, target_view: int,
                   target_mask: np.ndarray) -> PromptTask:
    """A synthetic object's task: NVOS regions from ``nvos_scribbles``, SPIn-NeRF regions inside / outside the mask."""
    if not reference_mask.any():
        raise ValueError("cannot draw prompts for an empty object mask")
    pos, neg = nvos_scribbles(reference_mask) if protocol == "nvos" else (reference_mask, ~reference_mask)
    return PromptTask(protocol, instance, reference_view, pos, neg, reference_mask, [(target_view, target_mask)])


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
