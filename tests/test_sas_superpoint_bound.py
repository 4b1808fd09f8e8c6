"""Known answers for bench.sas_superpoint_bound's majority-label bound (scored as evaluate_semantic scores)."""

import numpy as np
import pytest

from bench.sas_superpoint_bound import majority_miou, voxel_segments


def test_majority_bound_leaves_unlabelled_points_out():
    # segment 0: classes 0,0,1 -> 0; segment 1: class 1 -> 1; segment 2: only unlabelled points -> predicts nothing
    segments = np.array([0, 0, 0, 1, 2, 2])
    semantic = np.array([0, 0, 1, 1, -1, -1])
    miou, accuracy = majority_miou(segments, semantic)
    # class 0: TP 2, FP 1 (the class-1 point of segment 0) -> 2/3; class 1: TP 1, FN 1 -> 1/2
    assert miou == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert accuracy == pytest.approx(3 / 4)


def test_voxel_segments_group_points_of_one_cell():
    xyz = np.array([[0.0, 0.0, 0.0], [0.01, 0.01, 0.01], [0.06, 0.0, 0.0]])
    ids = voxel_segments(xyz, 0.05)
    assert ids[0] == ids[1] != ids[2]
