"""Text queries of SAS's distilled 3D network per Gaussian (``python -m stages.query --method sas``).

SAS labels the scan's points (Sec. 3.5: cosine of the network's point features with the text features, no
post-processing). Our reading for Gaussians: each Gaussian takes the distilled feature of its nearest scan point
(nearest-point transfer; a Gaussian whose centre is a scan point, as in the ScanNet setting with centres fixed at
the points, takes that point's own feature). A Gaussian is selected when the query is its best class over the
distilled store's vocabulary (the query joins the classes when it is outside it and a text encoder is given).

  python -m stages.query --method sas --codebook DISTILLED.zarr --gaussians GAUSSIANS.zarr --scene SCENE.zarr \
      --text chair
(``--codebook``: the ``distilled_points`` store; ``--gaussians``: any store with ``means``; ``--scene``: the scene
whose ``points_xyz`` the distilled features are aligned with.)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.spatial import cKDTree

from stages.lib.open_vocabulary import QueryError, TextEmbedder, TextEncoder
from stages.lib.store import StoreError, open_group, read_store
from stages.methods import register


def gaussian_features(points: np.ndarray, point_features: np.ndarray,
                      means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per Gaussian centre [N, 3]: the feature [N, D] of its nearest point [P, 3] and the distance to it [N]."""
    distance, nearest = cKDTree(points).query(means, k=1)
    return point_features[nearest], distance


def select_gaussians(features: torch.Tensor, embed: TextEmbedder, vocabulary: list[str], text: str) -> torch.Tensor:
    """Boolean [N]: the Gaussians whose best class by cosine over the vocabulary (plus ``text`` when it is not in it)
    is ``text``."""
    known = [name.strip().lower() for name in vocabulary]
    classes = list(vocabulary) if text.strip().lower() in known else [*vocabulary, text]
    class_text = torch.stack([embed(name) for name in classes])
    best = (torch.nn.functional.normalize(features.float(), dim=-1) @ class_text.T).argmax(-1)
    return best == [name.strip().lower() for name in classes].index(text.strip().lower())


@register("query", "sas")
def run_query(args: argparse.Namespace, device: torch.device, encoder: TextEncoder | None) -> None:
    """The query CLI for a distilled SAS network: the selected Gaussians (no rendered mask)."""
    if args.scene is None:
        raise SystemExit("error: the sas query needs --scene (the points the distilled features belong to)")
    if args.out:
        raise SystemExit("error: the sas query selects Gaussians only; --out (a rendered mask) is not supported")
    distilled = read_store("distilled_points", args.codebook)
    points = read_store("scene", args.scene).load("points_xyz")
    point_features = distilled.load("point_features")
    if len(point_features) != len(points):
        raise StoreError(f"{args.codebook}: {len(point_features)} point features for {len(points)} points of "
                         f"{args.scene}")
    group = open_group(args.gaussians)
    if "means" not in group:
        raise StoreError(f"{args.gaussians}: no 'means' array (a Gaussians store is needed)")
    features, distance = gaussian_features(points, point_features, np.asarray(group["means"][:]))
    vocabulary = list(distilled.attrs["vocabulary"])
    embed = TextEmbedder(torch.from_numpy(distilled.load("text_features")).to(device), vocabulary, encoder)
    try:
        selected = select_gaussians(torch.from_numpy(features).to(device), embed, vocabulary, args.text)
    except QueryError as exc:
        raise SystemExit(f"error: {exc.args[0]}") from exc
    print(f"query {args.text!r}: {int(selected.sum())} of {len(selected)} Gaussians (nearest-point transfer, "
          f"median distance {float(np.median(distance)):.3f})")
