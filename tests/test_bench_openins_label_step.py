"""bench/openins_label_step.py: the leaf majority and the split of a mislabelled leaf's fusion weight."""

import numpy as np
import pandas as pd
import pytest

from bench.openins_label_step import leaf_majority, summarise


def test_leaf_majority_over_labelled_points():
    leaf = np.array([0, 0, 0, 1, 1, -1, 2])
    semantic = np.array([2, 2, 1, 0, -1, 1, -1])
    majority, size = leaf_majority(leaf, semantic, 3)
    assert majority.tolist() == [2, 0, -1]  # leaf 2 has no labelled point
    assert size.tolist() == [3, 2, 1]


def test_summarise_splits_the_weight_of_mislabelled_leaves_only():
    table = pd.DataFrame({
        "leaf": [0, 0, 0, 1, 2], "leaf_points": [10, 10, 10, 5, 7], "leaf_class": [0, 0, 0, 1, -1],
        "leaf_label": [2, 2, 2, 1, 0], "view": [0, 1, 2, 0, 0], "score": [0.1, 0.2, 0.3, 0.5, 0.5],
        "weight": [0.2, 0.3, 0.5, 1.0, 1.0],
        "mask_class": [0, 0, 2, 1, 0], "clip_class": [0, 2, 2, 1, 0]})
    out = summarise(table, ["wall", "floor", "chair"])
    assert out.leaf.tolist() == [0]  # leaf 1 is right, leaf 2 has no majority class
    row = out.iloc[0]
    assert (row.leaf_class, row.label, row.views) == ("wall", "chair", 3)
    assert row.weight_mask_right == pytest.approx(0.5) and row.weight_clip_right == pytest.approx(0.2)
    assert row.weight_clip_is_label == pytest.approx(0.8) and row.weight_mask_is_label == pytest.approx(0.5)
    assert row.share_views_clip_right == pytest.approx(1 / 3) and row.max_weight == pytest.approx(0.5)
