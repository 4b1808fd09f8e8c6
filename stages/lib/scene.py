"""In-memory scene (what every reader and the synthetic generator produce) and its ``scene`` store I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from stages.lib.annotations import QueryAnnotations
from stages.lib.store import Store, read_store, write_store

OPTIONAL_ARRAYS = ("depth", "foreground", "gt_semantic", "gt_instance", "points_semantic", "points_instance")


class SceneError(ValueError):
    """Bad input data: the message names the file and the problem."""


@dataclass
class SceneData:
    """Posed images plus optional depth / ground truth, in OpenCV camera convention.

    images: (V,H,W,3) uint8; intrinsics: (V,3,3); world_to_camera: (V,4,4) rigid; is_test: (V,) bool;
    points_xyz/points_rgb: (P,3) initial point cloud; ``random_point_colours``: the points' colours are random, not
    seen in any image (NeRF-synthetic's random cube, a COLMAP model without points); readers that colour random
    points from the views (LLFF, IDR) leave it False. ``source`` names the file/folder read, so validation errors
    can point at it.
    """

    images: np.ndarray
    intrinsics: np.ndarray
    world_to_camera: np.ndarray
    is_test: np.ndarray
    points_xyz: np.ndarray
    points_rgb: np.ndarray
    image_names: list[str]
    source: str = "<memory>"
    categories: list[str] = field(default_factory=list)
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    depth: np.ndarray | None = None
    foreground: np.ndarray | None = None
    gt_semantic: np.ndarray | None = None
    gt_instance: np.ndarray | None = None
    points_semantic: np.ndarray | None = None
    points_instance: np.ndarray | None = None
    extra_attrs: dict[str, Any] = field(default_factory=dict)
    random_point_colours: bool = False
    annotations: QueryAnnotations | None = None  # text-query masks of a few views (LERF-OVS, 3D-OVS, LERF-Mask)

    @property
    def num_views(self) -> int:
        return int(self.images.shape[0])

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    def validate(self) -> "SceneData":
        """Check counts, shapes, finiteness and rigidity; raise ``SceneError`` naming ``source``."""
        src = self.source
        v = self.images.shape[0]
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise SceneError(f"{src}: images must be (V,H,W,3) uint8, got {self.images.shape} {self.images.dtype}")
        for name, arr, shape in (("intrinsics", self.intrinsics, (3, 3)), ("world_to_camera", self.world_to_camera, (4, 4))):
            if arr.shape != (v, *shape):
                raise SceneError(f"{src}: {v} images but {name} has shape {arr.shape} (expected {(v, *shape)})")
            bad = np.where(~np.isfinite(arr).all(axis=(1, 2)))[0]
            if bad.size:
                raise SceneError(f"{src}: {name} of view {self.image_names[bad[0]]!r} contains NaN or inf")
        if len(self.image_names) != v or self.is_test.shape != (v,):
            raise SceneError(f"{src}: {v} images but {len(self.image_names)} names / {self.is_test.shape[0]} split flags")
        rot = self.world_to_camera[:, :3, :3].astype(np.float64)
        ortho_err = np.abs(rot @ rot.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))
        det = np.linalg.det(rot)
        bottom_err = np.abs(self.world_to_camera[:, 3] - np.array([0, 0, 0, 1])).max(axis=1)
        bad = np.where((ortho_err > 1e-3) | (np.abs(det - 1) > 1e-3) | (bottom_err > 1e-6))[0]
        if bad.size:
            i = int(bad[0])
            raise SceneError(f"{src}: pose of view {self.image_names[i]!r} is not a rigid transform "
                             f"(|R R^T - I| = {ortho_err[i]:.3g}, det R = {det[i]:.3g})")
        if (self.intrinsics[:, 0, 0] <= 0).any() or (self.intrinsics[:, 1, 1] <= 0).any():
            raise SceneError(f"{src}: focal lengths must be positive")
        if self.points_xyz.ndim != 2 or self.points_xyz.shape[1] != 3 or self.points_rgb.shape != self.points_xyz.shape:
            raise SceneError(f"{src}: point cloud xyz {self.points_xyz.shape} / rgb {self.points_rgb.shape} mismatch")
        if not np.isfinite(self.points_xyz).all():
            raise SceneError(f"{src}: point cloud contains NaN or inf")
        for name in ("depth", "foreground", "gt_semantic", "gt_instance"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != self.images.shape[:3]:
                raise SceneError(f"{src}: {name} has shape {arr.shape}, images {self.images.shape[:3]}")
        if not self.is_test.any() or self.is_test.all():
            raise SceneError(f"{src}: the train/test split must have both train and test views")
        if self.annotations is not None:
            try:
                self.annotations.validate(src, v, self.height, self.width)
            except ValueError as exc:
                raise SceneError(str(exc)) from exc
        return self

    def write(self, path: str | Path, stage: str, params: Mapping[str, Any], dataset: str, scene: str,
              reader: str) -> None:
        """Validate and write the ``scene`` store atomically."""
        self.validate()
        with write_store("scene", path, stage, params) as w:
            w.write("images", self.images)
            w.write("intrinsics", self.intrinsics.astype(np.float32))
            w.write("world_to_camera", self.world_to_camera.astype(np.float32))
            w.write("is_test", self.is_test.astype(bool))
            w.write("points_xyz", self.points_xyz.astype(np.float32))
            w.write("points_rgb", self.points_rgb.astype(np.uint8))
            dtypes = {"depth": np.float32, "foreground": bool}
            for name in OPTIONAL_ARRAYS:
                arr = getattr(self, name)
                if arr is not None:
                    w.write(name, arr.astype(dtypes.get(name, np.int32)))
            if self.annotations is not None:
                self.annotations.write(w)
            w.attrs.update(self.extra_attrs)
            w.attrs.update(dataset=dataset, scene=scene, reader=reader, image_names=list(self.image_names),
                           categories=list(self.categories), background=list(self.background),
                           source=self.source, random_point_colours=bool(self.random_point_colours))


def load_scene(path: str | Path) -> SceneData:
    """Read a ``scene`` store fully into memory."""
    store: Store = read_store("scene", path)
    opt = {name: store.get(name) for name in OPTIONAL_ARRAYS}
    return SceneData(
        images=store.load("images"), intrinsics=store.load("intrinsics"),
        world_to_camera=store.load("world_to_camera"), is_test=store.load("is_test"),
        points_xyz=store.load("points_xyz"), points_rgb=store.load("points_rgb"),
        image_names=list(store.attrs["image_names"]), source=str(path),
        categories=list(store.attrs["categories"]), background=tuple(store.attrs["background"]), **opt,
        annotations=QueryAnnotations.read(store),
        random_point_colours=bool(store.attrs.get("random_point_colours", False)),
    )
