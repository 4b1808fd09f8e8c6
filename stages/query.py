"""Text query of a segmented scene: prints the selected instances and Gaussians, optionally renders the selection.

Example: python -m stages.query --association A.zarr --codebook C.zarr --gaussians G.zarr --text chair \
    --scene S.zarr --view 3 --out chair.png --params '{"mode": "vocabulary"}'
CCL-LGS: python -m stages.query --method ccl --codebook PROTOTYPES.zarr --gaussians FIELD.zarr --text chair \
    --scene S.zarr --view 3 --out chair.png --params '{"threshold": 0.4}'
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

import numpy as np
import torch

from stages.lib.cli import config_from_params, pick_device, run_stage, stage_parser
from stages.lib.instance_gaussians import Cameras
from stages.lib.selection import SelectionConfig
from stages.lib.store import read_store
from stages.methods import lookup
from stages.methods.openins.query import Query, QueryError


def clip_text_encoder(name: str, weights_dir: str | None, device: torch.device):
    """The open_clip text encoder of a registry model, for queries outside the stored vocabulary.

    It must be the model the features stage used (its store's ``model`` attribute), or the embeddings will not
    share a space with the instances' language features.
    """
    from stages.lib.models.clip_features import build_clip
    from stages.lib.weights import ModelChoice

    model = ModelChoice(name)
    return build_clip(model.arch, model.checkpoint(weights_dir), device).encode_text


def main(args: argparse.Namespace) -> None:
    device = pick_device(args.device)
    if args.method != "openins":  # a method with queries of its own (registered kind "query", e.g. ccl)
        encoder = clip_text_encoder(args.clip_model, args.weights_dir, device) if args.clip_model else None
        lookup("query", args.method)(args, device, encoder)
        return
    cfg = config_from_params(SelectionConfig, args.params)
    if args.association is None:
        raise SystemExit("error: the codebook-search query needs --association")
    query = Query.load(args.association, args.codebook, args.gaussians, device=device,
                       encoder=clip_text_encoder(args.clip_model, args.weights_dir, device) if args.clip_model else None)
    try:
        ids, mask = query.select(args.text, cfg.mode, cfg.threshold)
    except QueryError as exc:
        raise SystemExit(f"error: {exc.args[0]}") from exc
    print(f"query {args.text!r} ({cfg.mode}): instances {ids.tolist()}, {int(mask.sum())} of {len(mask)} Gaussians")
    if args.out:
        if args.scene is None:
            raise SystemExit("error: --out needs --scene (and --view) to render the selection")
        cams = Cameras.from_scene(read_store("scene", args.scene), np.array([args.view]), device)
        with torch.no_grad():
            sel = query.render_selection(args.text, cams, **asdict(cfg))
        from PIL import Image

        Image.fromarray(sel[0].cpu().numpy().astype(np.uint8) * 255).save(args.out)
        print(f"wrote {args.out}: {int(sel.sum())} selected pixels")


def parser() -> argparse.ArgumentParser:
    p = stage_parser("query", __doc__)
    p.add_argument("--method", default="openins", help="whose query: openins (codebook search, needs --association) "
                                                        "or a registered query such as ccl")
    p.add_argument("--association", default=None, help="association store (openins)")
    p.add_argument("--codebook", required=True, help="codebook store (ccl: the prototypes store)")
    p.add_argument("--gaussians", required=True, help="feature_gaussians store")
    p.add_argument("--text", required=True, help="the text query (a vocabulary entry, or any text with --clip-model)")
    p.add_argument("--clip-model", default=None, help="weights registry name of the features stage's CLIP model, "
                                                       "to encode text outside the vocabulary")
    p.add_argument("--weights-dir", default=None, help="model checkpoints (default: $OVGS_WEIGHTS or weights/)")
    p.add_argument("--scene", default=None, help="scene store, for rendering")
    p.add_argument("--view", type=int, default=0, help="view index to render")
    p.add_argument("--out", default=None, help="PNG of the rendered selection")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
