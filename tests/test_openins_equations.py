"""Known-answer tests for the OpenInsGaussian equations: L_s, L_c, L_p, two-level codebook, Eq. 8 association."""

import pytest
import torch

from stages.lib.kmeans import kmeans
from stages.methods.openins.association import (
    AssociationConfig,
    association_scores,
    best_mask_per_instance,
    feature_disagreement,
    fill_language,
    masks_iou,
    nearest_viewed_instance,
)
from stages.methods.openins.codebook import two_level_codebook
from stages.methods.openins.losses import (
    inter_mask_contrastive_loss,
    intra_mask_smoothing_loss,
    pseudo_gt_feature_loss,
)
from stages.methods.openins.objectives import OpenInsInstanceObjective, PseudoGTObjective


def two_region_view():
    feats = torch.zeros(2, 2, 2)
    feats[0, 0] = torch.tensor([1.0, 0.0])
    feats[0, 1] = torch.tensor([3.0, 0.0])
    feats[1, :] = torch.tensor([0.0, 2.0])
    masks = torch.zeros(2, 2, 2, dtype=torch.bool)
    masks[0, 0] = True
    masks[1, 1] = True
    return feats, masks


def test_intra_mask_smoothing_by_hand():
    feats, masks = two_region_view()
    # mask 0: mean (2,0), squared distances 1 and 1; mask 1: constant -> 0. Mean over 4 masked pixels.
    assert intra_mask_smoothing_loss(feats, masks).item() == pytest.approx(0.5)


def test_inter_mask_contrastive_by_hand():
    feats, masks = two_region_view()
    # means (2,0) and (0,2): squared distance 8 -> (1/8 + 1/8) / (2*1)
    assert inter_mask_contrastive_loss(feats, masks).item() == pytest.approx(1 / 8, rel=1e-5)
    assert inter_mask_contrastive_loss(feats, masks[:1]).item() == 0.0
    # pushing the means apart lowers the loss
    assert inter_mask_contrastive_loss(feats * 2, masks) < inter_mask_contrastive_loss(feats, masks)


def test_pseudo_gt_loss_by_hand():
    a = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    b = torch.tensor([[1.0, 1.0], [2.0, 1.0]])
    assert pseudo_gt_feature_loss(a, b).item() == pytest.approx(0.75)


def test_kmeans_recovers_planted_clusters():
    torch.manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2) for c in centres])
    found, assign = kmeans(x, 3, seed=3)
    truth = torch.arange(3).repeat_interleave(50)
    for t in range(3):  # every planted cluster maps to exactly one found cluster
        assert assign[truth == t].unique().numel() == 1
    assert assign.unique().numel() == 3
    assert torch.cdist(centres, found).min(1).values.max() < 0.1


def test_two_level_codebook_recovers_spatial_and_feature_clusters():
    torch.manual_seed(1)
    # two spatial blobs; inside each, two feature clusters
    xyz = torch.cat([torch.randn(80, 3) * 0.05, torch.randn(80, 3) * 0.05 + 10])
    f_a, f_b = torch.tensor([1.0, 0, 0, 0]), torch.tensor([0, 1.0, 0, 0])
    feats = torch.cat([f_a.repeat(40, 1), f_b.repeat(40, 1), f_a.repeat(40, 1), f_b.repeat(40, 1)])
    feats = feats + 0.01 * torch.randn_like(feats)
    cb = two_level_codebook(xyz, feats, k1=2, k2=2, seed=0)
    assert cb.coarse[:80].unique().numel() == 1 and cb.coarse[80:].unique().numel() == 1
    assert cb.coarse[0] != cb.coarse[80]
    groups = [cb.fine[i * 40:(i + 1) * 40] for i in range(4)]
    assert all(g.unique().numel() == 1 for g in groups)
    assert len({int(g[0]) for g in groups}) == 4
    assert cb.valid.sum() == 4
    assert (cb.quantise() - feats).abs().max() < 0.05


def test_eq8_prefers_the_feature_consistent_mask_under_occlusion():
    # Instance 0 is partly occluded: its rendered mask covers columns 0..3 of rows 0..3 but the true
    # object is only columns 0..1 (the occluder covers 2..3). SAM mask A = the occluder region + a bit
    # (higher IoU), SAM mask B = the true visible object (lower IoU). Features disambiguate.
    H = W = 4
    inst = torch.zeros(1, H, W, dtype=torch.bool)
    inst[0, :, :4] = True
    sam = torch.zeros(2, H, W, dtype=torch.bool)
    sam[0, :, 1:4] = True   # occluder (IoU 0.75)
    sam[1, :, 0:2] = True   # the instance itself (IoU 0.5)
    fmap = torch.zeros(H, W, 2)
    fmap[:, 0:2] = torch.tensor([1.0, 0.0])   # instance feature
    fmap[:, 2:4] = torch.tensor([0.0, 1.0])   # occluder feature
    inst_feat = torch.tensor([[1.0, 0.0]])
    iou = masks_iou(inst, sam)
    assert iou[0, 0] > iou[0, 1]  # IoU alone picks the wrong mask
    scores = association_scores(inst, inst_feat, sam, fmap)
    # P_0 = mean over cols 1..3 = (1/3, 2/3), unit (1, 2) / sqrt(5): L1 to (1, 0) is 1 - 1/sqrt(5) + 2/sqrt(5), half of it
    # on OpenGaussian's rendered scale -> 0.75 * (1 - that); P_1 = (1, 0): L1 = 0 -> 0.5
    l1 = (1 + 1 / 5 ** 0.5) / 2
    assert scores[0].tolist() == pytest.approx([0.75 * (1 - l1), 0.5])
    assert best_mask_per_instance(scores).tolist() == [1]
    assert best_mask_per_instance(scores * 0).tolist() == [-1]
    assert association_scores(inst, inst_feat, sam, fmap, distance="unit")[0].tolist() == pytest.approx([0.0, 0.5])
    # our earlier reading divided the raw norm by D = 2: 1 - 2/3 -> 0.75 * 1/3, still below the true mask's 0.5
    mean = association_scores(inst, inst_feat, sam, fmap, distance="mean")
    assert mean[0].tolist() == pytest.approx([0.75 / 3, 0.5])


def test_eq8_feature_term_is_the_l1_norm_clipped():
    """1 - |a - b|_1 (Eq. 8) by hand: the L1 norm sums over the dims of the unit features, halved on OpenGaussian's
    rendered scale (u + 1) / 2, and clips at 1; "mean" takes the raw features' norm divided by D."""
    a = torch.tensor([[0.6, 0.8, 0.0]])
    near = torch.tensor([[0.8, 0.6, 0.0]])  # L1 0.2 + 0.2 = 0.4
    far = torch.tensor([[0.0, 0.6, 0.8]])   # L1 0.6 + 0.2 + 0.8 = 1.6
    assert feature_disagreement(a, near).item() == pytest.approx(0.2)
    assert feature_disagreement(3 * a, 0.5 * near).item() == pytest.approx(0.2), "directions, not lengths"
    assert feature_disagreement(a, far).item() == pytest.approx(0.8)
    assert feature_disagreement(a, near, "unit").item() == pytest.approx(0.4)
    assert feature_disagreement(a, far, "unit").item() == pytest.approx(1.0)
    assert feature_disagreement(a, far, "mean").item() == pytest.approx(1.6 / 3)
    assert feature_disagreement(3 * a, far, "mean").item() == pytest.approx(1.0), "raw features, clipped"
    with pytest.raises(ValueError, match="feature distance"):
        feature_disagreement(a, far, "max")
    with pytest.raises(ValueError, match="feature_distance"):
        AssociationConfig(feature_distance="l2")


def test_unit_features_render_and_save_unit_vectors():
    """unit_features (OpenGaussian's normalised instance features): both objectives render and save f / |f|."""
    f = torch.tensor([[3.0, 4.0], [0.0, -2.0]])
    for objective in (OpenInsInstanceObjective(unit_features=True), PseudoGTObjective(lambda v: f, unit_features=True)):
        assert torch.allclose(objective.render_features(f, None), torch.tensor([[0.6, 0.8], [0.0, -1.0]]))
        assert torch.allclose(objective.output_features(f, None), objective.render_features(f, None))
    assert not hasattr(OpenInsInstanceObjective(), "render_features"), "raw features by default (our earlier runs)"


def test_coarse_level_weighs_position_by_xyz_weight():
    """Eq. 5 space [w * normalised xyz, f]: a large w splits by position, a tiny w by feature."""
    torch.manual_seed(2)
    xyz = torch.cat([torch.zeros(40, 3), torch.ones(40, 3)]) + 0.01 * torch.randn(80, 3)
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(40, 1) * 0.5  # alternating feature groups
    by_position = two_level_codebook(xyz, feats, k1=2, k2=1, seed=0, xyz_weight=100.0)
    assert by_position.coarse[:40].unique().numel() == 1 and by_position.coarse[0] != by_position.coarse[40]
    by_feature = two_level_codebook(xyz, feats, k1=2, k2=1, seed=0, xyz_weight=1e-3)
    assert (by_feature.coarse[0::2] == by_feature.coarse[0]).all() and by_feature.coarse[0] != by_feature.coarse[1]
    space = torch.cat([1e-3 * (xyz - xyz.min(0).values) / (xyz.max(0).values - xyz.min(0).values).max(), feats], 1)
    for c in range(2):
        assert torch.allclose(by_feature.coarse_centres[c], space[by_feature.coarse == c].mean(0), atol=1e-6)


def test_nearest_viewed_instance_by_hand():
    """fill_unviewed_k: an instance without associated views takes its members' most frequent viewed neighbour."""
    means = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [10.0, 0, 0], [11.0, 0, 0], [30.0, 0, 0]])
    leaf = torch.tensor([0, 1, 1, 2, 3, -1])
    viewed = torch.tensor([True, False, True, True])
    # instance 1 (points at 1, 2) has no view: its members' 2 nearest are {1, 0} and {2, 1} -> instance 0 once
    assert nearest_viewed_instance(leaf, means, viewed, 2).tolist() == [0, 0, 2, 3]
    # with only themselves as neighbours nothing is viewed nearby: instance 1 stays itself
    assert nearest_viewed_instance(leaf, means, viewed, 1).tolist() == [0, 1, 2, 3]


def test_fill_language_counts_weakly_viewed_instances_as_unviewed():
    """fill_min_views: an instance with fewer associated views than that takes its neighbours' language."""
    means = torch.tensor([[0.0, 0, 0], [0.9, 0, 0], [2.0, 0, 0], [10.0, 0, 0], [10.5, 0, 0]])
    leaf = torch.tensor([0, 1, 1, 2, 2])
    language = torch.eye(3)
    views = torch.tensor([5, 1, 0])
    # min_views 1: instance 1 (one view) keeps its own language; instance 2 (none) has no viewed neighbour in k=2
    assert torch.equal(fill_language(language, views, leaf, means, 2, 1), language)
    # min_views 2: instance 1 takes instance 0's (its members' nearest with >= 2 views)
    assert fill_language(language, views, leaf, means, 2, 2).argmax(1).tolist() == [0, 0, 2]
    with pytest.raises(ValueError, match="fill_min_views"):
        AssociationConfig(fill_min_views=0)
