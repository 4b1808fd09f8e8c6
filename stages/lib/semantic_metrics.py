"""Semantic-segmentation metrics: confusion matrices, mIoU / mAcc (ScanNet 3D protocol and the long-tail K-class
protocol), LERF 2D query metrics, the point-to-Gaussian correspondence of the 3D protocol and codebook purity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.lib.vocabularies import LONG_TAIL, LONG_TAIL_NAMES, LONG_TAIL_SIZES, category_lut

SCANNET19 = ["wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
             "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub"]
# The class subsets of the OpenGaussian / OpenInsGaussian ScanNet protocol (supplement B.4).
SCANNET_SUBSETS: dict[int, list[str]] = {
    19: SCANNET19,
    15: ["wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "counter",
         "desk", "curtain", "toilet", "sink"],
    10: ["wall", "floor", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "toilet"],
}


@dataclass
class SemanticResult:
    """What a semantic evaluation measured: a confusion [C, C+1] per ScanNet class subset, the IoU of every LERF text
    query, and optionally per-query localization accuracy, the 3D-OVS confusion over its class list and (methods with
    per-point features) a confusion [K, K+1] per long-tail vocabulary (``long_tail_confusions``)."""

    confusions: dict[int, np.ndarray]
    query_iou: dict[str, float]
    localization: dict[str, float] | None = None
    ovs_classes: list[str] | None = None
    ovs_confusion: np.ndarray | None = None
    points_protocol: str = "nearest_gaussian"  # how the scan's points got labels (SCAN_POINTS / NEAREST_GAUSSIAN / ...)
    purity: "Purity | None" = None
    codebook_oracle: dict[int, np.ndarray] | None = None  # confusions with every cluster labelled by its GT majority
    point_labels: np.ndarray | None = None  # [P] index into the 19 ScanNet classes per scan point, -1 none (figures)
    query_masks: "QueryMasks | None" = None  # per LERF query, its selection on the first test view showing it (figures)
    long_tail: dict[int, np.ndarray] | None = None  # K -> confusion over LONG_TAIL[K] (K = 40 / 80 / 160)


@dataclass
class QueryMasks:
    """Per text query of the LERF protocol, the method's selection mask on the first test view whose ground truth shows
    the query (the view is the same for every method, so a figure can set the methods' masks side by side).

    Views are positions among the scene's test views (``is_test`` order); ``keep`` ignores every later view.
    """

    views: dict[str, int]
    masks: dict[str, np.ndarray]

    @classmethod
    def empty(cls) -> "QueryMasks":
        return cls({}, {})

    def keep(self, query: str, view: int, mask: np.ndarray) -> None:
        """Keep ``mask`` [H, W] as ``query``'s selection on test view ``view`` unless an earlier view's is kept."""
        if query not in self.views or view < self.views[query]:
            self.views[query], self.masks[query] = int(view), np.asarray(mask, dtype=bool)

    def arrays(self, queries: list[str], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """([Qn] test-view position, -1 for a query without a mask; [Qn, H, W] uint8 masks) in ``queries`` order."""
        views = np.array([self.views.get(q, -1) for q in queries], np.int32)
        masks = np.zeros((len(queries), *shape), np.uint8)
        for i, q in enumerate(queries):
            if q in self.masks:
                masks[i] = self.masks[q]
        return views, masks


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """C[g, p] = samples of ground-truth class g predicted as p, shape [C, C+1]; column C counts invalid predictions
    (unlabelled / outside the vocabulary, a miss); gt < 0 is ignored."""
    keep = (gt >= 0) & (gt < num_classes)
    pred = np.where((pred >= 0) & (pred < num_classes), pred, num_classes)  # out-of-range = a miss
    flat = gt[keep].astype(np.int64) * (num_classes + 1) + pred[keep]
    cm = np.bincount(flat, minlength=num_classes * (num_classes + 1)).reshape(num_classes, num_classes + 1)
    return cm


def miou_macc(cm: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """mIoU and mAcc over the classes present in the ground truth (rows with samples).

    IoU_c = TP / (TP + FP + FN), Acc_c = TP / (TP + FN); ``cm`` is [C, C(+1 miss column)].
    """
    num_classes = cm.shape[0]
    tp = np.diag(cm[:, :num_classes]).astype(np.float64)
    gt_count = cm.sum(axis=1).astype(np.float64)
    pred_count = cm[:, :num_classes].sum(axis=0).astype(np.float64)
    present = gt_count > 0
    iou = np.full(num_classes, np.nan)
    acc = np.full(num_classes, np.nan)
    iou[present] = tp[present] / (gt_count + pred_count - tp)[present]
    acc[present] = tp[present] / gt_count[present]
    return float(np.nanmean(iou)), float(np.nanmean(acc)), iou, acc


def subset_labels(labels: np.ndarray, vocabulary: list[str], subset: list[str]) -> np.ndarray:
    """Map vocabulary ids to subset ids; classes outside the subset become -1 (ignored)."""
    lut = np.array([subset.index(name) if name in subset else -1 for name in vocabulary] + [-1])
    return lut[np.where(labels < 0, len(vocabulary), labels)]


def long_tail_confusions(point_feats: np.ndarray, seen: np.ndarray, text: np.ndarray, points_semantic: np.ndarray,
                         categories: list[str], chunk: int = 65536) -> dict[int, np.ndarray]:
    """The long-tail K-class protocol (SAS Table 2, ``stages.lib.vocabularies``): confusion [K, K+1] per K in
    ``LONG_TAIL_SIZES``, each seen point predicted as its argmax of cosine over the first K of ``text`` [160, D] (the
    text features of ``LONG_TAIL_NAMES``, nested vocabularies), unseen points a miss; GT ``points_semantic`` indexes
    ``categories`` (-1 and categories outside the vocabulary ignored). ``miou_macc`` then averages over the
    vocabulary classes present in the GT."""
    if len(text) != len(LONG_TAIL_NAMES):
        raise ValueError(f"long-tail text features: need {len(LONG_TAIL_NAMES)} rows, got {len(text)}")
    unit = text / np.linalg.norm(text, axis=-1, keepdims=True)
    pred = {k: np.empty(len(point_feats), np.int64) for k in LONG_TAIL_SIZES}
    for start in range(0, len(point_feats), chunk):
        sims = np.asarray(point_feats[start:start + chunk], np.float64) @ unit.T
        for k in LONG_TAIL_SIZES:
            pred[k][start:start + chunk] = sims[:, :k].argmax(-1)
    out = {}
    for k in LONG_TAIL_SIZES:
        lut = category_lut(categories, LONG_TAIL[k])
        gt = lut[np.where(points_semantic < 0, len(categories), points_semantic)]
        out[k] = confusion_matrix(gt, np.where(seen, pred[k], -1), k)
    return out


def present_classes(gt: np.ndarray, categories: list[str]) -> list[str]:
    """The 3D-OVS protocol's class list on label maps ``gt`` (indices into ``categories``, -1 unlabelled): the
    categories present, in category order."""
    return [categories[int(c)] for c in np.unique(gt) if c >= 0]


def class_list_confusion(gt: np.ndarray, pred: np.ndarray, categories: list[str], classes: list[str]) -> np.ndarray:
    """3D-OVS protocol confusion [C, C+1] over ``classes``: ``gt`` label maps index ``categories`` (-1 and categories
    outside ``classes`` ignored), ``pred`` class maps index ``classes`` (-1: a miss)."""
    return confusion_matrix(subset_labels(gt, categories, classes), pred, len(classes))


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, gt).sum() / union)


def lerf_query_metrics(ious: np.ndarray, thresholds: tuple[float, ...] = (0.25, 0.5)) -> dict[str, float]:
    """LERF protocol over text queries: mIoU and mAcc@t = fraction of queries whose mask IoU exceeds t."""
    ious = np.asarray(ious, dtype=np.float64)
    out = {"mIoU": float(ious.mean())}
    out.update({f"mAcc@{t}": float((ious > t).mean()) for t in thresholds})
    return out


def localization_hit(relevance: np.ndarray, gt: np.ndarray, boxes: np.ndarray | None = None) -> bool:
    """LERF localization: the pixel of highest relevance [H,W] lies inside the tight box of the GT mask [H,W], or,
    given annotated ``boxes`` [B,4] (x1, y1, x2, y2, LERF-OVS), inside one of them, borders included (first pixel in
    row-major order on ties; an empty GT mask without boxes is a miss)."""
    if boxes is None or len(boxes) == 0:
        ys, xs = np.nonzero(gt)
        if ys.size == 0:
            return False
        boxes = np.array([[xs.min(), ys.min(), xs.max(), ys.max()]], np.float64)
    y, x = np.unravel_index(int(np.argmax(relevance)), relevance.shape)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    x_lo, x_hi = np.minimum(b[:, 0], b[:, 2]), np.maximum(b[:, 0], b[:, 2])
    y_lo, y_hi = np.minimum(b[:, 1], b[:, 3]), np.maximum(b[:, 1], b[:, 3])
    return bool(((x_lo <= x) & (x <= x_hi) & (y_lo <= y) & (y <= y_hi)).any())


# ----------------------------------------------------------------------------------------------
# Which Gaussian labels which scan point (3D protocol), and codebook purity
# ----------------------------------------------------------------------------------------------
SCAN_POINTS = "scan_points"  # Gaussian i is point i (train_gs fixed_points: the paper's ScanNet setting)
NEAREST_GAUSSIAN = "nearest_gaussian"  # each point takes the label of its nearest Gaussian centre


def points_protocol(points: np.ndarray, means: np.ndarray) -> str:
    """SCAN_POINTS when the Gaussian centres are exactly the scan's points in order, else NEAREST_GAUSSIAN."""
    same = means.shape == points.shape and np.array_equal(means, np.asarray(points, dtype=means.dtype))
    return SCAN_POINTS if same else NEAREST_GAUSSIAN


def gaussian_of_points(points: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, str]:
    """Index of the Gaussian that labels every scan point, and the protocol: the point itself under SCAN_POINTS,
    else the nearest centre (cKDTree)."""
    protocol = points_protocol(points, means)
    if protocol == SCAN_POINTS:
        return np.arange(len(points)), protocol
    from scipy.spatial import cKDTree

    return cKDTree(means).query(points, k=1)[1], protocol


def gaussian_instances(means: np.ndarray, points: np.ndarray, points_instance: np.ndarray) -> np.ndarray:
    """Ground-truth instance of every Gaussian: its own point's under SCAN_POINTS, else its nearest scan point's."""
    if points_protocol(points, means) == SCAN_POINTS:
        return np.asarray(points_instance)
    from scipy.spatial import cKDTree

    return np.asarray(points_instance)[cKDTree(points).query(means, k=1)[1]]


@dataclass
class Purity:
    """Codebook purity (see ``codebook_purity``)."""

    purity: float            # mean over clusters of (majority-instance members / members)
    purity_weighted: float   # the same, each cluster weighted by its members (= majority members / all members)
    clusters: int            # clusters with at least one Gaussian of a GT instance
    gt_instances: int        # GT instances with at least one clustered Gaussian
    instances_majority: int  # GT instances that are the majority of at least one cluster (the others are swallowed)
    majority: np.ndarray     # [clusters] majority GT instance of each cluster, in the order of ``cluster_ids``
    cluster_ids: np.ndarray  # [clusters]

    def as_dict(self) -> dict[str, float | int]:
        return {k: getattr(self, k) for k in ("purity", "purity_weighted", "clusters", "gt_instances",
                                              "instances_majority")}


def codebook_purity(cluster: np.ndarray, instance: np.ndarray) -> Purity:
    """Purity of a clustering of Gaussians against their GT instances.

    Only Gaussians with a cluster (>= 0) and a GT instance (>= 0) count. For cluster k with n_k such Gaussians, of
    which m_k belong to its most frequent GT instance (ties: the smallest id), purity_k = m_k / n_k; ``purity`` is
    the unweighted mean over clusters (a small impure cluster counts as much as a large one) and ``purity_weighted``
    = sum m_k / sum n_k (a Gaussian-weighted mean).
    """
    cluster, instance = np.asarray(cluster, np.int64), np.asarray(instance, np.int64)
    keep = (cluster >= 0) & (instance >= 0)
    if not keep.any():
        raise ValueError("no Gaussian has both a cluster and a ground-truth instance")
    pairs, counts = np.unique(np.stack([cluster[keep], instance[keep]], 1), axis=0, return_counts=True)
    cluster_ids = np.unique(pairs[:, 0])
    order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))  # per cluster: largest count first, then smallest id
    pairs, counts = pairs[order], counts[order]
    starts = np.searchsorted(pairs[:, 0], cluster_ids)
    members = np.add.reduceat(counts, starts)
    majority_count, majority = counts[starts], pairs[starts, 1]
    return Purity(purity=float(np.mean(majority_count / members)),
                  purity_weighted=float(majority_count.sum() / members.sum()), clusters=len(cluster_ids),
                  gt_instances=len(np.unique(instance[keep])), instances_majority=len(np.unique(majority)),
                  majority=majority, cluster_ids=cluster_ids)
