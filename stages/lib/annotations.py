"""Text-query annotations of a scene (LERF-OVS, 3D-OVS, LERF-Mask): one binary mask per (annotated view, query).

Unlike ``gt_semantic`` the masks of one view may overlap (LERF-OVS annotates "plate" and "cookies on a plate"), and
only a few views are annotated, so they are kept as a sparse list: ``masks[m]`` is the ground truth of query
``queries[query[m]]`` on scene view ``view[m]``. LERF-OVS also keeps the annotators' boxes (``boxes[b]`` belongs to
mask ``box_mask[b]``), which its localization metric uses. ``protocol`` names the dataset's evaluation protocol
(``stages/lib/annotation_protocols.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from stages.lib.instance_gaussians import Cameras

# nvos / spin_nerf: prompt annotations (reference-view prompts, scored object masks) for evaluate_prompt
PROTOCOLS = ("lerf_ovs", "3dovs", "lerf_mask", "nvos", "spin_nerf")


@dataclass
class QueryAnnotations:
    """masks (M,H,W) bool; view, query (M,) int; queries: the text queries; boxes (B,4) x1,y1,x2,y2 with box_mask (B,)."""

    protocol: str
    queries: list[str]
    view: np.ndarray
    query: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    box_mask: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def validate(self, source: str, num_views: int, height: int, width: int) -> "QueryAnnotations":
        """Raise ``ValueError`` (message starts with ``source``) on inconsistent annotations."""
        m = len(self.view)
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"{source}: unknown annotation protocol {self.protocol!r}; known: {', '.join(PROTOCOLS)}")
        if self.masks.shape != (m, height, width) or self.query.shape != (m,):
            raise ValueError(f"{source}: {m} annotated views but masks {self.masks.shape} / queries {self.query.shape} "
                             f"(images are {width}x{height})")
        if m == 0:
            raise ValueError(f"{source}: the scene has no annotated masks")
        if self.view.min() < 0 or self.view.max() >= num_views:
            raise ValueError(f"{source}: annotation view index outside the {num_views} views")
        if self.query.min() < 0 or self.query.max() >= len(self.queries):
            raise ValueError(f"{source}: annotation query index outside the {len(self.queries)} queries")
        if len(self.box_mask) != len(self.boxes) or (len(self.box_mask) and
                                                     (self.box_mask.min() < 0 or self.box_mask.max() >= m)):
            raise ValueError(f"{source}: annotation boxes do not belong to annotated masks")
        return self

    def select_views(self, keep: np.ndarray) -> "QueryAnnotations":
        """The annotations of the kept scene views, renumbered to their new indices (masks of dropped views go)."""
        new_index = np.full(int(max(self.view.max(), np.max(keep))) + 1, -1, np.int64)
        new_index[np.asarray(keep)] = np.arange(len(keep))
        kept = np.nonzero(new_index[self.view] >= 0)[0]
        renumber = np.full(len(self.view), -1, np.int64)
        renumber[kept] = np.arange(len(kept))
        box_keep = renumber[self.box_mask] >= 0 if len(self.box_mask) else np.zeros(0, bool)
        return QueryAnnotations(self.protocol, self.queries, new_index[self.view[kept]].astype(np.int32),
                                self.query[kept], self.masks[kept], self.boxes[box_keep],
                                renumber[self.box_mask[box_keep]].astype(np.int32))

    def downscale(self, factor: int) -> "QueryAnnotations":
        """Masks nearest-downscaled by an integer factor; boxes (pixel indices, borders included) become the pixels of
        the smaller image that cover them: ``floor(index / factor)``."""
        from stages.lib.readers.images import downscale_nearest

        if factor == 1:
            return self
        masks = np.stack([downscale_nearest(m, factor) for m in self.masks])
        return QueryAnnotations(self.protocol, self.queries, self.view, self.query, masks,
                                np.floor(self.boxes / factor).astype(np.float32), self.box_mask)

    def write(self, writer: Any) -> None:
        """Into an open ``scene`` store writer."""
        writer.write("annotation_masks", self.masks.astype(bool))
        writer.write("annotation_view", self.view.astype(np.int32))
        writer.write("annotation_query", self.query.astype(np.int32))
        if len(self.boxes):
            writer.write("annotation_boxes", self.boxes.astype(np.float32))
            writer.write("annotation_box_mask", self.box_mask.astype(np.int32))
        writer.attrs.update(annotation_queries=list(self.queries), annotation_protocol=self.protocol)

    @classmethod
    def read(cls, store: Any) -> "QueryAnnotations | None":
        """From a ``scene`` store (``None`` when it has no annotations)."""
        if "annotation_masks" not in store:
            return None
        boxes = store.load("annotation_boxes") if "annotation_boxes" in store else np.zeros((0, 4), np.float32)
        owner = store.load("annotation_box_mask") if "annotation_box_mask" in store else np.zeros(0, np.int32)
        return cls(store.attrs["annotation_protocol"], list(store.attrs["annotation_queries"]),
                   store.load("annotation_view"), store.load("annotation_query"), store.load("annotation_masks"),
                   boxes, owner)


class AnnotationPredictor(Protocol):
    """A method's text query as the text-query protocols read it (registry kind ``text_query``): predictions in
    annotation order, ``masks`` [M,H,W] bool and ``relevance`` [M,H,W] float (LERF-OVS, LERF-Mask) or ``class_maps``
    [A,H,W] int over ``annotations.queries`` for the A annotated views in increasing order (3D-OVS); ``cams[i]`` is
    the camera of the i-th annotated view in increasing view order."""

    def predict(self, annotations: QueryAnnotations, cams: "Cameras") -> dict[str, np.ndarray]: ...
