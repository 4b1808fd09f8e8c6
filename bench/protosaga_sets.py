"""Where Proto-SaGa's memory bank takes foreign Gaussians: purity of the depth set (Eq. 10) and of what the semantic
set adds to it (Eq. 15 minus Eq. 10), per train-view mask, against the ground truth.

Reads a ``bench.protosaga`` work folder (``--work``: ``scene.zarr`` and ``<level>/{masks,train_features}.zarr`` of
each level). Each Gaussian takes the GT instance of its nearest scene point
(``semantic_metrics.gaussian_instances``); each mask its majority GT instance over its pixels (``mask purity``: the
fraction of its pixels in that instance; an under-segmented mask has a low one). A set's purity is the fraction of
its Gaussians whose GT instance is the mask's majority instance. Rows per (level, mask kind: clean masks with mask
purity >= 0.9, or mixed ones): the masks, the mean sizes of G^d and of G^s minus G^d, both purities (Gaussian-
weighted), and the fraction of the foreign additions that the view's classifier assigns to the mask itself (argmax
of Eq. 14 = t: the classifier confuses them, rather than the rank filling up with improbable ones). If the semantic
set's additions are much less pure than the depth set on clean masks, the semantic set is what joins instances in
the bank. For the depth set G^d and the probability set G^s alone (the paper's Table 3 first and middle rows) it also
scores what the bank does with them: how often a mask's set overlaps (Eq. 12, above delta) a previous train view's
set of the same GT instance (it can rejoin its instance's entry) and of another instance (it can join a foreign
one).

    python -m bench.protosaga --smoke --feature-iterations 300 --levels clean,moderate,strong --work /tmp/ps \\
        --scene-options '{"num_views": 32, "width": 48, "height": 36, "num_points": 3000, "num_objects": 8, \\
        "device": "cpu", "seed": 0}' --out /tmp/ps.csv
    python -m bench.protosaga_sets --work /tmp/ps --levels clean,moderate,strong --out bench/results/protosaga_sets.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from stages.lib.gaussians import PARAM_KEYS, activated
from stages.lib.mask_store import load_masks
from stages.lib.projection import mask_of_gaussians, project_centres
from stages.lib.semantic_metrics import gaussian_instances
from stages.lib.store import read_store
from stages.methods.protosaga.classifiers import gaussian_probabilities
from stages.methods.protosaga.memory_bank import (
    BankConfig,
    MemoryBank,
    depth_set,
    own_probabilities,
    semantic_set,
)
from stages.methods.protosaga.objective import stored_classifiers

CLEAN_MASK_PURITY = 0.9


def mask_rows(labels: np.ndarray, gt: np.ndarray) -> dict[int, tuple[int, float]]:
    """Per mask id of a view: (majority GT instance over its pixels, fraction of its pixels in it)."""
    out = {}
    for t in np.unique(labels[labels >= 0]):
        inst = gt[labels == t]
        inst = inst[inst >= 0]
        if len(inst) == 0:
            continue
        ids, counts = np.unique(inst, return_counts=True)
        out[int(t)] = (int(ids[counts.argmax()]), float(counts.max() / (labels == t).sum()))
    return out


def previous_view_overlaps(sets: dict[int, tuple[int, Tensor]], previous: dict[int, tuple[int, Tensor]],
                           num_gaussians: int) -> dict[int, tuple[float, float]]:
    """Per mask of a view: the highest Eq. 12 overlap (``MemoryBank.overlap``, one entry per previous-view set) of
    its set with a set of the previous train view whose mask has the same majority GT instance, and the highest with
    one of another instance (0 where there is none)."""
    bank = MemoryBank(num_gaussians)
    for _, members in previous.values():
        bank.add(members)
    majors = torch.tensor([major for major, _ in previous.values()], dtype=torch.long)
    out = {}
    for t, (major, mine) in sets.items():
        gamma = bank.overlap(mine)  # one score per previous-view set, in their order
        same, foreign = gamma[majors == major], gamma[majors != major]
        out[t] = (float(same.max()) if len(same) else 0.0, float(foreign.max()) if len(foreign) else 0.0)
    return out


def level_sets(work: Path, level: str, cfg: BankConfig) -> pd.DataFrame:
    """One row per (train view, mask): mask purity, |G^d|, |G^s - G^d|, |G^s|, how many of each are the mask's
    majority instance, how many foreign additions the view's classifier assigns to the mask, and for G^d and G^s
    alone the highest Eq. 12 overlap with a previous-view set of the same and of another GT instance."""
    scene = read_store("scene", work / "scene.zarr")
    store = read_store("feature_gaussians", work / level / "train_features.zarr")
    v, h, w = scene.sizes["V"], scene.sizes["H"], scene.sizes["W"]
    masks = load_masks(work / level / "masks.zarr", (v, h, w))
    means = activated({k: torch.from_numpy(store.load(k)) for k in PARAM_KEYS})["means"]
    features = torch.from_numpy(store.load("features"))
    g_inst = torch.from_numpy(gaussian_instances(means.numpy(), scene.load("points_xyz"),
                                                 scene.load("points_instance")))
    gt = scene.load("gt_instance")
    train = np.nonzero(~scene.load("is_test"))[0]
    classifiers = stored_classifiers(store, train.tolist())
    w2c, intr = torch.from_numpy(scene.load("world_to_camera")), torch.from_numpy(scene.load("intrinsics"))
    rows = []
    previous: dict[str, dict[int, tuple[int, Tensor]]] = {"depth": {}, "prob": {}}
    for k, view in enumerate(train):
        labels = masks.labels[view, 0]
        pixel, depth = project_centres(means, w2c[view], intr[view], w, h)
        mask_of = mask_of_gaussians(pixel, torch.from_numpy(labels))
        weights, row_ids = classifiers[k]
        if len(row_ids) == 0:  # a view whose masks are all empty: nothing to score, nothing for the next to join
            previous = {"depth": {}, "prob": {}}
            continue
        own = own_probabilities(features, mask_of, weights, row_ids, cfg.tau)
        argmax = row_ids.long()[gaussian_probabilities(features, weights, cfg.tau).argmax(1)]
        d_set = depth_set(mask_of, depth, cfg.delta_d)
        p_set = semantic_set(mask_of, own, cfg.semantic_delta)
        s_added = p_set & ~d_set
        majors = mask_rows(labels, gt[view])
        current = {name: {t: (major, (chosen & (mask_of == t)).nonzero()[:, 0])
                          for t, (major, _) in majors.items()} for name, chosen in (("depth", d_set), ("prob", p_set))}
        joins = {name: previous_view_overlaps(current[name], previous[name], len(means)) for name in current}
        for t, (major, purity) in majors.items():
            mine = mask_of == t
            d, s, p = d_set & mine, s_added & mine, p_set & mine
            foreign = s & (g_inst != major)
            rows.append({"level": level, "view": int(view), "mask": t, "mask_purity": purity,
                         "depth_set": int(d.sum()), "depth_set_pure": int((d & (g_inst == major)).sum()),
                         "semantic_added": int(s.sum()), "semantic_added_pure": int((s & (g_inst == major)).sum()),
                         "prob_set": int(p.sum()), "prob_set_pure": int((p & (g_inst == major)).sum()),
                         "foreign_classified_as_mask": int((foreign & (argmax == t)).sum()),
                         "has_previous": k > 0,
                         **{f"{name}_overlap_{kind}": joins[name][t][i] for name in joins
                            for i, kind in enumerate(("same", "foreign"))}})
        previous = current
    return pd.DataFrame(rows)


def summary(per_mask: pd.DataFrame, delta: float = BankConfig.delta) -> pd.DataFrame:
    """Per (level, mask kind): masks, mean set sizes and Gaussian-weighted purities; and for G^d and G^s alone, over
    the masks of every train view but the first, the fraction whose set overlaps (Eq. 12) a previous-view set of
    the same GT instance by more than delta (it can rejoin its instance's entry) and of another instance (it can
    join a foreign entry)."""
    per_mask = per_mask.assign(kind=np.where(per_mask["mask_purity"] >= CLEAN_MASK_PURITY, "clean", "mixed"))
    out = []
    for (level, kind), g in per_mask.groupby(["level", "kind"], sort=False):
        later = g[g["has_previous"]]
        out.append({"level": level, "masks": kind, "count": len(g), "mask_purity": g["mask_purity"].mean(),
                    "depth_set_size": g["depth_set"].mean(), "semantic_added_size": g["semantic_added"].mean(),
                    "depth_set_purity": g["depth_set_pure"].sum() / max(g["depth_set"].sum(), 1),
                    "semantic_added_purity": g["semantic_added_pure"].sum() / max(g["semantic_added"].sum(), 1),
                    "prob_set_purity": g["prob_set_pure"].sum() / max(g["prob_set"].sum(), 1),
                    "foreign_classified_as_mask": g["foreign_classified_as_mask"].sum()
                    / max((g["semantic_added"] - g["semantic_added_pure"]).sum(), 1),
                    **{f"{name}_set_joins_{kind_}": float((later[f"{name}_overlap_{kind_}"] > delta).mean())
                       if len(later) else float("nan")
                       for name in ("depth", "prob") for kind_ in ("same", "foreign")}})
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="a bench.protosaga work folder")
    ap.add_argument("--levels", default="clean,moderate,strong")
    ap.add_argument("--delta-d", type=float, default=BankConfig.delta_d)
    ap.add_argument("--note", default="", help="written into every row (e.g. the room)")
    ap.add_argument("--out", type=Path, required=True, help="CSV the summary rows are appended to")
    args = ap.parse_args()
    cfg = BankConfig(delta_d=args.delta_d)
    with torch.no_grad():
        per_mask = pd.concat([level_sets(args.work, lv, cfg) for lv in args.levels.split(",")], ignore_index=True)
    table = summary(per_mask).assign(note=args.note)
    print(table.to_string(index=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, mode="a", header=not args.out.exists(), index=False)


if __name__ == "__main__":
    main()
