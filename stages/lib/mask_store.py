"""Reading and writing ``masks`` stores: label maps per level plus the mask table (see ``store.MASKS``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from stages.lib.mask_levels import Mask, paint_label_map
from stages.lib.store import StoreError, read_store, write_store

TABLE_COLUMNS = ("mask_view", "mask_level", "mask_id", "mask_area", "mask_bbox", "mask_pred_iou", "mask_stability")


def write_masks(path: str | Path, per_view: Iterable[list[list[Mask]]], shape: tuple[int, int, int],
                levels: list[str], params: Mapping[str, Any], inputs: Mapping[str, str | Path],
                attrs: Mapping[str, Any], keep_all: bool = False,
                id_order: Callable[[int], np.ndarray] | None = None) -> None:
    """Write a masks store from, per view, one list of masks per level (atomic).

    Each level's masks are painted into a non-overlapping label map (``paint_label_map``). With ``keep_all``
    (SAGA) every mask is also stored in full and keeps its row even where others cover it. ``id_order(n)``, if
    given, is a permutation renumbering a view's n painted masks (mask i gets id order[i]).
    """
    v, h, w = shape
    rows: dict[str, list] = {k: [] for k in TABLE_COLUMNS}
    pixels: list[np.ndarray] = []
    with write_store("masks", path, "masks", params, inputs) as store:
        labels = store.create("labels", (v, len(levels), h, w))
        for view, level_masks in enumerate(per_view):
            if len(level_masks) != len(levels):
                raise ValueError(f"view {view}: {len(level_masks)} mask lists for {len(levels)} levels")
            view_labels = np.full((len(levels), h, w), -1, np.int32)
            for li, masks in enumerate(level_masks):
                view_labels[li], kept = paint_label_map(masks, (h, w), keep_hidden=keep_all)
                if id_order is not None and kept:
                    order = np.asarray(id_order(len(kept)))
                    view_labels[li] = np.where(view_labels[li] >= 0, order[view_labels[li]], -1)
                    kept = [kept[i] for i in np.argsort(order)]
                for i, m in enumerate(kept):
                    for key, value in zip(TABLE_COLUMNS, (view, li, i, m.area, m.bbox, m.predicted_iou,
                                                          m.stability_score)):
                        rows[key].append(value)
                    if keep_all:
                        pixels.append(m.segmentation)
            labels[view] = view_labels
        dtypes = {"mask_bbox": np.float32, "mask_pred_iou": np.float32, "mask_stability": np.float32}
        for key, values in rows.items():
            dtype = dtypes.get(key, np.int32)
            store.write(key, np.asarray(values, dtype=dtype).reshape((-1, 4) if key == "mask_bbox" else (-1,)))
        if keep_all:
            store.write("mask_pixels", np.stack(pixels) if pixels else np.zeros((0, h, w), bool))
        store.attrs.update(attrs)
        store.attrs.update(levels=list(levels), keep_all=keep_all)


@dataclass
class MaskSet:
    """A loaded masks store: label maps [V,L,H,W], the table columns, and per-view mask access."""

    path: Path
    labels: np.ndarray
    table: dict[str, np.ndarray]
    levels: list[str]
    attrs: dict[str, Any]
    pixels: np.ndarray | None = None

    @property
    def num_masks(self) -> int:
        return int(self.table["mask_view"].shape[0])

    def level_index(self, level: str) -> int:
        if level not in self.levels:
            raise StoreError(f"{self.path}: no level {level!r}; the store has {self.levels}")
        return self.levels.index(level)

    def rows(self, view: int, level: int) -> np.ndarray:
        """Table rows of one view's masks at one level, ordered by mask id."""
        sel = np.where((self.table["mask_view"] == view) & (self.table["mask_level"] == level))[0]
        return sel[np.argsort(self.table["mask_id"][sel])]

    def masks(self, view: int, level: int) -> tuple[np.ndarray, np.ndarray]:
        """(table rows, boolean masks [m,H,W]) of one view and level; full masks in keep-all stores."""
        rows = self.rows(view, level)
        if self.pixels is not None:
            return rows, self.pixels[rows]
        ids = self.table["mask_id"][rows]
        return rows, self.labels[view, level][None] == ids[:, None, None]


def load_masks(path: str | Path, expect_shape: tuple[int, int, int] | None = None) -> MaskSet:
    """Read a masks store; ``expect_shape`` (V,H,W) checks it against the scene it is used with."""
    store = read_store("masks", path)
    labels = store.load("labels")
    if expect_shape is not None and (labels.shape[0], *labels.shape[2:]) != tuple(expect_shape):
        raise StoreError(f"{path}: masks of shape {labels.shape[0]}x{labels.shape[2]}x{labels.shape[3]} (VxHxW) "
                         f"do not match the scene's {expect_shape[0]}x{expect_shape[1]}x{expect_shape[2]}")
    return MaskSet(Path(path), labels, {k: store.load(k) for k in TABLE_COLUMNS}, list(store.attrs["levels"]),
                   store.attrs, store.get("mask_pixels"))
