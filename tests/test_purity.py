"""Codebook purity and the 3D protocol's point-to-Gaussian correspondence, on hand-made assignments."""

import numpy as np
import pytest

from stages.evaluate_semantic import instance_classes
from stages.lib.semantic_metrics import (
    NEAREST_GAUSSIAN,
    SCAN_POINTS,
    codebook_purity,
    gaussian_instances,
    gaussian_of_points,
)


def test_purity_of_a_hand_made_assignment():
    # cluster 0: instances 5,5,5,7 -> 3/4; cluster 2: 7,7 -> 1; cluster 3: 1,2 (tie -> smaller id 1) -> 1/2.
    # The unclustered Gaussian (-1) and the one without a GT instance (-1) do not count.
    cluster = np.array([0, 0, 0, 0, 2, 2, 3, 3, -1, 0])
    instance = np.array([5, 5, 5, 7, 7, 7, 2, 1, 5, -1])
    p = codebook_purity(cluster, instance)
    assert p.purity == pytest.approx((3 / 4 + 1 + 1 / 2) / 3)
    assert p.purity_weighted == pytest.approx((3 + 2 + 1) / 8)
    assert (p.clusters, p.gt_instances, p.instances_majority) == (3, 4, 3)
    assert p.cluster_ids.tolist() == [0, 2, 3] and p.majority.tolist() == [5, 7, 1]


def test_purity_is_one_for_a_perfect_split_and_counts_swallowed_instances():
    instance = np.repeat([3, 4, 9], [5, 2, 4])
    assert codebook_purity(instance * 10, instance).purity == 1.0
    merged = codebook_purity(np.zeros_like(instance), instance)  # one cluster swallows all three
    assert merged.purity == pytest.approx(5 / 11) and merged.instances_majority == 1
    with pytest.raises(ValueError, match="no Gaussian"):
        codebook_purity(np.array([-1, 0]), np.array([1, -1]))


def test_fixed_points_label_their_own_point_and_others_the_nearest_gaussian():
    points = np.array([[0.0, 0, 0], [1, 0, 0], [1.05, 0, 0]], np.float32)
    index, protocol = gaussian_of_points(points, points.copy())
    assert protocol == SCAN_POINTS and index.tolist() == [0, 1, 2]
    moved = points + np.float32(1e-7) * np.array([0, 0, 1], np.float32)
    moved[0, 2] = 1e-3
    assert gaussian_of_points(points, moved)[1] == NEAREST_GAUSSIAN
    # under SCAN_POINTS point 2 keeps Gaussian 2 even where another centre would be as near
    assert gaussian_instances(points, points, np.array([4, 5, 6])).tolist() == [4, 5, 6]
    assert gaussian_instances(np.array([[1.04, 0, 0]], np.float32), points, np.array([4, 5, 6])).tolist() == [6]


def test_instance_class_is_the_majority_class_of_its_points():
    assert instance_classes(np.array([0, 0, 0, 2, -1]), np.array([3, 3, 1, 7, 9])).tolist() == [3, -1, 7]
