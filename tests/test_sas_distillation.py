"""SAS 3D distillation (Sec. 3.4): known answers for the point and superpoint cosine losses (Eq. 10), the EMA of
Eq. 11, the pseudo labels of Eq. 12 and the cross-entropies of Eq. 13; superpoints; a short training run that
learns; the per-Gaussian query (nearest-point transfer)."""

import math

import numpy as np
import pytest
import torch
from oracle_stores import point_gaussians, tiny_scene, write_inputs

from stages import query
from stages.lib.cli import run_stage
from stages.lib.open_vocabulary import QueryError, TextEmbedder
from stages.lib.sparse_conv import get_backend
from stages.lib.store import write_store
from stages.methods.sas.distillation import (
    ema_update,
    point_distillation_loss,
    pseudo_labels,
    segment_mean,
    self_distillation_losses,
    superpoint_distillation_loss,
    superpoint_targets,
)
from stages.methods.sas.query import gaussian_features, select_gaussians
from stages.methods.sas.superpoints import GraphSegmentation, dense_ids, graph_segments
from stages.methods.sas.training import DistillSchedule, DistillTargets, train_distillation

E1, E2 = [1.0, 0.0], [0.0, 1.0]



def test_point_loss_is_one_minus_cosine_over_the_masked_points():
    student = torch.tensor([E1, E2, [1.0, 1.0]])
    target = torch.tensor([[2.0, 0.0], E1, [-1.0, -1.0]])
    all_points = torch.ones(3, dtype=torch.bool)
    assert point_distillation_loss(student, target, all_points).item() == pytest.approx((0 + 1 + 2) / 3)
    assert point_distillation_loss(student, target, torch.tensor([True, True, False])).item() == pytest.approx(0.5)
    assert point_distillation_loss(student, target, torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_superpoint_targets_average_the_seen_points_and_reach_every_point():
    fused = torch.tensor([E1, [3.0, 3.0], E2, [9.0, 9.0]])
    segment = torch.tensor([0, 0, 1, 2])
    seen = torch.tensor([True, False, True, False])  # point 1 is unseen; superpoint 2 has no seen point
    means, per_point, has = superpoint_targets(fused, segment, 3, seen)
    assert torch.equal(means, torch.tensor([E1, E2, [0.0, 0.0]]))
    assert torch.equal(per_point[:3], torch.tensor([E1, E1, E2]))
    assert has.tolist() == [True, True, True, False]


def test_superpoint_loss_compares_superpoint_means():
    # superpoint 0: student mean (1, 1) vs target (1, 0): 1 - 1/sqrt(2); superpoint 1: (0, 1) vs (0, 1): 0
    student = torch.tensor([[2.0, 0.0], [0.0, 2.0], E2])
    segment = torch.tensor([0, 0, 1])
    target_means = torch.tensor([E1, E2])
    loss = superpoint_distillation_loss(student, target_means, segment, 2, torch.ones(3, dtype=torch.bool))
    assert loss.item() == pytest.approx((1 - 1 / math.sqrt(2)) / 2)
    only_first = superpoint_distillation_loss(student, target_means, segment, 2, torch.tensor([True, True, False]))
    assert only_first.item() == pytest.approx(1 - 1 / math.sqrt(2))


def test_segment_mean_counts_only_the_masked_points():
    values = torch.tensor([[1.0], [3.0], [5.0]])
    means, count = segment_mean(values, torch.tensor([0, 0, 1]), 3, torch.tensor([True, False, True]))
    assert means.squeeze(1).tolist() == [1.0, 5.0, 0.0] and count.tolist() == [1, 1, 0]


def test_ema_update_is_eq_11():
    old, new = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert torch.allclose(ema_update(old, new, 0.9), torch.tensor([0.9, 0.1]))
    assert torch.equal(ema_update(old, new, 0.0), new)
    with pytest.raises(ValueError, match="alpha must be in"):
        ema_update(old, new, 1.0)


def test_pseudo_labels_are_the_argmax_over_the_text_features():
    text = torch.tensor([E1, E2, [-1.0, 0.0]])
    feats = torch.tensor([[0.9, 0.1], [0.2, 0.5], [-3.0, 1.0]])
    assert pseudo_labels(feats, text).tolist() == [0, 1, 2]


def test_self_distillation_cross_entropy_known_answer():
    text = torch.tensor([E1, E2])
    student = torch.tensor([E1, [1.0, 1.0], E2])
    ensemble = torch.tensor([E2, E2, E2])  # pseudo label 1 everywhere
    t = 0.5
    point, sp = self_distillation_losses(student, ensemble, text, torch.tensor([0, 0, 1]), 2, t)
    ce = [math.log(1 + math.exp(-2)) + 2, math.log(2), math.log(1 + math.exp(-2))]  # -log softmax(cos / t)[1]
    assert point.item() == pytest.approx(sum(ce) / 3)
    # superpoint 0: student mean (1, 0.5) -> cos (2/sqrt(5), 1/sqrt(5)); superpoint 1: (0, 1)
    a, b = 2 / math.sqrt(5) / t, 1 / math.sqrt(5) / t
    expected_sp = (math.log(math.exp(a) + math.exp(b)) - b + math.log(1 + math.exp(-2))) / 2
    assert sp.item() == pytest.approx(expected_sp)
    no_sp = self_distillation_losses(student, ensemble, text, None, 0, t)[1]
    assert no_sp.item() == 0.0


def test_superpoint_ids_from_a_scan_and_from_the_graph():
    ids = dense_ids(np.array([7, 7, -1, 3, -1]))
    assert ids[0] == ids[1] and len(set(ids.tolist())) == 4 and ids.max() == 3
    rng = np.random.default_rng(0)
    floor = np.c_[rng.uniform(0, 1, 600), rng.uniform(0, 1, 600), np.zeros(600)]
    wall = np.c_[rng.uniform(0, 1, 600), np.zeros(600), rng.uniform(0.05, 1, 600)]
    seg = graph_segments(np.r_[floor, wall], GraphSegmentation(min_size=20))
    purity = [np.bincount(seg[:600]).max() / 600, np.bincount(seg[600:]).max() / 600]
    assert min(purity) > 0.9 and np.bincount(seg[:600]).argmax() != np.bincount(seg[600:]).argmax()
    assert np.bincount(seg).min() >= 20


def test_a_short_distillation_learns_the_fused_classes():
    """Two flat slabs, one class each: a few steps of superpoint distillation + TESD separate them; the monitor sees
    every epoch, its last features being the result's."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    a = torch.cat([torch.rand(300, 2, generator=g), torch.zeros(300, 1)], 1)
    b = torch.cat([torch.rand(300, 1, generator=g) + 1.5, torch.zeros(300, 1), torch.rand(300, 1, generator=g)], 1)
    text = torch.eye(4)[:2]
    targets = DistillTargets(torch.cat([a, b]), text[[0] * 300 + [1] * 300], torch.ones(600, dtype=torch.bool),
                             torch.tensor([0] * 300 + [1] * 300), text)
    cfg = DistillSchedule(epochs=12, tesd_epochs=4, lr=0.01, lr_end=0.001, voxel_size=0.1, width=0.25)
    seen_epochs, monitored = [], []
    result = train_distillation(targets, get_backend("auto"), cfg, torch.device("cpu"),
                                monitor=lambda epoch, features: (seen_epochs.append(epoch), monitored.append(features())))
    assert seen_epochs == list(range(12)) and np.allclose(monitored[-1], result.features)
    pred = (torch.from_numpy(result.features) @ text.T).argmax(-1)
    assert (pred == torch.tensor([0] * 300 + [1] * 300)).float().mean() > 0.95
    assert result.losses.shape == (12, 4) and (result.losses[-4:, 2:] > 0).all() and (result.losses[:8, 2:] == 0).all()
    assert result.losses[-1, 0] < result.losses[0, 0]


def test_bad_schedules_are_errors():
    with pytest.raises(ValueError, match="tesd_epochs < epochs"):
        DistillSchedule(epochs=10, tesd_epochs=10)


def test_the_stage_stops_with_one_line_errors_and_leaves_no_output(tmp_path):
    from stages import distill

    out = tmp_path / "distilled.zarr"
    base = ["--scene", str(tmp_path / "scene.zarr"), "--capability", str(tmp_path / "cap.zarr"), "--out", str(out)]
    with pytest.raises(SystemExit, match=r"unknown distill parameters \['voxel'\]"):
        run_stage(distill.main, distill.parser(), [*base, "--params", '{"voxel": 0.05}'])
    with pytest.raises(SystemExit, match="unknown sparse-conv backend 'cuda'"):
        run_stage(distill.main, distill.parser(), [*base, "--params", '{"backend": "cuda"}'])
    with pytest.raises(SystemExit, match=f"{tmp_path / 'scene.zarr'}: store does not exist"):
        run_stage(distill.main, distill.parser(), [*base, "--params", "{}"])
    assert list(tmp_path.iterdir()) == []


def test_gaussians_take_their_nearest_points_feature_and_select_by_best_class():
    points = np.array([[0.0, 0, 0], [1, 0, 0], [0, 2, 0]])
    point_features = np.array([E1, E2, [1.0, 1.0]])
    feats, distance = gaussian_features(points, point_features, np.array([[0.9, 0, 0], [0, 0, 0], [0, 1.6, 0]]))
    assert feats.tolist() == [E2, E1, [1.0, 1.0]] and np.allclose(distance, [0.1, 0.0, 0.4])
    embed = TextEmbedder(torch.tensor([E1, E2]), ["chair", "table"])
    gaussians = torch.tensor([E1, E2, [1.0, 0.2]])
    assert select_gaussians(gaussians, embed, ["chair", "table"], "Chair").tolist() == [True, False, True]
    with pytest.raises(QueryError, match="not in the stored vocabulary"):
        select_gaussians(gaussians, embed, ["chair", "table"], "lamp")


def test_the_sas_query_selects_the_gaussians_of_the_queried_class(tmp_path, capsys):
    """One Gaussian per scene point, distilled features = the text feature of each point's GT class: a query
    selects exactly that class's Gaussians; --out and a missing --scene are one-line errors."""
    scene = tiny_scene()
    paths = write_inputs(tmp_path, scene, point_gaussians(scene))
    categories = list(scene.categories)
    labels = np.asarray(scene.points_semantic)
    text = np.eye(len(categories) + 1, dtype=np.float32)[:len(categories)]
    features = np.eye(len(categories) + 1, dtype=np.float32)[np.where(labels < 0, len(categories), labels)]
    distilled = tmp_path / "distilled.zarr"
    with write_store("distilled_points", distilled, "test", {}) as w:
        w.write("point_features", features)
        w.write("text_features", text)
        w.write("superpoint", np.zeros(len(labels), np.int32))
        w.write("losses", np.zeros((1, 4), np.float32))
        w.attrs.update(backend="torch", schedule="test", vocabulary=categories, losses=["a", "b", "c", "d"],
                       voxel_size=0.2, superpoint_source="test", num_superpoints=1, seconds_per_epoch=0.0,
                       points_per_second=0.0)
    name = categories[int(np.bincount(labels[labels >= 0]).argmax())]
    base = ["--method", "sas", "--codebook", str(distilled), "--gaussians", str(paths["gaussians"]), "--text", name]
    run_stage(query.main, query.parser(), [*base, "--scene", str(paths["scene"])])
    expected = int((labels == categories.index(name)).sum())
    assert f"query {name!r}: {expected} of {len(labels)} Gaussians" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="needs --scene"):
        run_stage(query.main, query.parser(), base)
    with pytest.raises(SystemExit, match="--out .* is not supported"):
        run_stage(query.main, query.parser(), [*base, "--scene", str(paths["scene"]), "--out", "x.png"])
