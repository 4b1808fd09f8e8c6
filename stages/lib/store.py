"""Zarr store contract: the layout of every store a stage writes, atomic writers and validating readers.

Every stage output is one Zarr (v3) group. Its layout is declared here, once, as a ``StoreSpec``:
arrays with dtype, symbolic shape (named dimensions such as ``V`` views or ``N`` Gaussians are
resolved across the arrays of one store), chunking and compression, plus the required attributes.

Writers write into ``<path>.partial-<id>`` and rename into place only after every required array
is present, validated and the ``complete`` flag is set, so a killed writer never leaves anything a
reader mistakes for a finished store. Readers validate the whole layout and raise ``StoreError``
naming the store and the offending array.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from stages.lib.atomic import partial_sibling, remove, replace_into_place

CONTRACT_VERSION = 1
# Snakemake drops a .snakemake_timestamp file into directory outputs; zarr warns about it on listing.
warnings.filterwarnings("ignore", message=".*snakemake_timestamp.*")
_COMPLETE = "complete"


class StoreError(RuntimeError):
    """A store is missing, incomplete or does not follow its contract."""


@dataclass(frozen=True)
class ArraySpec:
    """One array of a store: dtype, shape as dimension names or fixed ints, chunk shape per axis.

    ``chunks`` uses ``None`` for "whole axis" and an int for a fixed chunk length.
    """

    dtype: str
    dims: tuple[str | int, ...]
    chunks: tuple[int | None, ...] | None = None
    required: bool = True
    doc: str = ""
    finite: bool = False  # float arrays that must hold no NaN / inf (checked on write and on load)


@dataclass(frozen=True)
class StoreSpec:
    """The contract of one store kind."""

    kind: str
    arrays: Mapping[str, ArraySpec]
    attrs: tuple[str, ...] = ()
    doc: str = ""


def _spec(kind: str, doc: str, attrs: tuple[str, ...], **arrays: ArraySpec) -> StoreSpec:
    return StoreSpec(kind=kind, arrays=arrays, attrs=attrs, doc=doc)


# ----------------------------------------------------------------------------------------------
# The contract. Cameras follow OpenCV: x right, y down, z forward; poses are world-to-camera.
# Label maps use -1 for "no label". Dimension names: V views, H/W image size, P points,
# N Gaussians, K SH rest coefficients, C categories, M masks, D feature dims.
# ----------------------------------------------------------------------------------------------
STORES: dict[str, StoreSpec] = {}


def register(spec: StoreSpec) -> StoreSpec:
    """Add a store kind to the contract (each stage module's store is declared in this file)."""
    if spec.kind in STORES:
        raise ValueError(f"store kind {spec.kind!r} declared twice")
    STORES[spec.kind] = spec
    return spec


SCENE = register(
    _spec(
        "scene",
        "Posed images with optional depth and ground truth; written by the ingest stage.",
        ("dataset", "scene", "reader", "image_names", "categories", "background"),
        images=ArraySpec("uint8", ("V", "H", "W", 3), (1, None, None, None), doc="RGB images"),
        intrinsics=ArraySpec("float32", ("V", 3, 3), doc="pinhole K per view, pixels"),
        world_to_camera=ArraySpec("float32", ("V", 4, 4), doc="rigid world-to-camera (OpenCV)"),
        is_test=ArraySpec("bool", ("V",), doc="held-out evaluation views"),
        points_xyz=ArraySpec("float32", ("P", 3), doc="initial point cloud"),
        points_rgb=ArraySpec("uint8", ("P", 3)),
        depth=ArraySpec("float32", ("V", "H", "W"), (1, None, None), False, "z-depth, 0 = unknown"),
        foreground=ArraySpec("bool", ("V", "H", "W"), (1, None, None), False, "object mask"),
        gt_semantic=ArraySpec("int32", ("V", "H", "W"), (1, None, None), False, "category id"),
        gt_instance=ArraySpec("int32", ("V", "H", "W"), (1, None, None), False, "instance id"),
        points_semantic=ArraySpec("int32", ("P",), required=False),
        points_instance=ArraySpec("int32", ("P",), required=False),
        # Text-query annotations of LERF-OVS / 3D-OVS / LERF-Mask (stages/lib/annotations.py): one mask per
        # (annotated view, query); attrs annotation_queries, annotation_protocol.
        annotation_masks=ArraySpec("bool", ("M", "H", "W"), (1, None, None), False, "annotated mask per (view, query)"),
        annotation_view=ArraySpec("int32", ("M",), required=False, doc="scene view of each annotated mask"),
        annotation_query=ArraySpec("int32", ("M",), required=False, doc="index into attrs['annotation_queries']"),
        annotation_boxes=ArraySpec("float32", ("B", 4), required=False, doc="x1, y1, x2, y2 pixels (LERF-OVS)"),
        annotation_box_mask=ArraySpec("int32", ("B",), required=False, doc="annotated mask each box belongs to"),
    )
)

GAUSSIANS = register(
    _spec(
        "gaussians",
        "3D Gaussians with SH colours; written by train_gs.",
        ("sh_degree", "background", "iterations"),
        means=ArraySpec("float32", ("N", 3), finite=True),
        quats=ArraySpec("float32", ("N", 4), doc="unnormalised rotation, wxyz", finite=True),
        scales=ArraySpec("float32", ("N", 3), doc="log scales (gsplat / 3DGS parameterisation)", finite=True),
        opacities=ArraySpec("float32", ("N",), doc="opacity logits", finite=True),
        sh0=ArraySpec("float32", ("N", 1, 3), finite=True),
        shN=ArraySpec("float32", ("N", "K", 3), finite=True),
    )
)

RENDER_METRICS = register(
    _spec(
        "render_metrics",
        "Per-view PSNR/SSIM on held-out views; written by evaluate_render.",
        ("mean_psnr", "mean_ssim"),
        view=ArraySpec("int32", ("T",)),
        psnr=ArraySpec("float32", ("T",)),
        ssim=ArraySpec("float32", ("T",)),
    )
)


# 2D priors. Masks of one view and level are numbered 0..n-1 in that view's label map; the mask
# table lists every mask once (M rows) and every per-mask array downstream is aligned with it.
MASKS = register(
    _spec(
        "masks",
        "Per-view, per-level non-overlapping label maps plus the mask table; written by the masks stage.",
        ("levels", "source", "oracle"),
        labels=ArraySpec("int32", ("V", "L", "H", "W"), (1, None, None, None), doc="mask id per level, -1 none"),
        mask_view=ArraySpec("int32", ("M",)),
        mask_level=ArraySpec("int32", ("M",), doc="index into attrs['levels']"),
        mask_id=ArraySpec("int32", ("M",), doc="the mask's value in labels[view, level]"),
        mask_area=ArraySpec("int32", ("M",), doc="pixels of the mask (before painting, for list mode)"),
        mask_bbox=ArraySpec("float32", ("M", 4), doc="x, y, w, h in pixels"),
        mask_pred_iou=ArraySpec("float32", ("M",), doc="SAM predicted IoU (1 for oracle masks)"),
        mask_stability=ArraySpec("float32", ("M",), doc="SAM stability score (1 for oracle masks)"),
        mask_pixels=ArraySpec("bool", ("M", "H", "W"), (16, None, None), False,
                              "every mask in full, overlaps kept (list mode, e.g. SAGA)"),
    )
)

MASK_SCALES = register(
    _spec(
        "mask_scales",
        "The 3D scale of every mask (SAGA Eq. 2, rendered depth) and its per-scene normalisation; aligned with the "
        "masks table; written by the mask_scales stage.",
        ("normalisation", "min_alpha"),
        mask_scale=ArraySpec("float32", ("M",), doc="normalised to [0, 1] by scale_knots; NaN without depth"),
        mask_scale_metric=ArraySpec("float32", ("M",), doc="Eq. 2 in scene units; NaN without depth"),
        mask_depth_points=ArraySpec("int32", ("M",), doc="back-projected pixels with depth"),
        scale_knots=ArraySpec("float32", ("Q",), doc="quantiles of the metric scales at levels linspace(0, 1, Q)"),
    )
)

TRACKS = register(
    _spec(
        "tracks",
        "Cross-view track id per mask (-1 unmatched); written by the track stage.",
        ("source", "oracle", "num_tracks"),
        track_id=ArraySpec("int32", ("M",), doc="aligned with the masks table"),
        propagated=ArraySpec("int32", ("V", "L", "H", "W"), (1, None, None, None), False,
                             "propagated track label maps per level, -1 none"),
    )
)

FEATURES = register(
    _spec(
        "features",
        "Per-mask language embeddings and the vocabulary's text embeddings; written by the features stage.",
        ("source", "oracle", "vocabulary", "templates", "alpha"),
        mask_features=ArraySpec("float16", ("M", "E"), (4096, None), doc="fused, L2-normalised"),
        crop_features=ArraySpec("float16", ("M", "E"), (4096, None), doc="masked square crop embedding"),
        context_features=ArraySpec("float16", ("M", "E"), (4096, None), False,
                                   "dense image feature pooled inside the mask"),
        text_features=ArraySpec("float16", ("C", "E"), doc="one per vocabulary entry, L2-normalised"),
    )
)

# Method stages (feature fields, codebooks, association, semantic evaluation).
FEATURE_GAUSSIANS = register(
    _spec(
        "feature_gaussians",
        "Gaussians with a per-Gaussian low-dimensional feature; written by feature-field training.",
        ("sh_degree", "background", "iterations", "feature_dim"),
        **dict(GAUSSIANS.arrays),
        features=ArraySpec("float32", ("N", "D"), finite=True),
        objective_state=ArraySpec("float32", ("S",), required=False,
                                  doc="learnt parameters of the objective (e.g. decoders), flattened; "
                                      "names and shapes in attrs['objective_state']"),
    )
)

CODEBOOK = register(
    _spec(
        "codebook",
        "Cluster centres and per-Gaussian cluster ids (two-level or flat); written by the codebook stage.",
        ("k_coarse", "k_fine"),
        coarse_centres=ArraySpec("float32", ("K1", "Q"), finite=True),
        fine_centres=ArraySpec("float32", ("K", "D"), doc="leaf codebook, K = k_coarse * k_fine rows", finite=True),
        coarse_id=ArraySpec("int32", ("N",)),
        leaf_id=ArraySpec("int32", ("N",), doc="instance id of every Gaussian, -1 none"),
        mask_cluster=ArraySpec("int32", ("M",), required=False,
                               doc="vote-graph instance of every 2D mask, -1 none (SAGA A.3; aligned with the masks)"),
    )
)

PROTOTYPES = register(
    _spec(
        "prototypes",
        "A learnt codebook of K prototypes per mask level and every view's index maps (the prototype of each "
        "pixel's mask); written by the codebook stage's CCL-LGS algorithm.",
        ("levels", "num_prototypes", "vocabulary", "canonical_phrases"),
        prototypes=ArraySpec("float32", ("L", "K", "E"), doc="unit prototypes T_j per level"),
        index_maps=ArraySpec("int16", ("V", "L", "H", "W"), (1, None, None, None), doc="prototype per pixel, -1 none"),
        prototype_masks=ArraySpec("int32", ("L", "K"), doc="train-view masks whose nearest prototype is j"),
        text_features=ArraySpec("float16", ("C", "E"), doc="the vocabulary's text embeddings"),
        canonical_features=ArraySpec("float16", ("Q", "E"), doc="the canonical phrases' text embeddings"),
    )
)

ASSOCIATION = register(
    _spec(
        "association",
        "A language feature per 3D instance fused from its associated 2D masks; written by association.",
        ("vocabulary",),
        instance_language=ArraySpec("float16", ("K", "E"), doc="L2-normalised; zero rows for unseen instances"),
        instance_views=ArraySpec("int32", ("K",), doc="number of views with an associated mask"),
        instance_label=ArraySpec("int32", ("K",), doc="argmax vocabulary entry, -1 unseen"),
        text_features=ArraySpec("float16", ("C", "E")),
        leaf_id=ArraySpec("int32", ("N",), required=False,
                          doc="instance of every Gaussian where the association refined the codebook's leaf_id"),
    )
)

PROMPT_METRICS = register(
    _spec(
        "prompt_metrics",
        "Promptable 3D segmentation (NVOS / SPIn-NeRF protocols): per prompted object and protocol variant "
        "(attrs protocols: nvos, nvos_nearest, nvos_largest or spin per row); written by evaluate_prompt.",
        ("protocols", "summary"),
        iou=ArraySpec("float32", ("R",), doc="IoU of the rendered mask on the target view"),
        accuracy=ArraySpec("float32", ("R",), doc="pixel accuracy on the target view"),
        instance=ArraySpec("int32", ("R",), doc="ground-truth instance id of the prompted object"),
        reference_view=ArraySpec("int32", ("R",), required=False, doc="view the prompt points lie on"),
        target_view=ArraySpec("int32", ("R",), required=False, doc="view the rendered mask is scored on"),
        view_angle=ArraySpec("float32", ("R",), required=False,
                             doc="degrees between the reference and target cameras' optical axes"),
        precision=ArraySpec("float32", ("R",), required=False, doc="|P & G| / |P| on the target view"),
        recall=ArraySpec("float32", ("R",), required=False, doc="|P & G| / |G| on the target view"),
    )
)

SEMANTIC_METRICS = register(
    _spec(
        "semantic_metrics",
        "3D (ScanNet protocol) and 2D (LERF protocol) segmentation metrics; written by evaluate_semantic.",
        ("categories", "miou_3d", "macc_3d", "miou_2d"),
        confusion_3d=ArraySpec("int64", ("C", "C1"), doc="rows GT, columns prediction, last column unlabelled"),
        query_iou_2d=ArraySpec("float32", ("Qn",), doc="per text query, mean over annotated views"),
        query_localization_2d=ArraySpec("float32", ("Qn",), required=False,
                                        doc="per text query, LERF localization accuracy over annotated views"),
        confusion_ovs=ArraySpec("int64", ("Co", "Co1"), required=False,
                                doc="3D-OVS protocol: rows GT, columns prediction over attrs['ovs_classes'], last miss"),
        points_pred_3d=ArraySpec("int32", ("P",), required=False,
                                 doc="19-class prediction per scan point (index into attrs['categories']), -1 none"),
        query_views_2d=ArraySpec("int32", ("Qn",), required=False,
                                 doc="per text query (attrs['queries']), the scene view of query_masks_2d: the first "
                                     "test view whose ground truth shows it; -1 none"),
        query_masks_2d=ArraySpec("uint8", ("Qn", "H", "W"), chunks=(1, None, None), required=False,
                                 doc="per text query, the method's selection (0/1) on query_views_2d (figures)"),
        confusion_long_tail_40=ArraySpec("int64", (40, 41), required=False,
                                         doc="long-tail protocol, K = 40: rows GT, columns prediction over the first "
                                             "40 of attrs['long_tail_vocabulary'], last miss"),
        confusion_long_tail_80=ArraySpec("int64", (80, 81), required=False,
                                         doc="long-tail protocol, K = 80: rows GT, columns prediction over the first "
                                             "80 of attrs['long_tail_vocabulary'], last miss"),
        confusion_long_tail_160=ArraySpec("int64", (160, 161), required=False,
                                          doc="long-tail protocol, K = 160: rows GT, columns prediction over the first "
                                              "160 of attrs['long_tail_vocabulary'], last miss"),
    )
)

INSTANCE_METRICS = register(
    _spec(
        "instance_metrics",
        "Class-agnostic instance-segmentation scores (Gaga's protocol); written by evaluate_instances.",
        ("rows", "columns"),
        scores=ArraySpec("float32", ("R", 4), doc="per row (attrs['rows']: protocol, scheme): mIoU, precision, "
                                                  "recall at IoU 0.5, mBIoU; fractions"),
    )
)

CAPABILITY = register(
    _spec(
        "capability",
        "Per-model, per-class capability of 2D open-vocabulary models (SAS Eq. 3-5: mean IoU against the pseudo masks "
        "of synthesised single-object images); written by the capability stage.",
        ("source", "oracle", "models", "model_params", "vocabulary", "images_per_class"),
        capability=ArraySpec("float32", ("Mo", "C"), doc="rows attrs['models'], columns attrs['vocabulary']; in [0, 1], "
                                                         "NaN for a class without any pseudo mask"),
        images=ArraySpec("int32", ("C",), doc="synthesised images with a pseudo mask, per class"),
    )
)

DISTILLED_POINTS = register(
    _spec(
        "distilled_points",
        "Per-point features of SAS's distilled 3D network (Sec. 3.4: superpoint distillation and temporal-ensembling "
        "self-distillation from the fused 2D point features); written by the distill stage.",
        ("backend", "schedule", "vocabulary", "losses", "voxel_size", "superpoint_source", "num_superpoints",
         "seconds_per_epoch", "points_per_second"),
        point_features=ArraySpec("float32", ("P", "D"), (65536, None), finite=True,
                                 doc="aligned with the scene's points_xyz, or with the Gaussian centres when "
                                     "attrs['points_source'] is 'gaussians'"),
        text_features=ArraySpec("float32", ("C", "D"), doc="the vocabulary's text features (attrs['vocabulary'])"),
        long_tail_text_features=ArraySpec("float32", ("Kl", "D"), required=False,
                                          doc="the long-tail K-class vocabulary's text features "
                                              "(attrs['long_tail_vocabulary'], stages.lib.vocabularies)"),
        superpoint=ArraySpec("int32", ("P",), doc="superpoint id 0..L-1 of every point"),
        losses=ArraySpec("float32", ("E", 4), doc="mean loss per epoch, columns attrs['losses'] (Eq. 10, Eq. 13)"),
    )
)

# ----------------------------------------------------------------------------------------------
# Provenance and fingerprints
# ----------------------------------------------------------------------------------------------
def package_version() -> str:
    from stages import __version__

    return __version__


def store_fingerprint(path: str | Path) -> str:
    """The fingerprint recorded in a complete store (a digest of its content and provenance)."""
    return str(open_group(path).attrs["provenance"]["fingerprint"])


def open_group(path: str | Path) -> zarr.Group:
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: store does not exist")
    try:
        return zarr.open_group(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for a broken group
        raise StoreError(f"{path}: not a readable Zarr group ({exc})") from exc


def _resolve_dims(spec: ArraySpec, shape: tuple[int, ...], sizes: dict[str, int], where: str) -> None:
    if len(shape) != len(spec.dims):
        raise StoreError(f"{where}: expected {len(spec.dims)} axes {spec.dims}, got shape {shape}")
    for axis, (dim, n) in enumerate(zip(spec.dims, shape)):
        if isinstance(dim, int):
            if n != dim:
                raise StoreError(f"{where}: axis {axis} must have length {dim}, got {n}")
        elif sizes.setdefault(dim, n) != n:
            raise StoreError(f"{where}: dimension {dim}={n} disagrees with {dim}={sizes[dim]} elsewhere")


def check_finite(data: np.ndarray, where: str) -> None:
    """Reject NaN / inf in an array whose contract says ``finite``, naming the first bad row."""
    rows_of = np.atleast_1d(data)
    bad = ~np.isfinite(rows_of.reshape(rows_of.shape[0], int(np.prod(rows_of.shape[1:])))).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise StoreError(f"{where}: {len(rows)} of {len(bad)} rows hold NaN or inf values (first bad row {rows[0]}: "
                         f"{rows_of[rows[0]].tolist()})")


def _chunks(spec: ArraySpec, shape: tuple[int, ...]) -> tuple[int, ...]:
    if spec.chunks is None:
        return tuple(max(1, s) for s in shape)
    return tuple(max(1, s if c is None else min(c, s)) for c, s in zip(spec.chunks, shape))


_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.bitshuffle)


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------
class StoreWriter:
    """Writes one store atomically; use as a context manager (see ``write_store``)."""

    def __init__(self, kind: str, path: str | Path, stage: str, params: Mapping[str, Any],
                 inputs: Mapping[str, str | Path] | None = None) -> None:
        if kind not in STORES:
            raise KeyError(f"unknown store kind {kind!r}")
        self.spec = STORES[kind]
        self.path = Path(path)
        self.partial = partial_sibling(self.path)
        self.stage = stage
        self.params = dict(params)
        self.inputs = {k: str(v) for k, v in (inputs or {}).items()}
        self.attrs: dict[str, Any] = {}
        self._digest = hashlib.sha256()
        self._group: zarr.Group | None = None

    # -- array access -----------------------------------------------------------------------
    @property
    def group(self) -> zarr.Group:
        if self._group is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._group = zarr.open_group(str(self.partial), mode="w")
        return self._group

    def _array_spec(self, name: str) -> ArraySpec:
        if name not in self.spec.arrays:
            raise StoreError(f"{self.path}: array {name!r} is not part of the {self.spec.kind!r} contract")
        return self.spec.arrays[name]

    def create(self, name: str, shape: tuple[int, ...]) -> zarr.Array:
        """Create an empty array to be filled incrementally (e.g. one view at a time)."""
        spec = self._array_spec(name)
        _resolve_dims(spec, tuple(shape), {}, f"{self.path}/{name}")
        return self.group.create_array(name, shape=tuple(shape), dtype=spec.dtype,
                                       chunks=_chunks(spec, tuple(shape)), compressors=_CODEC,
                                       fill_value=0)

    def write(self, name: str, data: np.ndarray | Any) -> None:
        """Write a whole array, checking its dtype against the contract."""
        spec = self._array_spec(name)
        data = np.asarray(data)
        if data.dtype != np.dtype(spec.dtype):
            raise StoreError(f"{self.path}/{name}: dtype {data.dtype} but the contract says {spec.dtype}")
        if spec.finite:
            check_finite(data, f"{self.path}/{name}")
        arr = self.create(name, data.shape)
        arr[...] = data
        self._digest.update(name.encode())
        self._digest.update(np.ascontiguousarray(data).tobytes())

    # -- finishing --------------------------------------------------------------------------
    def _provenance(self) -> dict[str, Any]:
        inputs = {}
        for key, p in self.inputs.items():
            try:
                inputs[key] = {"path": p, "fingerprint": store_fingerprint(p)}
            except (StoreError, KeyError):
                inputs[key] = {"path": p, "fingerprint": _file_digest(Path(p))}
        digest = self._digest.copy()
        digest.update(json.dumps([self.params, inputs], sort_keys=True, default=str).encode())
        return {
            "stage": self.stage,
            "params": self.params,
            "package_version": package_version(),
            "contract_version": CONTRACT_VERSION,
            "inputs": inputs,
            "fingerprint": digest.hexdigest()[:16],
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        }

    def commit(self) -> None:
        group = self.group
        group.attrs.update(json.loads(json.dumps(self.attrs, default=_json_default)))
        group.attrs.update({"kind": self.spec.kind, "provenance": self._provenance()})
        validate_group(group, self.spec, self.partial, require_complete=False)
        group.attrs[_COMPLETE] = True
        replace_into_place(self.partial, self.path)

    def abort(self) -> None:
        remove(self.partial)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()


def write_store(kind: str, path: str | Path, stage: str, params: Mapping[str, Any],
                inputs: Mapping[str, str | Path] | None = None) -> StoreWriter:
    """Open an atomic writer: ``with write_store("scene", out, "ingest", params) as w: w.write(...)``."""
    return StoreWriter(kind, path, stage, params, inputs)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def _file_digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------
def validate_group(group: zarr.Group, spec: StoreSpec, path: Path, require_complete: bool = True) -> dict[str, int]:
    """Check a group against its contract; returns the resolved dimension sizes."""
    attrs = dict(group.attrs)
    if require_complete and not attrs.get(_COMPLETE):
        raise StoreError(f"{path}: store is incomplete (its writer did not finish); rerun the stage")
    if attrs.get("kind") != spec.kind:
        raise StoreError(f"{path}: expected a {spec.kind!r} store, found kind {attrs.get('kind')!r}")
    for key in spec.attrs:
        if key not in attrs:
            raise StoreError(f"{path}: required attribute {key!r} is missing")
    present = set(group.array_keys())
    sizes: dict[str, int] = {}
    for name, aspec in spec.arrays.items():
        if name not in present:
            if aspec.required:
                raise StoreError(f"{path}: required array {name!r} is missing")
            continue
        arr = group[name]
        if np.dtype(arr.dtype) != np.dtype(aspec.dtype):
            raise StoreError(f"{path}/{name}: dtype {arr.dtype}, contract says {aspec.dtype}")
        _resolve_dims(aspec, tuple(arr.shape), sizes, f"{path}/{name}")
    extra = present - set(spec.arrays)
    if extra:
        raise StoreError(f"{path}: arrays {sorted(extra)} are not part of the {spec.kind!r} contract")
    return sizes


@dataclass
class Store:
    """A validated, read-only store: ``store["images"]`` is a lazy zarr array, ``store.attrs`` a dict."""

    kind: str
    path: Path
    group: zarr.Group
    sizes: dict[str, int]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> zarr.Array:
        return self.group[name]

    def __contains__(self, name: str) -> bool:
        return name in set(self.group.array_keys())

    def load(self, name: str) -> np.ndarray:
        """The whole array; arrays the contract marks ``finite`` are checked for NaN / inf."""
        data = np.asarray(self.group[name][...])
        spec = STORES[self.kind].arrays.get(name)
        if spec is not None and spec.finite:
            check_finite(data, f"{self.path}/{name}")
        return data

    def get(self, name: str) -> np.ndarray | None:
        return self.load(name) if name in self else None

    def keys(self) -> Iterator[str]:
        return iter(sorted(self.group.array_keys()))


def read_store(kind: str, path: str | Path) -> Store:
    """Open and validate a complete store of the given kind."""
    path = Path(path)
    if kind not in STORES:
        raise KeyError(f"unknown store kind {kind!r}")
    group = open_group(path)
    sizes = validate_group(group, STORES[kind], path)
    return Store(kind=kind, path=path, group=group, sizes=sizes, attrs=dict(group.attrs))
