"""Features stage: a language embedding per mask (masked square crop fused with pooled dense context) and the
vocabulary's text embeddings, from open_clip or from the oracle embedding space.

Parameters (``--params`` JSON):
  source: "clip" | "oracle"; vocabulary: "scene" (the scene's categories) or a list of names
  templates: prompt templates, "{}" = the name; alpha: crop/context fusion weight (0 = crop only; OpenInsGaussian 0.4)
  crop_size: 224; clip: {model: weights registry name, random_weights: false, tiny: false (random-weight tests
    only: a shrunken tower of the same family), batch_size: 256}
  oracle: {dim: 512, context_stride: 16}; corruption: FeatureCorruption fields (oracle only); seed.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from stages.lib.cli import pick_device, run_stage, stage_parser
from stages.lib.crops import fuse_crop_context, masked_square_crop, pool_in_masks
from stages.lib.mask_store import MaskSet, load_masks
from stages.lib.oracle import embedding as oracle
from stages.lib.oracle.pieces import require_ground_truth
from stages.lib.scene import SceneData, load_scene
from stages.lib.store import write_store
from stages.lib.weights import ModelChoice

log = logging.getLogger(__name__)
DEFAULT_TEMPLATES = ["a {} in a scene", "a photo of a {}.", "there is a {} in the scene"]


def vocabulary(params: dict[str, Any], scene: SceneData) -> list[str]:
    vocab = params.get("vocabulary", "scene")
    names = list(scene.categories) if vocab == "scene" else list(vocab)
    if not names:
        raise ValueError(f"{scene.source}: empty vocabulary (the scene lists no categories; give one in params)")
    return names


def view_masks(masks: MaskSet, view: int) -> tuple[np.ndarray, np.ndarray]:
    """All table rows of one view (every level) and their boolean masks."""
    parts = [masks.masks(view, li) for li in range(len(masks.levels))]
    rows = np.concatenate([r for r, _ in parts])
    return rows, np.concatenate([m for _, m in parts]) if rows.size else np.zeros((0, *masks.labels.shape[2:]), bool)


def oracle_features(scene: SceneData, masks: MaskSet, vocab: list[str], params: dict[str, Any]):
    """Crop and context features from the oracle embedding space, with the configured corruption."""
    require_ground_truth(scene)
    cfg = params.get("oracle", {})
    dim, stride = int(cfg.get("dim", 512)), int(cfg.get("context_stride", 16))
    corruption = oracle.FeatureCorruption(**params.get("corruption", {}))
    rng = np.random.default_rng(params.get("seed", 0))
    crop = np.zeros((masks.num_masks, dim), np.float32)
    context = np.zeros((masks.num_masks, dim), np.float32)
    for view in tqdm(range(scene.num_views), desc="oracle features", unit="view", mininterval=5):
        rows, m = view_masks(masks, view)
        if not rows.size:
            continue
        cats = oracle.majority_category(scene.gt_semantic[view], m)
        crop[rows] = oracle.crop_features(cats, scene.categories, vocab, dim, corruption, rng)
        context[rows] = oracle.context_features(scene.gt_semantic[view], m, scene.categories, dim, stride,
                                                corruption, rng).numpy()
    return torch.from_numpy(crop), torch.from_numpy(context), oracle.encode_names(vocab, dim)


def clip_model(params: dict[str, Any]) -> ModelChoice:
    return ModelChoice.from_params(params.get("clip", {}), "clip_convnext_base")


def clip_features(scene: SceneData, masks: MaskSet, vocab: list[str], params: dict[str, Any], weights_dir, device):
    """Masked square crops through open_clip, dense features pooled in the masks, templated text embeddings."""
    from stages.lib.models.clip_features import build_clip
    cfg = params.get("clip", {})
    choice = clip_model(params)
    model = build_clip(choice.arch, choice.checkpoint(weights_dir), device, random_weights=choice.random_weights,
                       tiny=bool(cfg.get("tiny", False)))
    size = int(params.get("crop_size", 224))
    crops, contexts = [], []
    for view in tqdm(range(scene.num_views), desc="clip features", unit="view", mininterval=5):
        rows, m = view_masks(masks, view)
        if not rows.size:
            continue
        images = np.stack([masked_square_crop(scene.images[view], mask, size) for mask in m])
        crops.append((rows, model.encode_crops(images, batch_size=int(cfg.get("batch_size", 256))).float().cpu()))
        dense = model.dense_features(scene.images[view]).float().cpu()
        contexts.append((rows, pool_in_masks(dense, torch.from_numpy(m))))
    dim = model.embed_dim
    crop, context = torch.zeros(masks.num_masks, dim), torch.zeros(masks.num_masks, dim)
    for rows, f in crops:
        crop[rows] = f
    for rows, f in contexts:
        context[rows] = f
    text = model.encode_vocabulary(vocab, params.get("templates", DEFAULT_TEMPLATES)).float().cpu()
    return crop, context, text


def main(args: argparse.Namespace) -> None:
    params = dict(args.params)
    scene = load_scene(args.scene)
    masks = load_masks(args.masks, (scene.num_views, scene.height, scene.width))
    vocab = vocabulary(params, scene)
    alpha = float(params.get("alpha", 0.0))
    source = params.get("source", "oracle")
    if source == "oracle":
        crop, context, text = oracle_features(scene, masks, vocab, params)
        attrs = {"oracle": True, "corruption": params.get("corruption", {})}
    elif source == "clip":
        crop, context, text = clip_features(scene, masks, vocab, params, args.weights_dir, pick_device(args.device))
        attrs = {"oracle": False, **clip_model(params).attrs()}
    else:
        raise ValueError(f"features source must be 'clip' or 'oracle', got {source!r}")
    fused = fuse_crop_context(crop, context, alpha)
    with write_store("features", args.out, "features", params, {"scene": args.scene, "masks": args.masks}) as w:
        w.write("mask_features", fused.numpy().astype(np.float16))
        w.write("crop_features", crop.numpy().astype(np.float16))
        w.write("context_features", context.numpy().astype(np.float16))
        w.write("text_features", text.numpy().astype(np.float16))
        w.attrs.update(attrs)
        w.attrs.update(source=source, vocabulary=vocab, templates=params.get("templates", DEFAULT_TEMPLATES),
                       alpha=alpha)
    log.info("wrote %d mask features (dim %d, alpha %.2f, %s)", masks.num_masks, text.shape[1], alpha, source)


def parser() -> argparse.ArgumentParser:
    p = stage_parser("features", __doc__)
    p.add_argument("--scene", required=True, help="input scene store")
    p.add_argument("--masks", required=True, help="input masks store")
    p.add_argument("--out", required=True, help="output features store (.zarr)")
    p.add_argument("--weights-dir", default=None, help="model checkpoints (default: $OVGS_WEIGHTS or weights/)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
