"""Known answers of the Proto-SaGa set-purity diagnosis (bench/protosaga_sets.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from bench.protosaga_sets import mask_rows, previous_view_overlaps, summary


def test_mask_rows_give_majority_instance_and_pixel_purity():
    labels = np.array([[0, 0, 0, 1], [0, -1, 1, 1]])
    gt = np.array([[5, 5, 7, 2], [5, 3, 2, -1]])
    rows = mask_rows(labels, gt)
    assert rows[0] == (5, 0.75)  # 3 of mask 0's 4 pixels in instance 5
    assert rows[1][0] == 2 and abs(rows[1][1] - 2 / 3) < 1e-12  # an unlabelled pixel counts against purity


def test_previous_view_overlaps_are_eq12_scores_against_same_and_other_instances():
    t = torch.tensor
    assert previous_view_overlaps({0: (1, t([1, 2, 3, 4]))}, {0: (1, t([3, 4, 9]))}, 10)[0] == (0.5, 0.0)
    assert previous_view_overlaps({0: (1, t([], dtype=torch.long))}, {0: (1, t([1]))}, 10)[0] == (0.0, 0.0)
    previous = {0: (5, t([1, 2, 3])), 1: (7, t([4, 5])), 2: (5, t([6]))}
    current = {3: (5, t([2, 3, 4, 6])), 4: (8, t([9]))}
    joins = previous_view_overlaps(current, previous, 10)
    assert joins[3] == (0.5, 0.25)  # best same-instance set {1,2,3}: 2 of 4; instance 7's {4,5}: 1 of 4
    assert joins[4] == (0.0, 0.0)  # no previous set of instance 8, and no overlap with the others
    assert previous_view_overlaps(current, {}, 10)[3] == (0.0, 0.0)  # the first view has nothing to join


def test_summary_weights_purity_by_gaussians_and_splits_clean_from_mixed_masks():
    common = {"prob_set": 10, "prob_set_pure": 5}
    per_mask = pd.DataFrame([
        {"level": "clean", "view": 0, "mask": 0, "mask_purity": 1.0, "depth_set": 10, "depth_set_pure": 9,
         "semantic_added": 4, "semantic_added_pure": 1, "foreign_classified_as_mask": 3, "has_previous": False,
         "depth_overlap_same": 0.0, "depth_overlap_foreign": 0.0, "prob_overlap_same": 0.0,
         "prob_overlap_foreign": 0.0, **common},
        {"level": "clean", "view": 1, "mask": 1, "mask_purity": 0.95, "depth_set": 30, "depth_set_pure": 30,
         "semantic_added": 0, "semantic_added_pure": 0, "foreign_classified_as_mask": 0, "has_previous": True,
         "depth_overlap_same": 0.05, "depth_overlap_foreign": 0.5, "prob_overlap_same": 0.6,
         "prob_overlap_foreign": 0.1, "prob_set": 20, "prob_set_pure": 19},
        {"level": "clean", "view": 1, "mask": 0, "mask_purity": 0.5, "depth_set": 8, "depth_set_pure": 4,
         "semantic_added": 2, "semantic_added_pure": 2, "foreign_classified_as_mask": 0, "has_previous": True,
         "depth_overlap_same": 0.2, "depth_overlap_foreign": 0.0, "prob_overlap_same": 0.0,
         "prob_overlap_foreign": 0.3, **common},
    ])
    table = summary(per_mask).set_index("masks")
    assert table.loc["clean", "count"] == 2 and table.loc["mixed", "count"] == 1
    assert table.loc["clean", "depth_set_purity"] == 39 / 40
    assert table.loc["clean", "semantic_added_purity"] == 1 / 4
    assert table.loc["clean", "semantic_added_size"] == 2.0
    assert table.loc["clean", "foreign_classified_as_mask"] == 1.0  # all 3 foreign additions taken for the mask
    assert table.loc["mixed", "depth_set_purity"] == 0.5
    assert table.loc["clean", "prob_set_purity"] == 24 / 30
    # joins over the masks of later views only (the first view's mask is left out), strictly above delta = 0.1
    assert table.loc["clean", "depth_set_joins_same"] == 0.0 and table.loc["clean", "depth_set_joins_foreign"] == 1.0
    assert table.loc["clean", "prob_set_joins_same"] == 1.0 and table.loc["clean", "prob_set_joins_foreign"] == 0.0
    assert table.loc["mixed", "prob_set_joins_foreign"] == 1.0
