"""Occlusion-aware multi-view fusion of per-pixel features onto 3D points (SAS Sec. 3.1 after OpenScene).

A point contributes to a view when it projects inside the image in front of the camera and its camera depth z agrees
with the view's depth d at that pixel: |d - z| <= ``visibility_threshold`` * d. Our reading: the relative threshold
and its value 0.25 are OpenScene's ScanNet fusion (the paper only says it follows OpenScene); pixels without depth
(d = 0) see nothing. A point's feature is the mean over the views that see it; points seen by no view keep 0.
Views are streamed: memory is one running sum [P, D] and one count [P], flat in the number of views. Class
predictions aligned by text (Sec. 3.1) are summed as votes [P, K] per class and turned into features once at the end
(the sum of the voted classes' text features is the votes times the text features), which gives the same mean as
summing the aligned [P, D] features view by view at K / D of the work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stages.methods.sas.alignment import check_class_ids, unit_text

VISIBILITY_THRESHOLD = 0.25


def visible_pixels(points: np.ndarray, intrinsics: np.ndarray, world_to_camera: np.ndarray, depth: np.ndarray,
                   threshold: float = VISIBILITY_THRESHOLD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(visible [P] bool, row [P], col [P]) of the points [P, 3] in one view (OpenCV camera, pixel centres at
    integer + 0.5; rows / cols are only meaningful where visible)."""
    cam = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = cam @ intrinsics.T
        col = np.floor(uv[:, 0] / z).astype(np.int64, copy=False) if z.size else np.zeros(0, np.int64)
        row = np.floor(uv[:, 1] / z).astype(np.int64, copy=False) if z.size else np.zeros(0, np.int64)
    h, w = depth.shape
    inside = (z > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    d = np.zeros_like(z)
    d[inside] = depth[row[inside], col[inside]]
    visible = inside & (d > 0) & (np.abs(d - z) <= threshold * d)
    return visible, np.where(inside, row, 0), np.where(inside, col, 0)


Visibility = tuple[np.ndarray, np.ndarray, np.ndarray]  # (visible [P], row [P], col [P]) of one view


@dataclass
class PointFeatureFusion:
    """Running mean of per-pixel features over the views that see each point (``add_view`` or
    ``add_view_classes`` once per view)."""

    points: np.ndarray
    dim: int
    threshold: float = VISIBILITY_THRESHOLD
    total: np.ndarray = field(init=False)
    count: np.ndarray = field(init=False)
    votes: np.ndarray | None = field(init=False, default=None)
    text: np.ndarray | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.total = np.zeros((len(self.points), self.dim), np.float64)
        self.count = np.zeros(len(self.points), np.int64)

    def visibility(self, intrinsics: np.ndarray, world_to_camera: np.ndarray, depth: np.ndarray) -> Visibility:
        """The occlusion test of this fusion's points in one view (``visible_pixels``); several fusions over the
        same points can share it."""
        return visible_pixels(self.points, intrinsics, world_to_camera, depth, self.threshold)

    def add_view(self, features: np.ndarray, intrinsics: np.ndarray, world_to_camera: np.ndarray,
                 depth: np.ndarray) -> None:
        """Accumulate one view's per-pixel features [H, W, D] into the points it sees."""
        if features.shape[:2] != depth.shape or features.shape[2] != self.dim:
            raise ValueError(f"features {features.shape} do not match depth {depth.shape} and dim {self.dim}")
        visible, row, col = self.visibility(intrinsics, world_to_camera, depth)
        self.total[visible] += features[row[visible], col[visible]]
        self.count += visible

    def add_view_classes(self, prediction: np.ndarray, text_features: np.ndarray, intrinsics: np.ndarray,
                         world_to_camera: np.ndarray, depth: np.ndarray, visibility: Visibility | None = None) -> None:
        """``add_view`` of a per-pixel class prediction [H, W] aligned by text (Sec. 3.1): the class ids at the
        visible points become votes, so no [H, W, D] or [P, D] feature map is built per view. ``visibility``: the
        view's precomputed occlusion test (``visibility``), else computed here."""
        if prediction.shape != depth.shape:
            raise ValueError(f"prediction {prediction.shape} does not match depth {depth.shape}")
        if self.text is None:
            if text_features.shape[1] != self.dim:
                raise ValueError(f"text features {text_features.shape} do not match dim {self.dim}")
            self.text = unit_text(text_features.astype(np.float64))
            self.votes = np.zeros((len(self.points), len(self.text)), np.int64)
        elif text_features.shape != self.text.shape:
            raise ValueError(f"text features {text_features.shape} differ from the earlier views' {self.text.shape}")
        check_class_ids(prediction, len(self.text))
        visible, row, col = visibility if visibility is not None else self.visibility(intrinsics, world_to_camera,
                                                                                        depth)
        points = np.nonzero(visible)[0]
        classes = prediction[row[points], col[points]]
        voted = classes >= 0
        self.votes[points[voted], classes[voted]] += 1  # one vote per (point, view): the pairs are distinct
        self.count += visible

    def mean(self) -> np.ndarray:
        """[P, D] mean feature per point over the views that see it (0 where none does)."""
        total = self.total if self.votes is None else self.total + self.votes @ self.text
        return (total / np.maximum(self.count, 1)[:, None]).astype(np.float32)
