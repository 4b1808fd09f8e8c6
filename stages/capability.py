"""Capability stage (SAS Sec. 3.2, Eq. 3-5): each 2D open-vocabulary model's capability for every vocabulary class,
the mean IoU of its prediction against pseudo masks of synthesised single-object images, in a ``capability`` store.

Parameters (JSON): ``source`` (a registered ``capability_source``: ``oracle``, synthetic single-object images with
exact masks; ``diffusion``, Stable Diffusion 1.5 images with cross-attention + SAM pseudo masks, whose checkpoints
are checked before any work), ``models`` (the 2D models, ``{name, kind, ...}``: ``kind: oracle`` (the default)
``{name, confuse: {class: rate}, into: {class: class}, seed}``, see ``stages.lib.oracle.class_models``; the real
``clip_dense`` and ``sam_clip``, which read pixels and so need the diffusion source, see
``stages.methods.sas.models2d``; their checkpoints are checked before any work),
``vocabulary`` (default: the scene's categories) and the source's own parameters under ``options``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stages.lib.cli import config_from_params, pick_device, run_stage, stage_parser
from stages.lib.store import read_store, write_store
from stages.methods import lookup
from stages.methods.sas.models2d import ModelContext, build_models
from stages.methods.sas.sources import DiffusionSourceConfig, OracleSourceConfig, SourceContext

log = logging.getLogger(__name__)
SOURCE_CONFIGS = {"oracle": OracleSourceConfig, "diffusion": DiffusionSourceConfig}


@dataclass
class CapabilityConfig:
    """The stage's parameters (see the module docstring)."""

    source: str = "oracle"
    models: list[dict[str, Any]] = field(default_factory=list)
    vocabulary: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)


def main(args: argparse.Namespace) -> None:
    cfg = config_from_params(CapabilityConfig, args.params, "capability")
    run = lookup("capability_source", cfg.source)
    if len(cfg.models) < 2:
        raise ValueError(f"capability: SAS fuses at least two 2D models; the parameters name {len(cfg.models)}")
    scene = read_store("scene", args.scene)
    vocabulary = list(cfg.vocabulary or scene.attrs["categories"])
    options = config_from_params(SOURCE_CONFIGS[cfg.source], cfg.options, cfg.source)
    device = pick_device(args.device)
    models = build_models(cfg.models, ModelContext(device, args.weights_dir))
    for m in models:
        m.check(vocabulary)  # unknown class names stop here, before any work
    table, images = run(models, vocabulary, options, SourceContext(device, args.weights_dir))
    with write_store("capability", args.out, "capability", args.params, {"scene": args.scene}) as w:
        w.write("capability", table.astype(np.float32))
        w.write("images", images.astype(np.int32))
        w.attrs.update(source=cfg.source, oracle=cfg.source == "oracle", models=[m.name for m in models],
                       model_params=cfg.models, vocabulary=vocabulary,
                       images_per_class=int(images.max(initial=0)))
    for m, row in zip(models, table):
        log.info("capability of %s: mean %.3f, lowest %s", m.name, float(np.nanmean(row)),
                 ", ".join(f"{vocabulary[k]} {row[k]:.2f}" for k in np.argsort(np.nan_to_num(row, nan=2.0))[:3]))


def parser() -> argparse.ArgumentParser:
    p = stage_parser("capability", __doc__)
    p.add_argument("--scene", required=True, help="input scene store (its categories are the default vocabulary)")
    p.add_argument("--out", required=True, help="output capability store (.zarr)")
    p.add_argument("--weights-dir", default=None, help="model checkpoints (default: $OVGS_WEIGHTS or weights/)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
