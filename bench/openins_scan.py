"""OpenInsGaussian on hard rooms read as ScanNet scans, in the paper's ScanNet setting (recipe ``openins_scannet``).

For every seed: the synthetic hard room (``difficulty: hard``, walk-through, surface cloud) is exported in the ScanNet
layout (``stages.lib.synthetic.scannet_export``), ingested with the ScanNet reader, RGB Gaussians are trained with
``fixed_points`` (one per scan point), and the recipe's later stages run at each oracle corruption level
(``bench.openins.run_level``). Rows: per stage time and peak GPU memory, and per level a ``method_total`` row with 3D
mIoU (the scan's own points), 2D LERF mIoU, codebook purity, the codebook's GT-majority 3D mIoU, feature
separability before and after pseudo-GT, and the per-class 3D and 2D IoU (columns ``iou3d_<class>``,
``iou2d_<class>``). A second CSV (``--classes-out``, default ``<out>_classes.csv``) has per level one row per class
with the sources of its 3D errors (``class_diagnosis``: unobserved Gaussians, codebook, labelling) and how much of
its smoothing mean comes from other instances. ``--reuse-features RUN`` compares codebook / association settings on
the contrastive fields an earlier run trained.

GPU (2 rooms, 150 frames at 640x480):  python -m bench.openins_scan --out bench/results/openins_scan.csv
CPU smoke (tiny room, demo-size schedules):  python -m bench.openins_scan --smoke --out /tmp/openins_scan.csv
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree

from bench.common import REPO, base_row, load_config, recipe_params, timed
from bench.openins import UPSTREAM, run_level
from stages import train_gs
from stages.evaluate_semantic import instance_classes
from stages.ingest import load_source
from stages.lib.feature_field import ViewCameras, load_feature_gaussians
from stages.lib.neighbours import weighted_neighbour_mean
from stages.lib.scene import SceneData, load_scene
from stages.lib.semantic_metrics import SCANNET_SUBSETS, codebook_purity, subset_labels
from stages.lib.store import read_store
from stages.lib.synthetic import SyntheticConfig
from stages.lib.synthetic.scannet_export import export
from stages.methods.openins.association import AssociationConfig
from stages.methods.openins.codebook import CodebookConfig, smoothing_neighbours

# cloud "scan": surface samples that some frame sees (a scan's mesh); pass {"cloud": "surface"} to keep hidden ones
HARD_ROOM = {"difficulty": "hard", "trajectory": "walk", "cloud": "scan", "num_views": 150, "width": 640,
             "height": 480, "num_points": 250000, "test_every": 8, "device": "cuda"}
SMOKE_ROOM = {**HARD_ROOM, "num_views": 16, "width": 48, "height": 36, "num_points": 6000, "device": "cpu"}
# CPU smoke: the demo recipe's stages (openins) at short schedules, on Gaussians fixed at the scan's points.
SMOKE_GS = {"iterations": 60, "sh_degree": 0, "checkpoint_every": 0, "fixed_points": True}
SMOKE_SCHEDULES = {"train_features": {"iterations": 150}, "pseudo_gt": {"iterations": 60}}


def reading_columns(params: dict[str, dict]) -> dict[str, object]:
    """The readings every row names: unit instance features (train_features), Eq. 8's feature distance, the
    association's ``min_score`` and ``fill_min_views``."""
    unit = params["train_features"].get("objective_params", {}).get("unit_features", False)
    assoc = params["associate"]
    return {"unit_features": bool(unit),
            **{k: assoc.get(k, getattr(AssociationConfig, k)) for k in ("feature_distance", "min_score",
                                                                          "fill_min_views")}}


def nearest_own_instance(features: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """Per Gaussian with a GT instance (``instance >= 0``, in order): whether its feature is nearest to its own
    instance's mean feature."""
    keep = instance >= 0
    f, inst = features[keep], instance[keep]
    ids, index = np.unique(inst, return_inverse=True)
    means = np.zeros((len(ids), f.shape[1]))
    np.add.at(means, index, f)
    means /= np.bincount(index)[:, None]
    nearest = np.concatenate([((c[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
                              for c in np.array_split(f, max(1, len(f) // 20_000))])
    return nearest == index


def feature_separability(features: np.ndarray, instance: np.ndarray) -> float:
    """Share of Gaussians (with a GT instance) whose feature is nearest to their own instance's mean feature: how
    well the contrastive field alone separates the instances, before any codebook."""
    return float(nearest_own_instance(features, instance).mean())


def scan_room(work: Path, seed: int, options: dict, gs_params: dict, rows: list[dict], base: dict,
              reuse: bool = False) -> tuple[Path, Path]:
    """Export the hard room as a ScanNet scan, ingest it with the ScanNet reader and train fixed-point Gaussians
    (with ``reuse``, take the ones an earlier run left in ``work``)."""
    work.mkdir(parents=True, exist_ok=True)
    scene, gaussians = work / "scene.zarr", work / "train_gs.zarr"
    if reuse and gaussians.exists():
        seconds = read_store("gaussians", gaussians).attrs["train_seconds"]
        rows.append({**base, "level": "", "stage": "train_gs", "seconds": seconds, "note": "reused"})
        return scene, gaussians
    t0 = time.perf_counter()
    scan = export(SyntheticConfig(seed=seed, **options), work / "scans", f"scene09{seed:02d}_00")
    rows.append({**base, "level": "", "stage": "export_scannet", "seconds": time.perf_counter() - t0})
    t0 = time.perf_counter()
    reader = {"test_every": options.get("test_every", 8)}
    load_source("scannet", str(scan), reader).write(scene, "ingest", reader, "scannet_synthetic", scan.name, "scannet")
    rows.append({**base, "level": "", "stage": "ingest", "seconds": time.perf_counter() - t0})
    timed("train_gs", train_gs.main, train_gs.parser,
          ["--scene", str(scene), "--out", str(gaussians), "--params", json.dumps(gs_params)], rows,
          {**base, "level": ""})
    return scene, gaussians


def weight_quartiles(data: SceneData, features: np.ndarray, weight: np.ndarray, folder: Path) -> dict[str, float]:
    """Separability and 3D label accuracy of the Gaussians in the lowest and highest quartile of their summed
    blending weight over the train views (``ViewCameras.blending_weights``): whether the lost instances are the
    Gaussians that no view constrains strongly (fixed points keep every one of them)."""
    keep = data.points_instance >= 0
    separable = nearest_own_instance(features, data.points_instance)
    correct = read_store("semantic_metrics", folder / "semantic.zarr").load("points_pred_3d") == data.points_semantic
    labelled = data.points_semantic >= 0
    lo, hi = np.quantile(weight[keep], [0.25, 0.75])
    out = {"blend_weight_median": float(np.median(weight[keep])), "blend_weight_zero_share": float((weight < 1e-3).mean())}
    for name, part in (("q1", weight <= lo), ("q4", weight >= hi)):
        out[f"separability_{name}"] = float(separable[part[keep]].mean())
        out[f"label_acc_{name}"] = float(correct[part & labelled].mean())
    return out


def error_sources(right: np.ndarray, observed: np.ndarray, leaf_right: np.ndarray) -> dict[str, float]:
    """Shares of a class's points (bool arrays over them) that are wrong, each counted once, in this order:
    unobserved Gaussian, then a codebook leaf whose majority GT class is another (``leaf_right`` false), then the
    labelling of a right leaf."""
    wrong = ~right
    return {"err_unobserved": float((wrong & ~observed).mean()),
            "err_codebook": float((wrong & observed & ~leaf_right).mean()),
            "err_label": float((wrong & observed & leaf_right).mean())}


def wrong_class_distance(xyz: np.ndarray, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per point: where it is labelled a class other than its GT class (both >= 0), the distance to the nearest point
    whose GT class is the predicted one (how far a wrong label sits from the object it names: a band along that
    object's border, or a distant confusion); NaN elsewhere."""
    out = np.full(len(xyz), np.nan)
    wrong = (pred >= 0) & (gt >= 0) & (pred != gt)
    for c in np.unique(pred[wrong]):
        owners = xyz[gt == c]
        at = wrong & (pred == c)
        out[at] = cKDTree(owners).query(xyz[at])[0] if len(owners) else np.inf
    return out


BORDER_RADII = (0.05, 0.15)  # m: the wrong labels within these distances of the class they name (class_diagnosis)


def class_diagnosis(data: SceneData, params: dict[str, torch.Tensor], weight_t: torch.Tensor,
                    folder: Path) -> pd.DataFrame:
    """Where each class's 3D errors come from, one row per class present on the scan's points (scan_points only).

    Every point of a class is counted once (``error_sources``), in this order: ``err_unobserved`` (its Gaussian's summed blending weight
    over the train views is ~0: no view constrains its feature), ``err_codebook`` (observed, but its codebook leaf's
    majority GT instance is of another class, so even a perfect label per leaf errs: the codebook merged it),
    ``err_label`` (the leaf's majority class is right, the association / labelling step picked another). Beside
    them: ``acc``, ``weak_share`` (lowest weight quartile of all labelled Gaussians), ``acc_weak``, ``acc_hidden``,
    ``wrong_as`` (most frequent wrong class) and ``wrong_as_share``; with the codebook's ``smooth_k``, the
    neighbour-weight share from other GT instances in the smoothing mean (``knn_foreign_weight``: how much of a
    point's smoothed feature comes from e.g. the wall 1 cm behind a picture) and the separability of its raw and
    its smoothed features (``separability_raw``, ``separability_smoothed``); ``wrong_within_5cm`` / ``_15cm``: the share
    of the class's wrong points that lie that close to a point of the class they are labelled (``wrong_class_distance``:
    a border band of the named object, against a distant confusion)."""
    weight = weight_t.cpu().numpy()
    sem, inst = data.points_semantic, data.points_instance
    subset = SCANNET_SUBSETS[19]
    gt = subset_labels(sem, data.categories, subset)
    pred = read_store("semantic_metrics", folder / "semantic.zarr").load("points_pred_3d")
    codebook = read_store("codebook", folder / "codebook.zarr")
    leaf = codebook.load("leaf_id")
    purity = codebook_purity(leaf, inst)
    leaf_class = np.full(int(leaf.max()) + 2, -1, np.int64)
    leaf_class[purity.cluster_ids] = instance_classes(inst, sem)[purity.majority]
    oracle = subset_labels(leaf_class[np.where(leaf >= 0, leaf, -1)], data.categories, subset)
    smooth_k = int(codebook.attrs.get("smooth_k", 0))
    raw = params["features"].detach()
    separable_raw = nearest_own_instance(raw.cpu().numpy(), inst)
    labelled_inst = inst >= 0
    foreign = np.full(len(inst), np.nan)
    separable_smooth = np.full(labelled_inst.sum(), np.nan)
    if smooth_k > 0:
        cfg = CodebookConfig(smooth_k=smooth_k, smooth_gate=codebook.attrs.get("smooth_gate", -1.0),
                             smooth_weak_quantile=codebook.attrs.get("smooth_weak_quantile", 0.0),
                             smooth_plane_tol=codebook.attrs.get("smooth_plane_tol", 0.0))
        neighbours, admit = smoothing_neighbours(raw, params["means"].detach(), weight_t, cfg)
        w = weight_t[neighbours].cpu().numpy() * (1 if admit is None else admit.cpu().numpy())
        other = inst[neighbours.cpu().numpy()] != inst[:, None]
        foreign = (w * other).sum(1) / np.maximum(w.sum(1), 1e-12)
        smoothed = weighted_neighbour_mean(raw, neighbours, weight_t, admit)
        separable_smooth = nearest_own_instance(smoothed.cpu().numpy(), inst)
    distance = wrong_class_distance(data.points_xyz, gt, pred)
    observed, weak = weight >= 1e-3, weight <= np.quantile(weight[gt >= 0], 0.25)
    rows = []
    for c, name in enumerate(subset):
        at = gt == c
        if not at.any():
            continue
        right = pred[at] == c
        wrong_pred = pred[at][~right]
        codes, counts = np.unique(wrong_pred, return_counts=True)
        top = codes[counts.argmax()] if len(codes) else -2
        sep_at = at[labelled_inst]
        rows.append({"class": name, "points": int(at.sum()), "acc": float(right.mean()),
                     **error_sources(right, observed[at], oracle[at] == c),
                     "hidden_share": float((~observed[at]).mean()), "weak_share": float(weak[at].mean()),
                     "acc_hidden": float(right[~observed[at]].mean()) if (~observed[at]).any() else np.nan,
                     "acc_weak": float(right[weak[at]].mean()) if weak[at].any() else np.nan,
                     "wrong_as": subset[top] if top >= 0 else ("none" if top == -1 else ""),
                     "wrong_as_share": float(counts.max() / len(wrong_pred)) if len(codes) else 0.0,
                     "knn_foreign_weight": float(np.nanmean(foreign[at])) if smooth_k > 0 else np.nan,
                     "separability_raw": float(separable_raw[sep_at].mean()),
                     "separability_smoothed": float(separable_smooth[sep_at].mean()),
                     **{f"wrong_within_{round(r * 100)}cm": float((distance[at][~right] <= r).mean()) if (~right).any()
                        else np.nan for r in BORDER_RADII}})
    return pd.DataFrame(rows)


def diagnosis(scene: Path, folder: Path) -> tuple[dict[str, float | str], pd.DataFrame | None]:
    """Per-class 3D / 2D IoU, purity and the stage-wise measures of one level (from its stores), and under the
    scan_points protocol the per-class error sources (``class_diagnosis``)."""
    metrics = read_store("semantic_metrics", folder / "semantic.zarr").attrs
    data = load_scene(scene)
    instance = data.points_instance
    out: dict[str, float | str] = {"points_protocol": metrics["points_protocol"],
                                   "miou_3d_codebook_oracle": metrics.get("miou_3d_codebook_oracle", np.nan)}
    out.update({f"codebook_{k}": v for k, v in metrics.get("codebook_purity", {}).items()})
    for stage in ("train_features", "pseudo_gt"):
        params, _ = load_feature_gaussians(folder / f"{stage}.zarr")
        if len(params["features"]) == len(instance):  # Gaussian i = point i
            out[f"separability_{stage}"] = feature_separability(params["features"].numpy(), instance)
    classes = None
    if len(params["features"]) == len(instance):
        params, _ = load_feature_gaussians(folder / "train_features.zarr",
                                           device="cuda" if torch.cuda.is_available() else "cpu")
        with torch.enable_grad():
            weight = ViewCameras(data, params["means"].device).blending_weights(params, np.flatnonzero(~data.is_test))
        out.update(weight_quartiles(data, params["features"].cpu().numpy(), weight.cpu().numpy(), folder))
        classes = class_diagnosis(data, params, weight, folder)
    out.update({f"iou3d_{k}": v for k, v in metrics["class_iou_3d"].items()})
    query_iou = read_store("semantic_metrics", folder / "semantic.zarr").load("query_iou_2d")
    out.update({f"iou2d_{q}": float(v) for q, v in zip(metrics["queries"], query_iou)})
    return out, classes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="openins_scannet", help="method recipe in config.yaml")
    ap.add_argument("--seeds", default="1,2", help="one hard room per seed")
    ap.add_argument("--levels", default="clean,moderate,strong")
    ap.add_argument("--scene-options", type=json.loads, default=None, help="override room options (JSON)")
    ap.add_argument("--stage-params", type=json.loads, default={},
                    help='per-stage parameter overrides, e.g. {"codebook": {"k_coarse": 32}}')
    ap.add_argument("--smoke", action="store_true", help="tiny room and demo-size schedules on CPU")
    ap.add_argument("--work", type=Path, default=REPO / "results/bench_openins_scan")
    ap.add_argument("--run-name", default="", help="sub-folder for the levels (several settings on one room)")
    ap.add_argument("--reuse-gaussians", action="store_true", help="reuse the room and its RGB Gaussians in --work")
    ap.add_argument("--reuse-features", default=None, metavar="RUN",
                    help="take each level's masks, features and contrastive field from the run named RUN (its "
                         "--run-name, '' for the top folder) on the same room; only the codebook onwards runs")
    ap.add_argument("--reuse-stages", default=",".join(UPSTREAM),
                    help="with --reuse-features, the stages whose stores are taken (e.g. add codebook,pseudo_gt to "
                         "rerun only the association and evaluation)")
    ap.add_argument("--out", required=True, help="CSV to write the rows to")
    ap.add_argument("--classes-out", default=None,
                    help="CSV of the per-class error sources (class_diagnosis); default: --out with _classes")
    args = ap.parse_args()
    classes_out = args.classes_out or str(Path(args.out).with_name(Path(args.out).stem + "_classes.csv"))

    config = load_config()
    if args.smoke:
        params = recipe_params(config, "openins")
        params["train_gs"] = dict(SMOKE_GS)
        for stage, override in SMOKE_SCHEDULES.items():
            params[stage] = {**params[stage], **override}
        options = dict(SMOKE_ROOM)
    else:
        params = recipe_params(config, args.method)
        options = dict(HARD_ROOM, device="cuda" if torch.cuda.is_available() else "cpu")
    options.update(args.scene_options or {})
    for stage, override in args.stage_params.items():
        params[stage] = {**params[stage], **override}
    rows: list[dict] = []
    class_rows: list[pd.DataFrame] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        base = {**base_row(args.method + ("_smoke" if args.smoke else ""), options), "room": f"hard_seed{seed}",
                **reading_columns(params)}
        work = args.work / f"seed{seed}"
        scene, gaussians = scan_room(work, seed, options, params["train_gs"], rows, base, args.reuse_gaussians)
        levels_work = work / args.run_name if args.run_name else work
        for level in args.levels.split(","):
            t_rgb = sum(r["seconds"] for r in rows if r.get("room") == base["room"] and r["stage"] == "train_gs")
            reuse = None if args.reuse_features is None else work / args.reuse_features
            metrics = run_level(level, params, scene, gaussians, levels_work, rows, base, reuse,
                                tuple(args.reuse_stages.split(",")))
            total = t_rgb + sum(r["seconds"] for r in rows if r.get("room") == base["room"] and r.get("level") == level)
            measures, classes = diagnosis(scene, levels_work / level)
            rows.append({**base, "level": level, "stage": "method_total", "seconds": total, **metrics, **measures,
                         "run_name": args.run_name})
            print(json.dumps(rows[-1]), flush=True)
            pd.DataFrame(rows).to_csv(args.out, index=False)
            if classes is not None:
                class_rows.append(classes.assign(**{k: base[k] for k in ("date", "device", "method", "room")},
                                                 level=level, run_name=args.run_name, miou_3d=metrics["miou_3d"]))
                pd.concat(class_rows).to_csv(classes_out, index=False)
    pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
