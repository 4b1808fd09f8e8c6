"""Known-answer tests of CCL-LGS's equations (stages.methods.ccl): Eq. 4-8 losses, index maps, the Eq. 9 objective,
Eq. 10 relevance, level selection, class labels and LERF localization. Expected values are computed by hand."""

import math

import numpy as np
import pytest
import torch

from stages.lib.semantic_metrics import localization_hit
from stages.methods.ccl.codebook import (
    CodebookLearnConfig,
    index_map,
    initial_prototypes,
    learn_prototypes,
    reservoir_sample,
)
from stages.methods.ccl.field import CCLSemanticObjective, level_decoders, semantic_ce
from stages.methods.ccl.losses import (
    CCLWeights,
    ccl_loss,
    matching_loss,
    nearest_prototype,
    pull_loss,
    push_loss,
)
from stages.methods.ccl.relevance import (
    choose_level,
    class_labels,
    gather_relevance,
    normalise_map,
    prototype_relevance,
)

CPU = torch.device("cpu")
T = torch.tensor


# ------------------------------------------------------------------------------------------------
# Eq. 4-8
# ------------------------------------------------------------------------------------------------
def test_matching_loss_uses_the_nearest_prototype():
    features = T([[1.0, 0.0], [0.0, 1.0]])
    prototypes = T([[1.0, 0.0], [1.0, 1.0]])
    nearest = nearest_prototype(features, prototypes)
    assert nearest.tolist() == [0, 1]  # cos 1 vs 0.707; cos 0 vs 0.707
    assert matching_loss(features, prototypes, nearest).item() == pytest.approx((0 + 1 - math.sqrt(0.5)) / 2)


def test_pull_excludes_untracked_masks():
    prototypes = T([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    features = T([[1.0, 0.1], [0.1, 1.0], [1.0, 0.0]])
    nearest = nearest_prototype(features, prototypes)
    assert nearest.tolist() == [0, 1, 0]
    # Only the pair (0, 1) pulls: 1 - cos(T0, T1) = 1. Were mask 2 tracked with id 3, pairs (0,2), (1,2) would add
    # 0 and 1: mean 2/3.
    assert pull_loss(prototypes, nearest, T([3, 3, -1])).item() == pytest.approx(1.0)
    assert pull_loss(prototypes, nearest, T([3, 3, 3])).item() == pytest.approx(2 / 3)
    assert pull_loss(prototypes, nearest, T([3, 4, -1])).item() == 0.0


def test_push_margin_boundary_and_untracked():
    t0 = [1.0, 0.0]
    at_margin = [0.7, math.sqrt(1 - 0.49)]
    above = [0.8, 0.6]
    for t1, expected in ((at_margin, 0.0), (above, 0.1)):
        prototypes = T([t0, t1])
        nearest = nearest_prototype(prototypes.clone(), prototypes)
        assert nearest.tolist() == [0, 1]
        assert push_loss(prototypes, nearest, T([1, 2]), margin=0.7).item() == pytest.approx(expected, abs=1e-6)
        assert push_loss(prototypes, nearest, T([1, -1]), margin=0.7).item() == 0.0
        assert push_loss(prototypes, nearest, T([1, 1]), margin=0.7).item() == 0.0


def test_total_loss_weights_the_terms():
    prototypes = T([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    features = T([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])
    labels = T([0, 1, 0, -1])
    total, terms = ccl_loss(features, labels, prototypes)
    # L_max: only f3 misses its prototype T1 (cos 0.96) -> 0.04 / 4. L_pull: pair (0,2), 1 - cos(T0,T2) = 1.
    # L_push: pairs (0,1), (1,2) both ways: ReLU(0.8 - 0.7) = 0.1 and ReLU(0.6 - 0.7) = 0 -> 0.05.
    assert terms["L_max"].item() == pytest.approx(0.01)
    assert terms["L_pull"].item() == pytest.approx(1.0)
    assert terms["L_push"].item() == pytest.approx(0.05)
    assert total.item() == pytest.approx(0.01 + 0.25 * 1.0 + 0.25 * 0.05)
    only_max, _ = ccl_loss(features, labels, prototypes, CCLWeights(lambda_pull=0.0, lambda_push=0.0))
    assert only_max.item() == pytest.approx(0.01)


def _two_feature_batches(features, labels):
    return lambda epoch: iter([(features, labels)])


def test_push_separates_two_prototypes():
    features = T([[1.0, 0.0, 0.0], [0.9, math.sqrt(1 - 0.81), 0.0]])
    labels = T([0, 1])
    cfg = dict(num_prototypes=2, epochs=300, lr=0.01)
    cos = {}
    for name, push in (("push", 1.0), ("none", 0.0)):
        learnt = learn_prototypes(_two_feature_batches(features, labels), features.clone(),
                                  CodebookLearnConfig(**cfg, lambda_pull=0.0, lambda_push=push), CPU, progress=False)
        cos[name] = torch.nn.functional.cosine_similarity(learnt[0], learnt[1], dim=0).item()
    assert cos["none"] == pytest.approx(0.9, abs=0.01)  # L_max alone keeps each prototype on its feature
    assert cos["push"] < 0.75


def test_pull_brings_a_tracks_prototypes_together():
    a1, a2 = [1.0, 0.0, 0.0], [0.6, 0.8, 0.0]
    features = T([a1, a2, [0.0, 0.0, 1.0]])
    labels = T([7, 7, 8])
    cfg = dict(num_prototypes=3, epochs=300, lr=0.01, lambda_push=0.0)
    cos = {}
    for name, pull in (("pull", 1.0), ("none", 0.0)):
        learnt = learn_prototypes(_two_feature_batches(features, labels), features.clone(),
                                  CodebookLearnConfig(**cfg, lambda_pull=pull), CPU, progress=False)
        cos[name] = torch.nn.functional.cosine_similarity(learnt[0], learnt[1], dim=0).item()
    assert cos["none"] == pytest.approx(0.6, abs=0.01)
    assert cos["pull"] > 0.9


def test_reservoir_sample_is_bounded_and_keeps_small_streams_whole():
    rows = [torch.arange(i * 100, (i + 1) * 100).float()[:, None] for i in range(10)]
    sample = reservoir_sample(iter(rows), 50, seed=0)
    assert sample.shape == (50, 1) and len(torch.unique(sample)) == 50
    assert (sample >= 500).float().mean() > 0.2  # late batches are represented
    assert sorted(reservoir_sample(iter(rows[:1]), 500, seed=0)[:, 0].tolist()) == list(range(100))


def test_initial_prototypes_cover_distinct_features_first():
    sample = T([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    init = initial_prototypes(sample, 2, seed=0)
    assert sorted(map(tuple, init.tolist())) == [(0.0, 1.0), (1.0, 0.0)]


# ------------------------------------------------------------------------------------------------
# Index maps and Eq. 9
# ------------------------------------------------------------------------------------------------
def test_index_map_of_a_hand_made_view():
    labels = np.array([[0, 0, -1], [1, 2, 2]], np.int32)
    out = index_map(labels, np.array([2, 0, 1]), np.array([5, 3, 4], np.int16))
    assert out.dtype == np.int16
    assert out.tolist() == [[3, 3, -1], [4, 5, 5]]
    assert index_map(np.full((2, 2), -1, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int16)).tolist() == \
        [[-1, -1], [-1, -1]]


def _fixed_linear_decoders(levels: int) -> torch.nn.ModuleList:
    decoders = level_decoders(levels, num_prototypes=2, field_dim=1, hidden=0)
    with torch.no_grad():
        for d in decoders:
            d.net[0].weight.copy_(T([[0.0], [1.0]]))
            d.net[0].bias.zero_()
    return decoders


def test_ce_objective_on_hand_made_pixels():
    # Feature ln 3 decodes to logits [0, ln 3]: softmax [1/4, 3/4]. Targets 1, 0, none -> (-ln 3/4 + ln 4) / 2.
    expected = (-math.log(0.75) + math.log(4.0)) / 2
    logits = _fixed_linear_decoders(1)[0](torch.full((3, 1), math.log(3.0)))
    assert semantic_ce(logits, T([1, 0, -1])).item() == pytest.approx(expected)
    index = torch.stack([T([[1, 0, -1]]), T([[-1, -1, -1]])])  # level 1 has no mask: no loss
    objective = CCLSemanticObjective(lambda view: index, _fixed_linear_decoders(2), field_dim=1,
                                     level_names=["sp", "wp"])
    rendered = torch.full((1, 3, 2), math.log(3.0), requires_grad=True)
    loss, logs = objective(rendered, torch.zeros(0, 1, 3, dtype=torch.bool), step=0, view=4)
    assert loss.item() == pytest.approx(expected) and logs["CE_wp"].item() == 0.0
    loss.backward()
    assert rendered.grad[..., 0].abs().sum() > 0 and rendered.grad[..., 1].abs().sum() == 0
    assert all(p.grad is not None for p in objective.decoders[0].parameters())
    with pytest.raises(ValueError, match="feature_dim = 2 levels x 1 = 2"):
        objective(torch.zeros(1, 3, 3), torch.zeros(0, 1, 3, dtype=torch.bool), step=0, view=0)


# ------------------------------------------------------------------------------------------------
# Eq. 10, level selection, class labels, localization
# ------------------------------------------------------------------------------------------------
def test_prototype_relevance_with_canonical_negatives():
    prototypes = T([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    text = T([1.0, 0.0, 0.0])
    one = prototype_relevance(prototypes, text, T([[0.0, 0.0, 1.0]]))
    e = math.e
    assert one.tolist() == pytest.approx([e / (e + 1), 0.5])
    two = prototype_relevance(prototypes, text, T([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]]))
    assert two.tolist() == pytest.approx([e / (e + 2), 1 / (2 + e)])


def test_relevance_gather_level_choice_and_normalisation():
    relevance = T([[0.2, 0.5, 0.3], [0.1, 0.9, 0.4]])  # [L=2, N=3]
    index = T([[[0, 2], [2, 2]], [[0, 0], [2, 0]]])  # [L, H=2, W=2]
    maps = gather_relevance(index, relevance)
    assert maps.flatten().tolist() == pytest.approx([0.2, 0.3, 0.3, 0.3, 0.1, 0.1, 0.4, 0.1])
    assert choose_level(maps) == 1  # peaks 0.3 vs 0.4
    assert normalise_map(maps[1]).flatten().tolist() == pytest.approx([0.0, 0.0, 1.0, 0.0])
    assert normalise_map(torch.ones(2, 2)).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_class_labels_take_the_best_level():
    prototypes = T([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [1.0, 0.0]]])  # [L=2, N=2, E=2]
    text = T([[1.0, 0.0], [0.0, 1.0]])
    index = T([[0, 1], [1, 0]])  # position 0: T0=[1,0] / T1'=[1,0]; position 1: T1=[0,1] / T0'=[.6,.8]
    assert class_labels(index, prototypes, text).tolist() == [0, 1]


def test_localization_hit_uses_the_box_of_the_gt_mask():
    relevance = np.zeros((4, 4))
    relevance[1, 2] = 1.0
    l_shape = np.zeros((4, 4), bool)
    l_shape[0, 1:4] = True
    l_shape[0:3, 3] = True  # box rows 0-2, cols 1-3: contains (1, 2) though the mask does not
    assert localization_hit(relevance, l_shape)
    elsewhere = np.zeros((4, 4), bool)
    elsewhere[3, 0] = True
    assert not localization_hit(relevance, elsewhere)
    assert not localization_hit(relevance, np.zeros((4, 4), bool))
