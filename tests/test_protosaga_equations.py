"""Known-answer tests of Proto-SaGa's equations (Eq. 6-19) and of the Gaga instance protocol, on hand-made inputs."""

import math

import numpy as np
import pytest
import torch

from stages.lib.instance_metrics import (
    boundary_iou,
    consistent_label_maps,
    instance_scores,
    iou_matrix,
    mask_boundary,
)
from stages.lib.projection import mask_of_gaussians, project_centres, visible_gaussians
from stages.lib.store import StoreError
from stages.methods.protosaga.association import association_source
from stages.methods.protosaga.classifiers import (
    ViewClassifierObjective,
    gaussian_probabilities,
    masks_to_target,
    view_cross_entropy,
)
from stages.methods.protosaga.memory_bank import (
    BankConfig,
    MemoryBank,
    associate_views,
    depth_set,
    own_probabilities,
    patch_groups,
    semantic_set,
    view_sets,
)
from stages.methods.protosaga.objective import view_classifiers
from stages.methods.protosaga.prototypes import PrototypeEnsemble, predict_instances, view_prototypes

TAU = 10.0
CE_SURE = math.log(1 + math.exp(-TAU))  # CE of a pixel whose own class has cosine 1 and the other cosine 0


# ------------------------------------------------------------------------------------------------
# Sec. 3.1: per-view classifiers (Eq. 6-7, 14)
# ------------------------------------------------------------------------------------------------
def hand_view():
    """A 2x2 feature map (D=2), its mask ids and a classifier with rows (2,0) and (0,1)."""
    rendered = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [5.0, 5.0]]])
    target = torch.tensor([[0, 1], [0, -1]])
    weights = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    return rendered, target, weights


def test_view_cross_entropy_eq7_known_answer():
    rendered, target, weights = hand_view()
    # pixels (0,0) and (0,1) sit on their class row (cos 1 vs 0), (1,0) is halfway (log 2), (1,1) has no mask.
    expected = (2 * CE_SURE + math.log(2)) / 4
    assert view_cross_entropy(rendered, target, weights, TAU).item() == pytest.approx(expected, rel=1e-6)


def test_gaussian_probabilities_eq14_known_answer():
    p = gaussian_probabilities(torch.tensor([[3.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 4.0]]), TAU)
    sure = 1 / (1 + math.exp(-TAU))
    assert p.numpy() == pytest.approx(np.array([[sure, 1 - sure], [0.5, 0.5]]), rel=1e-6)


def test_objective_uses_the_views_own_classifier():
    rendered, target, weights = hand_view()
    masks = torch.stack([target == 0, target == 1])
    assert torch.equal(masks_to_target(masks), target)
    obj = ViewClassifierObjective(tau=TAU, weight=0.05)
    obj.prepare([torch.tensor([0, 1]), None, torch.tensor([3, 5, 8])], feature_dim=2)
    assert obj.classifier(0).shape == (2, 2) and obj.classifier(2).shape == (3, 2)
    assert obj.mask_ids.tolist() == [[0, 1, -1], [-1, -1, -1], [3, 5, 8]]
    with pytest.raises(KeyError):
        obj.classifier(1)
    with torch.no_grad():
        obj.classifiers["0"].copy_(weights)
    loss, logs = obj(rendered, masks, step=0, view=0)
    assert loss.item() == pytest.approx(0.05 * (2 * CE_SURE + math.log(2)) / 4, rel=1e-6)
    assert logs["L_CE"].item() == pytest.approx(loss.item() / 0.05, rel=1e-6)


# ------------------------------------------------------------------------------------------------
# Sec. 3.2: association (Eq. 9-16)
# ------------------------------------------------------------------------------------------------
CAMERA = (torch.eye(4), torch.tensor([[10.0, 0, 2], [0, 10.0, 1.5], [0, 0, 1]]), 4, 3)  # 4x3 image


def test_projected_centres_eq9():
    means = torch.tensor([[0.0, 0.0, 1.0], [-0.15, -0.1, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 1.0], [0.09, 0.1, 2.0]])
    pixel, depth = project_centres(means, *CAMERA)
    # u = 10 x / z + 2, v = 10 y / z + 1.5 -> (2, 1.5): row 1 col 2; (0.5, 0.5): row 0 col 0; behind; u = 12 outside;
    # (2.45, 2.0): row 2 col 2.
    assert pixel.tolist() == [6, 0, -1, -1, 10]
    assert depth.tolist() == [1.0, 1.0, -1.0, 1.0, 2.0]
    labels = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [-1, -1, 2, 2]])
    assert mask_of_gaussians(pixel, labels).tolist() == [1, 0, -1, -1, 2]


def test_depth_filter_eq10_keeps_the_nearest_fraction():
    mask_of = torch.tensor([0] * 10 + [1] * 3 + [-1])
    depth = torch.tensor([9.0, 3, 7, 1, 5, 8, 2, 6, 4, 10, 2, 1, 3, 0.5])
    kept = depth_set(mask_of, depth, 0.2)
    # mask 0: E = 10, ranks < 2 -> depths 1 and 2 (Gaussians 3, 6); mask 1: E = 3, rank < 0.6 -> depth 1 (Gaussian 11);
    # the Gaussian in no mask never counts.
    assert kept.nonzero()[:, 0].tolist() == [3, 6, 11]


def test_semantic_set_eq15_and_union_eq16():
    mask_of = torch.tensor([0, 0, 0, 0, 0, 1])
    depth = torch.tensor([5.0, 1, 3, 4, 2, 1])
    # Eq. 14 with w = [(1,0), (0,1)]: Gaussian 3 points at class 0 most sharply.
    features = torch.tensor([[1.0, 1.0], [0.2, 1.0], [1.0, 0.5], [1.0, 0.0], [0.5, 1.0], [0.0, 1.0]])
    weights, rows = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    own = own_probabilities(features, mask_of, weights, rows, TAU)
    assert own[3].item() == pytest.approx(1 / (1 + math.exp(-TAU)), rel=1e-6)
    assert own[0].item() == pytest.approx(0.5, rel=1e-6)
    assert semantic_set(mask_of, own, 0.2).nonzero()[:, 0].tolist() == [3, 5]
    gaga = view_sets(mask_of, depth, None, BankConfig(semantic=False))
    saga = view_sets(mask_of, depth, own, BankConfig(semantic=True))
    assert gaga.nonzero()[:, 0].tolist() == [1, 5]  # nearest of mask 0 (depth 1) and the only one of mask 1
    assert saga.nonzero()[:, 0].tolist() == [1, 3, 5]
    # Table 3's middle row: the probability set alone (the most probable of mask 0, the only one of mask 1)
    prob = view_sets(mask_of, depth, own, BankConfig(depth=False))
    assert prob.nonzero()[:, 0].tolist() == [3, 5]
    assert [association_source(BankConfig(**kw)) for kw in ({}, {"semantic": False}, {"depth": False})] == [
        "protosaga_memory_bank", "gaga_memory_bank", "probability_memory_bank"]
    with pytest.raises(ValueError, match="at least one criterion"):
        BankConfig(depth=False, semantic=False)


def test_delta_s_apart_from_delta_d():
    # One mask of 5 Gaussians: depths put Gaussian 1 nearest; probabilities rank 3, 0, 2, 4, 1.
    mask_of = torch.zeros(5, dtype=torch.long)
    depth = torch.tensor([5.0, 1, 3, 4, 2])
    own = torch.tensor([0.8, 0.1, 0.7, 0.9, 0.3])
    assert BankConfig().semantic_delta == 0.2 and BankConfig(delta_s=0.6).semantic_delta == 0.6
    # delta_d = 0.2: rank < 1 -> Gaussian 1; delta_s = 0.6: rank < 3 -> Gaussians 3, 0, 2; delta_s = 0: none.
    assert view_sets(mask_of, depth, own, BankConfig(delta_s=0.6)).nonzero()[:, 0].tolist() == [0, 1, 2, 3]
    assert view_sets(mask_of, depth, own, BankConfig(delta_s=0.0)).nonzero()[:, 0].tolist() == [1]
    with pytest.raises(ValueError, match="delta_s"):
        BankConfig(delta_s=1.5)


def test_eq15_ranked_among_the_visible_gaussians_only():
    # A 2x1 image whose rendered depth is 2 at pixel 0 and 0 (nothing rendered) at pixel 1. Gaussians 0-3 project to
    # pixel 0 at depths 1.9, 2.05, 2.2, 5 (margin 0.05: visible up to 2.1), Gaussian 4 to pixel 1, Gaussian 5 nowhere.
    pixel = torch.tensor([0, 0, 0, 0, 1, -1])
    depth = torch.tensor([1.9, 2.05, 2.2, 5.0, 1.0, 1.0])
    depth_map = torch.tensor([[2.0, 0.0]])
    visible = visible_gaussians(pixel, depth, depth_map, 0.05)
    assert visible.tolist() == [True, True, False, False, False, False]
    # One mask over Gaussians 0-4; the occluded Gaussian 3 is the most probable. Among all five, Eq. 15 with
    # delta_s = 0.4 keeps ranks < 2 (Gaussians 3, 2); among the two visible ones ranks < 0.8 (Gaussian 1).
    mask_of = torch.tensor([0, 0, 0, 0, 0, -1])
    own = torch.tensor([0.1, 0.5, 0.6, 0.9, 0.2, 0.0])
    cfg = BankConfig(delta_d=0.0, delta_s=0.4)
    assert view_sets(mask_of, depth, own, cfg).nonzero()[:, 0].tolist() == [2, 3]
    assert view_sets(mask_of, depth, own, cfg, visible=visible).nonzero()[:, 0].tolist() == [1]
    with pytest.raises(ValueError, match="visible_margin"):
        BankConfig(visible_margin=-0.1)


def test_memory_bank_eq11_13_join_new_and_threshold_boundary():
    bank = MemoryBank(100, delta=0.1, capacity=1)
    assert bank.assign(torch.arange(0, 4)) == 0  # Eq. 11: the first sets initialise the bank
    assert bank.assign(torch.arange(10, 20)) == 1
    joined = torch.cat([torch.arange(0, 3), torch.arange(30, 37)])  # gamma = 3 / 10 with entry 0
    assert bank.overlap(joined).tolist() == pytest.approx([0.3, 0.0])
    assert bank.assign(joined) == 0 and bank.gaussian_sets()[30:37, 0].all()  # Eq. 13: M(0) <- G cup M(0)
    assert bank.assign(torch.arange(40, 50)) == 2  # gamma = 0: a new entry
    at_threshold = torch.cat([torch.tensor([10]), torch.arange(50, 59)])  # gamma = 1 / 10 = delta: not above it
    assert bank.assign(at_threshold) == 3
    above = torch.cat([torch.tensor([10, 11]), torch.arange(60, 68)])  # gamma = 2 / 10 with entry 1
    assert bank.assign(above) == 1
    assert bank.assign(torch.zeros(0, dtype=torch.long)) == -1 and bank.size == 4


def test_latest_membership_moves_gaussians_to_the_entry_their_latest_set_joined():
    bank = MemoryBank(20, delta=0.1)
    assert bank.assign(torch.arange(0, 5), "latest") == 0
    assert bank.assign(torch.arange(10, 15), "latest") == 1
    # 4 of 5 in entry 1 (gamma 0.8) and Gaussian 4 from entry 0: it leaves entry 0 for entry 1.
    assert bank.assign(torch.tensor([4, 10, 11, 12, 13]), "latest") == 1
    sets = bank.gaussian_sets()
    assert sets[:, 0].nonzero()[:, 0].tolist() == [0, 1, 2, 3]
    assert sets[:, 1].nonzero()[:, 0].tolist() == [4, 10, 11, 12, 13, 14]
    assert (sets.sum(1) <= 1).all()


def test_first_membership_adds_only_gaussians_in_no_entry_yet():
    """Gaga's reference code: a joining set adds its unassigned Gaussians only, so an under-segmented mask spanning
    two entries does not copy one entry's Gaussians into the other."""
    bank = MemoryBank(30, delta=0.1)
    assert bank.assign(torch.arange(0, 5), "first") == 0
    assert bank.assign(torch.arange(10, 15), "first") == 1
    # A merged mask: 5 Gaussians of entry 0, 3 of entry 1, 2 new (gamma 0.5 / 0.3): joins entry 0 with the 2 new ones.
    merged = torch.tensor([0, 1, 2, 3, 4, 10, 11, 12, 20, 21])
    assert bank.overlap(merged).tolist() == pytest.approx([0.5, 0.3])
    assert bank.assign(merged, "first") == 0
    sets = bank.gaussian_sets()
    assert sets[:, 0].nonzero()[:, 0].tolist() == [0, 1, 2, 3, 4, 20, 21]
    assert sets[:, 1].nonzero()[:, 0].tolist() == [10, 11, 12, 13, 14]
    # Entry 1's next mask still scores 1.0 with entry 1 and 0.0 with entry 0; under "union" entry 0 would have
    # taken 10-12 and scored 0.6.
    assert bank.overlap(torch.arange(10, 15)).tolist() == pytest.approx([0.0, 1.0])
    union = MemoryBank(30, delta=0.1)
    union.assign(torch.arange(0, 5)), union.assign(torch.arange(10, 15)), union.assign(merged)
    assert union.overlap(torch.arange(10, 15)).tolist() == pytest.approx([0.6, 1.0])
    # A new entry keeps every Gaussian of its set; unknown rules are refused.
    assert bank.assign(torch.arange(25, 28), "first") == 2 and bank.gaussian_sets()[25:28, 2].all()
    with pytest.raises(ValueError, match="membership"):
        bank.assign(torch.arange(0, 5), "sometimes")
    with pytest.raises(ValueError, match="membership"):
        BankConfig(membership="sometimes")


def test_patch_wise_ranking_keeps_the_front_of_every_patch():
    # One mask over a 4x2 image with patch_size 2: patches (cols 0-1) and (cols 2-3). The nearest 50 % of the whole
    # mask are both in the left patch; patch-wise, each patch keeps its own nearest.
    width, height = 4, 2
    pixel = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])  # row-major pixel of each Gaussian
    mask_of = torch.zeros(8, dtype=torch.long)
    depth = torch.tensor([1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 7.0, 8.0])
    whole = view_sets(mask_of, depth, None, BankConfig(semantic=False, delta_d=0.5))
    assert whole.nonzero()[:, 0].tolist() == [0, 1, 4, 5]
    groups = patch_groups(mask_of, pixel, width, height, 2)
    assert groups.tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    patched = view_sets(mask_of, depth, None, BankConfig(semantic=False, delta_d=0.5), groups)
    assert patched.nonzero()[:, 0].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="patch_size"):
        BankConfig(patch_size=0)


def test_association_makes_swapped_ids_consistent():
    # 40 Gaussians on a plane in front of the camera: the left half projects into one mask, the right half into the
    # other; the second view shows the same masks with swapped ids (an inconsistent per-view segmenter).
    xs = torch.linspace(-0.19, 0.19, 40)
    means = torch.stack([xs, torch.zeros(40), torch.ones(40)], 1)
    view, K, w, h = CAMERA
    left = torch.tensor([[0, 0, 1, 1]] * 3)
    labels = torch.stack([left, 1 - left])
    viewmats, Ks = torch.stack([view, view]), torch.stack([K, K])
    gaga, _ = associate_views(means, viewmats, Ks, w, h, labels, BankConfig(semantic=False), progress=False)
    assert [ids.tolist() for ids in gaga] == [[0, 1], [1, 0]]
    features = torch.stack([(xs < 0).float(), (xs >= 0).float()], 1)
    classifiers = [(torch.eye(2), torch.tensor([0, 1])), (torch.eye(2).flip(0), torch.tensor([0, 1]))]
    saga, bank = associate_views(means, viewmats, Ks, w, h, labels, BankConfig(), features, classifiers, False)
    assert [ids.tolist() for ids in saga] == [[0, 1], [1, 0]] and bank.size == 2


def test_visible_margin_needs_depth_maps_and_keeps_the_front_surface():
    # Two Gaussians on the optical axis (depths 1 and 3), both in the single mask of one view; with depth_map 1 only
    # the front one is a semantic candidate, so with delta_d = 0 the set is the front Gaussian even though the
    # classifier prefers the back one.
    view, K, w, h = CAMERA
    means = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 3.0]])
    labels = torch.zeros((1, h, w), dtype=torch.long)
    features = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    classifiers = [(torch.eye(2), torch.tensor([0, 1]))]
    cfg = BankConfig(delta_d=0.0, delta_s=0.5, visible_margin=0.05)
    args = (means, view[None], K[None], w, h, labels, cfg, features, classifiers, False)
    with pytest.raises(ValueError, match="depth map"):
        associate_views(*args)
    _, bank = associate_views(*args, depth_maps=torch.ones((1, h, w)))
    assert bank.gaussian_sets()[:, 0].tolist() == [True, False]
    _, everywhere = associate_views(*args[:6], BankConfig(delta_d=0.0, delta_s=0.5), *args[7:])
    assert everywhere.gaussian_sets()[:, 0].tolist() == [False, True]


# ------------------------------------------------------------------------------------------------
# Sec. 3.3: prototypes (Eq. 17-18) and inference (Eq. 19)
# ------------------------------------------------------------------------------------------------
def test_prototypes_eq17_18_and_inference_eq19():
    maps = torch.tensor([[[[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]]], [[[0.0, 1.0], [9.0, 9.0], [9.0, 9.0]]]])  # [2,1,3,2]
    labels = torch.tensor([[[0, 0, 1]], [[0, -1, -1]]])
    protos, present = view_prototypes(maps, labels, 3)
    assert protos[0, :2].tolist() == [[2.0, 0.0], [0.0, 2.0]] and protos[1, 0].tolist() == [0.0, 1.0]
    assert present.tolist() == [[True, True, False], [True, False, False]]
    ensemble = PrototypeEnsemble(3, 2)
    ensemble.add(maps[:1], labels[:1])
    ensemble.add(maps[1:], labels[1:])
    v, seen = ensemble.prototypes()
    assert v.tolist() == [[1.0, 0.5], [0.0, 2.0], [0.0, 0.0]] and seen.tolist() == [True, True, False]
    # Eq. 19: cos((1, 0.4), (1, 0.5)) ~ 0.99 beats cos with (0, 2) ~ 0.37; (0.1, 1) is nearest (0, 2); instance 2
    # has no prototype and is never predicted, even for a feature along (0, 0)'s nowhere.
    pixels = torch.tensor([[1.0, 0.4], [0.1, 1.0], [-1.0, -1.0]])
    assert predict_instances(pixels, v, seen, TAU).tolist() == [0, 1, 1]
    assert predict_instances(pixels, v, torch.zeros(3, dtype=torch.bool)).tolist() == [-1, -1, -1]


# ------------------------------------------------------------------------------------------------
# Instance protocol (Gaga eval.py): Hungarian mIoU, precision / recall at 0.5, boundary IoU
# ------------------------------------------------------------------------------------------------
def test_hungarian_instance_metrics_known_answer():
    gt = np.array([[[0, 0, 1, 1], [0, 0, 1, 1]], [[0, 0, 0, 0], [0, 0, 0, 0]]])
    pred = np.array([[[5, 5, 5, 7], [5, 5, 5, 7]], [[5, 5, 5, 9], [5, 5, 5, 5]]])
    iou, gt_ids, pred_ids = iou_matrix(pred, gt)
    assert gt_ids.tolist() == [0, 1] and pred_ids.tolist() == [5, 7, 9]
    # GT 0 is in both views: IoU with 5 is (4/6 + 7/8) / 2; GT 1 only in view 0: IoU with 7 is 2/4, with 5 is 2/8.
    expected = np.array([[(4 / 6 + 7 / 8) / 2, 0.0, (0 + 1 / 8) / 2], [2 / 8, 2 / 4, 0.0]])
    assert iou == pytest.approx(expected)
    s = instance_scores(pred, gt, boundary=False)
    assert s.matched_pred.tolist() == [5, 7]
    assert s.miou == pytest.approx(((4 / 6 + 7 / 8) / 2 + 0.5) / 2)
    assert s.precision == pytest.approx(1 / 3) and s.recall == pytest.approx(1 / 2)  # IoU 0.5 is not a hit


def test_unannotated_pixels_and_missing_predictions():
    gt = np.array([[[0, 0, -1, 1]]])
    pred = np.array([[[-1, 3, 3, 4]]])
    s = instance_scores(pred, gt, boundary=False)
    # the -1 GT pixel is left out: GT 0 = {0, 1} vs pred 3 = {1} -> 1/2; GT 1 = {3} vs pred 4 = {3} -> 1.
    assert s.matched_iou.tolist() == pytest.approx([0.5, 1.0]) and s.precision == 0.5 and s.recall == 0.5


def test_boundary_iou_known_answer():
    gt, pred = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    gt[1:5, 1:5] = True
    pred[1:5, 2:6] = True  # shifted one column, touching the image border (the border counts as outside)
    ring = mask_boundary(gt, 1)
    assert ring.sum() == 12 and not ring[2:4, 2:4].any()
    assert mask_boundary(pred, 1)[:, 5][1:5].all()
    assert boundary_iou(pred, gt) == pytest.approx(6 / 18)  # a 6x6 image: width round(0.02 * 8.49) -> 1
    gt_ids = np.where(gt, 3, 0)[None]  # GT instances: 3 (the square) and 0 (the rest)
    pred_ids = np.where(pred, 1, -1)[None]  # one predicted instance (the shifted square), no prediction elsewhere
    s = instance_scores(pred_ids, gt_ids)
    # 1 matches 3 (IoU 12/20 against 4/32 with 0); GT 0 stays unmatched and scores 0 in both means.
    assert s.matched_pred.tolist() == [-1, 1]
    assert s.miou == pytest.approx(12 / 20 / 2) and s.mbiou == pytest.approx(6 / 18 / 2)
    assert s.precision == 1.0 and s.recall == 0.5


def test_consistent_label_maps():
    labels = np.array([[[0, 1, -1]], [[1, 0, 2]]])
    out = consistent_label_maps(labels, [np.array([7, -1]), np.array([4, 7, 9])])
    assert out.tolist() == [[[7, -1, -1]], [[7, 4, 9]]]


def test_a_view_without_masks_gets_an_empty_classifier_and_joins_nothing():
    """A train view whose masks are all empty (e.g. dropped) has no classifier; association skips it."""
    objective = ViewClassifierObjective()
    objective.prepare([torch.tensor([0, 2]), torch.tensor([], dtype=torch.long), None], feature_dim=4)
    state = dict(objective.state_dict())
    (w0, ids0), (w1, ids1) = view_classifiers(state, [0, 1], "field.zarr")
    assert w0.shape == (2, 4) and ids0.tolist() == [0, 2]
    assert w1.shape == (0, 4) and ids1.numel() == 0
    with pytest.raises(StoreError, match="field.zarr: no classifier for train view 5"):
        view_classifiers(state, [5], "field.zarr")
    with pytest.raises(StoreError, match="no per-view classifiers"):
        view_classifiers({}, [0], "field.zarr")
    # the empty view in a memory-bank pass: no Gaussian lies in a mask, every probability is 0, no id is given
    mask_of = torch.full((6,), -1)
    assert own_probabilities(torch.rand(6, 4), mask_of, w1, ids1, TAU).eq(0).all()
    chosen = view_sets(mask_of, torch.rand(6), torch.zeros(6), BankConfig())
    assert not chosen.any()
