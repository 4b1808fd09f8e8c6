"""stages.lib.neighbours: k nearest centres and the blending-weight-weighted neighbour mean (known answers)."""

import torch

from stages.lib.neighbours import (
    coplanar_neighbours,
    knn_indices,
    local_normals,
    similar_neighbours,
    weighted_neighbour_mean,
)


def test_knn_puts_each_point_first_then_its_nearest():
    xyz = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0], [10.0, 0, 0]])
    assert knn_indices(xyz, 2).tolist() == [[0, 1], [1, 0], [2, 1], [3, 2]]
    assert knn_indices(xyz, 9).shape == (4, 4)  # k is capped at the number of points


def test_weighted_neighbour_mean_by_hand():
    values = torch.tensor([[0.0], [10.0], [20.0], [40.0]])
    neighbours = torch.tensor([[0, 1], [1, 0], [2, 1], [3, 2]])
    weights = torch.tensor([1.0, 3.0, 0.0, 0.0])
    out = weighted_neighbour_mean(values, neighbours, weights)
    # (0*1 + 10*3) / 4; the same pair; only point 1 weighs for point 2; no weight at all: the plain mean (40+20)/2
    assert out[:, 0].tolist() == [7.5, 7.5, 10.0, 30.0]


def test_admitted_neighbours_only_by_hand():
    values = torch.tensor([[0.0], [10.0], [20.0], [40.0]])
    neighbours = torch.tensor([[0, 1], [1, 0], [2, 1], [3, 2]])
    weights = torch.tensor([1.0, 3.0, 0.0, 0.0])
    admit = torch.tensor([[True, False], [True, True], [True, True], [True, False]])
    out = weighted_neighbour_mean(values, neighbours, weights, admit)
    # point 0 alone (weight 1): 0; point 1 as before 7.5; point 2: only point 1 weighs; point 3 alone, no weight: 40
    assert out[:, 0].tolist() == [0.0, 7.5, 10.0, 40.0]


def test_similar_neighbours_by_cosine():
    values = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    neighbours = torch.tensor([[0, 1, 2], [1, 0, 2], [2, 1, 0], [3, 0, 1]])
    admit = similar_neighbours(values, neighbours, 0.7)
    # cos(0,1) = cos(1,2) = 0.707, cos(0,2) = 0; a zero vector is similar to nothing but itself
    assert admit.tolist() == [[True, True, False], [True, True, True], [True, True, False], [True, False, False]]


def wall_and_picture() -> torch.Tensor:
    """A 5x5 grid of wall points on z = 0 (1 cm apart) and two picture points 2 cm in front of it (z = 0.02)."""
    wall = torch.tensor([[x / 100, y / 100, 0.0] for x in range(5) for y in range(5)])
    return torch.cat([wall, torch.tensor([[0.02, 0.02, 0.02], [0.03, 0.02, 0.02]])])


def test_local_normals_of_a_plane():
    means = wall_and_picture()[:25]
    normal = local_normals(means, knn_indices(means, 9))
    assert torch.allclose(normal.abs(), torch.tensor([0.0, 0.0, 1.0]).expand(25, 3), atol=1e-6)


def test_coplanar_neighbours_keep_the_picture_off_the_wall():
    means = wall_and_picture()
    neighbours = knn_indices(means, 27)  # everyone: the neighbourhood's plane is the wall's
    admit = coplanar_neighbours(means, neighbours, 0.005)
    picked = neighbours[12][admit[12]]  # the wall's centre (0.02, 0.02, 0), 2 cm behind the first picture point
    assert len(picked) == 25 and (means[picked, 2] == 0).all()
    assert admit[25].sum() == 2 and (means[neighbours[25][admit[25]], 2] == 0.02).all()  # the picture keeps to itself
    assert admit[:, 0].all()  # every Gaussian is its own neighbour
    assert coplanar_neighbours(means, neighbours, 0.05).all()  # a tolerance above the 2 cm gap admits everyone
