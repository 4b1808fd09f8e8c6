"""Known answers of the Proto-SaGa set-purity diagnosis (bench/protosaga_sets.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.protosaga_sets import mask_rows, summary


def test_mask_rows_give_majority_instance_and_pixel_purity():
    labels = np.array([[0, 0, 0, 1], [0, -1, 1, 1]])
    gt = np.array([[5, 5, 7, 2], [5, 3, 2, -1]])
    rows = mask_rows(labels, gt)
    assert rows[0] == (5, 0.75)  # 3 of mask 0's 4 pixels in instance 5
    assert rows[1][0] == 2 and abs(rows[1][1] - 2 / 3) < 1e-12  # an unlabelled pixel counts against purity


def test_summary_weights_purity_by_gaussians_and_splits_clean_from_mixed_masks():
    per_mask = pd.DataFrame([
        {"level": "clean", "view": 0, "mask": 0, "mask_purity": 1.0, "depth_set": 10, "depth_set_pure": 9,
         "semantic_added": 4, "semantic_added_pure": 1, "foreign_classified_as_mask": 3},
        {"level": "clean", "view": 0, "mask": 1, "mask_purity": 0.95, "depth_set": 30, "depth_set_pure": 30,
         "semantic_added": 0, "semantic_added_pure": 0, "foreign_classified_as_mask": 0},
        {"level": "clean", "view": 1, "mask": 0, "mask_purity": 0.5, "depth_set": 8, "depth_set_pure": 4,
         "semantic_added": 2, "semantic_added_pure": 2, "foreign_classified_as_mask": 0},
    ])
    table = summary(per_mask).set_index("masks")
    assert table.loc["clean", "count"] == 2 and table.loc["mixed", "count"] == 1
    assert table.loc["clean", "depth_set_purity"] == 39 / 40
    assert table.loc["clean", "semantic_added_purity"] == 1 / 4
    assert table.loc["clean", "semantic_added_size"] == 2.0
    assert table.loc["clean", "foreign_classified_as_mask"] == 1.0  # all 3 foreign additions taken for the mask
    assert table.loc["mixed", "depth_set_purity"] == 0.5
