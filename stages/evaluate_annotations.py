"""Score predictions of a text-query scene (LERF-OVS, 3D-OVS, LERF-Mask) with the dataset's published 2D protocol.

Input: a ``scene`` store with annotations (readers ``lerf_ovs``, ``3dovs``, ``lerf_mask``) and an ``.npz`` of
predictions in annotation order (``annotation_view`` / ``annotation_query`` of the store):
``masks`` [M,H,W] bool (LERF-OVS, LERF-Mask), ``relevance`` [M,H,W] float (LERF-OVS localization, already smoothed
as the method's protocol wants), ``class_maps`` [A,H,W] int class indices for the A annotated views in increasing
view order (3D-OVS). Output: a CSV table, one row per query plus the labelled means, in percent.

In the DAG the predictions come from a method's text query: the ``text_query`` registered under the name the
parameter ``query`` gives (``stages.lib.annotations.AnnotationPredictor``), built from the input stores; every other
parameter is that query's own. ``openins_codebook`` (default; OpenInsGaussian's codebook search, also SAGA's vote
labels; inputs ``--gaussians``, ``--codebook``, ``--association``; the selection knobs of ``SelectionConfig``): each
annotated (view, query) pair's mask is the rendered selection of the query's instances on that view, its relevance
the rendered per-instance cosine r_k = cos(l_k, t); 3D-OVS: every Gaussian takes its instance's argmax over the
class list, the one-hot labels are rendered and each pixel takes the class of largest weight (-1, a miss, where no
labelled Gaussian covers it), as ``evaluate_semantic``'s ``ovs_2d`` does on label maps. ``protosaga_language``: the
same search over Proto-SaGa's prototype instances, their language fused from the mask features (adds ``--features``
and ``fusion_tau``). ``ccl``: CCL-LGS's decoded field (``--gaussians``, ``--codebook`` = its prototypes store) with
the masks, smoothed relevance and class maps of its own LERF / 3D-OVS protocols.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from stages.lib.annotation_protocols import lerf_mask_scores, lerf_ovs_scores, ovs3d_scores
from stages.lib.annotations import AnnotationPredictor, QueryAnnotations
from stages.lib.cli import StageCall, pick_device, run_stage, stage_inputs, stage_parser
from stages.lib.instance_gaussians import Cameras
from stages.lib.scene import SceneError
from stages.lib.store import read_store
from stages.lib.tables import write_csv_atomic
from stages.methods import lookup

PERCENT = 100.0
NEEDS = {"lerf_ovs": ("masks", "relevance"), "3dovs": ("class_maps",), "lerf_mask": ("masks",)}
INPUTS = ["gaussians", "codebook", "association", "features"]
DEFAULT_QUERY = "openins_codebook"


def load_predictions(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of a predictions ``.npz``; a clear error naming the file otherwise."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [n for n in names if n not in data.files]
            if missing:
                raise SceneError(f"{path}: predictions lack the arrays {missing} (has {sorted(data.files)})")
            return {n: data[n] for n in names}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, SceneError):
            raise
        raise SceneError(f"{path}: not a readable .npz of predictions ({exc})") from exc


def method_predictor(args: argparse.Namespace, device: torch.device) -> AnnotationPredictor:
    """The text query the parameter ``query`` names, built from the stage's input stores with the other parameters."""
    options = dict(args.params)
    build = lookup("text_query", options.pop("query", DEFAULT_QUERY))
    return build(StageCall("evaluate_annotations", stage_inputs(args, INPUTS), dict(args.params), options, device,
                           Path(args.out)))


def score_table(annotations: QueryAnnotations, pred: dict[str, np.ndarray], where: str) -> pd.DataFrame:
    """The protocol's rows: per query, then the means (labelled macro / query-weighted where both exist)."""
    try:
        if annotations.protocol == "lerf_ovs":
            s = lerf_ovs_scores(annotations, pred["masks"].astype(bool), pred["relevance"].astype(np.float64))
            rows = [{"query": q, "mIoU": s["query_iou"][q], "loc. acc": s["query_localization"][q]}
                    for q in s["query_iou"]]
            rows += [{"query": f"mean ({kind})", "mIoU": s[f"mIoU ({kind})"], "loc. acc": s[f"loc. acc ({kind})"]}
                     for kind in ("macro", "query-weighted")]
        elif annotations.protocol == "3dovs":
            views = sorted(set(annotations.view.tolist()))
            maps = pred["class_maps"]
            if len(maps) != len(views):
                raise ValueError(f"class_maps has {len(maps)} maps, the scene {len(views)} annotated views")
            s = ovs3d_scores(annotations, dict(zip(views, maps)))
            rows = [{"query": q, "mIoU": v} for q, v in s["query_iou"].items()]
            rows.append({"query": "mean (over views and classes)", "mIoU": s["mIoU"], "accuracy": s["accuracy"]})
        else:
            s = lerf_mask_scores(annotations, pred["masks"].astype(bool))
            rows = [{"query": q, "mIoU": s["query_iou"][q], "mBIoU": s["query_biou"][q]} for q in s["query_iou"]]
            rows.append({"query": "mean (macro)", "mIoU": s["mIoU"], "mBIoU": s["mBIoU"]})
    except ValueError as exc:
        raise SceneError(f"{where}: {exc}") from exc
    table = pd.DataFrame(rows)
    metrics = [c for c in table.columns if c != "query"]
    table[metrics] = table[metrics] * PERCENT
    table.insert(0, "protocol", annotations.protocol)
    return table.round(2)


def main(args: argparse.Namespace) -> None:
    scene = read_store("scene", args.scene)
    annotations = QueryAnnotations.read(scene)
    if annotations is None:
        raise SceneError(f"{args.scene}: the scene has no text-query annotations (readers lerf_ovs, 3dovs, lerf_mask)")
    if args.predictions is not None:
        pred, where = load_predictions(Path(args.predictions), NEEDS[annotations.protocol]), args.predictions
    elif None not in (args.gaussians, args.codebook):
        device = pick_device(args.device)
        predictor = method_predictor(args, device)
        cams = Cameras.from_scene(scene, np.array(sorted(set(annotations.view.tolist()))), device)
        pred, where = predictor.predict(annotations, cams), args.codebook
    else:
        raise SceneError("evaluate_annotations: give --predictions, or the input stores of a method's text query "
                         "(--gaussians, --codebook and what the query reads: --association, --features)")
    table = score_table(annotations, pred, where)
    table.insert(0, "scene", scene.attrs["scene"])
    table.insert(0, "dataset", scene.attrs["dataset"])
    write_csv_atomic(table, Path(args.out))


def parser() -> argparse.ArgumentParser:
    p = stage_parser("evaluate_annotations", __doc__)
    p.add_argument("--scene", required=True, help="scene store with annotations")
    p.add_argument("--predictions", default=None, help=".npz of predictions in annotation order")
    p.add_argument("--gaussians", default=None, help="feature_gaussians store (after: train_features or pseudo_gt)")
    p.add_argument("--codebook", default=None, help="codebook store (after: codebook)")
    p.add_argument("--association", default=None, help="association store (after: associate; Proto-SaGa: tracks)")
    p.add_argument("--features", default=None, help="features store (Proto-SaGa's text query: after: features)")
    p.add_argument("--out", required=True, help="output CSV table")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
