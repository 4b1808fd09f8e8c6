"""Codebook stage: cluster the scene into 3D instances with the codebook algorithm of the method's recipe.

Parameters (JSON): ``algorithm`` (a registered ``codebook`` name, default ``openins_two_level``: OpenInsGaussian
Eq. 5-6 on a ``feature_gaussians`` store, ``stages.methods.openins.codebook``) and that algorithm's parameters.
Inputs: whichever upstream stores the variant's ``after:`` names (``gaussians``, ``masks``, ``tracks``,
``features``); the algorithm says which it needs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.lib.cli import StageCall, pick_device, run_stage, stage_inputs, stage_parser
from stages.methods import lookup

DEFAULT_ALGORITHM = "openins_two_level"
INPUTS = ["scene", "gaussians", "masks", "tracks", "features", "mask_scales"]


def main(args: argparse.Namespace) -> None:
    params = dict(args.params)
    options = {k: v for k, v in params.items() if k != "algorithm"}
    algorithm = lookup("codebook", params.get("algorithm", DEFAULT_ALGORITHM))
    algorithm(StageCall("codebook", stage_inputs(args, INPUTS), params, options, pick_device(args.device),
                        Path(args.out)))


def parser() -> argparse.ArgumentParser:
    p = stage_parser("codebook", __doc__)
    p.add_argument("--scene", default=None, help="scene store")
    p.add_argument("--gaussians", default=None, help="feature_gaussians store (after: train_features)")
    p.add_argument("--masks", default=None, help="masks store (after: masks)")
    p.add_argument("--tracks", default=None, help="tracks store (after: track)")
    p.add_argument("--features", default=None, help="features store (after: features)")
    p.add_argument("--mask-scales", dest="mask_scales", default=None, help="mask_scales store (after: mask_scales)")
    p.add_argument("--out", required=True, help="output codebook store (.zarr)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
