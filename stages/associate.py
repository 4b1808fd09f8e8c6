"""Association stage: a language feature for every 3D instance, by the association rule of the method's recipe.

Parameters (JSON): ``rule`` (a registered ``association`` name, default ``openins_eq8``: OpenInsGaussian's Eq. 8
association with cross-view fusion, ``stages.methods.openins.association``) and that rule's parameters.
Inputs: the upstream stores the variant's ``after:`` names; the rule says which it needs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.lib.cli import StageCall, pick_device, run_stage, stage_inputs, stage_parser
from stages.methods import lookup

DEFAULT_RULE = "openins_eq8"
INPUTS = ["scene", "gaussians", "codebook", "masks", "tracks", "features"]


def main(args: argparse.Namespace) -> None:
    params = dict(args.params)
    options = {k: v for k, v in params.items() if k != "rule"}
    rule = lookup("association", params.get("rule", DEFAULT_RULE))
    rule(StageCall("associate", stage_inputs(args, INPUTS), params, options, pick_device(args.device), Path(args.out)))


def parser() -> argparse.ArgumentParser:
    p = stage_parser("associate", __doc__)
    p.add_argument("--scene", required=True, help="scene store (cameras, train/test split)")
    p.add_argument("--gaussians", default=None, help="feature_gaussians store (after: pseudo_gt or train_features)")
    p.add_argument("--codebook", default=None, help="codebook store (leaf_id, fine_centres)")
    p.add_argument("--masks", default=None, help="masks store")
    p.add_argument("--tracks", default=None, help="tracks store (after: track)")
    p.add_argument("--features", default=None, help="features store aligned with the masks")
    p.add_argument("--out", required=True, help="output association store (.zarr)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
