"""Known-answer tests for the leaf purification after Eq. 8 (``purify_k``, ours): per-mask blending weights, the
consistency of a Gaussian with a leaf's associated masks, and the reassignment rule."""

import numpy as np
import pytest
import torch

from stages.lib.instance_gaussians import Cameras, InstanceGaussians, render_alpha
from stages.methods.openins.association import (
    AssociationConfig,
    Associations,
    association_consistency,
    mask_blend_weights,
    purify_leaves,
)


def three_gaussians() -> tuple[InstanceGaussians, Cameras, torch.Tensor]:
    """Three small opaque Gaussians 3 m before the camera (fx = 40, 32x24, sigma 2 px) at pixel u = 8, 24 and 20;
    the label map splits the image into mask 0 (u < 16) and mask 1 (u >= 16). The third Gaussian sits in the right
    half but shares leaf 0 with the first (a wall piece in a picture's leaf)."""
    g = InstanceGaussians(means=torch.tensor([[-0.6, 0.0, 3.0], [0.6, 0.0, 3.0], [0.3, 0.0, 3.0]]),
                          quats=torch.tensor([[1.0, 0, 0, 0]] * 3), scales=torch.full((3, 3), 0.15),
                          opacities=torch.tensor([0.99, 0.99, 0.99]), features=torch.eye(3)[:, :2],
                          leaf_id=torch.tensor([0, 1, 0]), num_instances=2)
    cams = Cameras(torch.eye(4)[None], torch.tensor([[[40.0, 0, 16], [0, 40.0, 12], [0, 0, 1]]]), 32, 24)
    labels = torch.zeros(1, 24, 32, dtype=torch.long)
    labels[0, :, 16:] = 1
    return g, cams, labels


def test_mask_blend_weights_split_each_gaussian_by_mask():
    """The first Gaussian's weight lies in mask 0 only, and equals its alpha rendered alone summed over the image."""
    g, cams, labels = three_gaussians()
    w = mask_blend_weights(g, cams, labels[0], 2)
    alone = render_alpha(g.take(torch.tensor([0])), cams).sum()
    assert w.shape == (3, 2)
    assert w[0, 1] == 0 and torch.isclose(w[0, 0], alone, rtol=1e-4)
    assert w[2, 1] > 10 * w[2, 0]  # u = 20 with sigma 2 px: almost all of it right of u = 16


def test_consistency_and_purification_move_the_stray_gaussian():
    """Leaf 0 is associated with mask 0, leaf 1 with mask 1: the third Gaussian (leaf 0, right half) is consistent
    with leaf 1, not its own, and moves there; the first stays; a margin above the gain keeps it."""
    g, cams, labels = three_gaussians()
    assoc = Associations(instance=torch.tensor([0, 1]), view=torch.tensor([0, 0]), mask=torch.tensor([0, 1]),
                         score=torch.tensor([0.9, 0.9]))
    candidates = torch.tensor([[0, 1], [1, 0], [0, 1]])  # own leaf first
    c = association_consistency(g, cams, labels, assoc, candidates)
    assert torch.allclose(c[0], torch.tensor([1.0, 0.0]), atol=1e-6)
    assert torch.allclose(c[1], torch.tensor([1.0, 0.0]), atol=1e-6)
    assert c[2, 0] < 0.1 and c[2, 1] > 0.9 and torch.isclose(c[2].sum(), torch.tensor(1.0))
    assert purify_leaves(candidates, c, 0.4).tolist() == [0, 1, 1]
    assert purify_leaves(candidates, c, 0.99).tolist() == [0, 1, 0]


def test_consistency_by_centre_counts_the_views_where_the_centre_falls_in_the_mask():
    """By centre the shares are whole views: each Gaussian's centre falls in one mask (u = 8: mask 0; u = 24 and 20:
    mask 1). A second view that sees nothing (the Gaussians behind it) does not count; in a view where leaf 0 has no
    mask nothing counts for it."""
    g, cams, labels = three_gaussians()
    behind = torch.eye(4)
    behind[2, 2], behind[0, 0] = -1.0, -1.0  # turned around: every Gaussian behind the camera
    cams2 = Cameras(torch.stack([cams.viewmats[0], behind]), cams.Ks.expand(2, 3, 3), 32, 24)
    labels2 = labels.expand(2, 24, 32)
    assoc = Associations(instance=torch.tensor([0, 1, 0]), view=torch.tensor([0, 0, 1]), mask=torch.tensor([0, 1, 0]),
                         score=torch.tensor([0.9, 0.9, 0.9]))
    candidates = torch.tensor([[0, 1], [1, 0], [0, 1]])
    c = association_consistency(g, cams2, labels2, assoc, candidates, by="centre")
    assert c.tolist() == [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    assert purify_leaves(candidates, c, 0.4).tolist() == [0, 1, 1]
    hidden = Associations(instance=torch.tensor([0]), view=torch.tensor([1]), mask=torch.tensor([0]),
                          score=torch.tensor([0.9]))
    assert (association_consistency(g, cams2, labels2, hidden, candidates, by="centre") == -1).all()
    with pytest.raises(ValueError, match="purify_by"):
        AssociationConfig(purify_by="nearest")


def test_consistency_by_centre_with_a_depth_test_skips_hidden_centres():
    """A fourth Gaussian (leaf 1) sits 3 m straight behind the first, at the same pixel: without the depth test the view
    counts for it (some of its weight reaches the mask) and its centre lies outside leaf 1's mask (0.0); with it, the
    view does not count (-1), while the front Gaussians keep their shares."""
    g, cams, labels = three_gaussians()
    g = InstanceGaussians(means=torch.cat([g.means, torch.tensor([[-1.2, 0.0, 6.0]])]),
                          quats=torch.tensor([[1.0, 0, 0, 0]] * 4), scales=torch.cat([g.scales, torch.full((1, 3), 0.3)]),
                          opacities=torch.tensor([0.99, 0.99, 0.99, 0.99]), features=torch.eye(4)[:, :2],
                          leaf_id=torch.tensor([0, 1, 0, 1]), num_instances=2)
    assoc = Associations(instance=torch.tensor([0, 1]), view=torch.tensor([0, 0]), mask=torch.tensor([0, 1]),
                         score=torch.tensor([0.9, 0.9]))
    candidates = torch.tensor([[0, 1], [1, 0], [0, 1], [1, 0]])
    loose = association_consistency(g, cams, labels, assoc, candidates, by="centre")
    strict = association_consistency(g, cams, labels, assoc, candidates, by="centre", visible_margin=0.01)
    assert loose[3].tolist() == [0.0, 1.0]
    assert strict[3].tolist() == [-1.0, -1.0]
    assert strict[:3].tolist() == loose[:3].tolist() == [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]


def test_purify_leaves_by_hand():
    """Move only past the margin; never out of a leaf without consistency (-1) or for a Gaussian without a leaf."""
    candidates = torch.tensor([[0, 1, 2], [1, 0, 0], [2, 1, -1], [-1, 1, 2]])
    consistency = torch.tensor([[0.2, 0.7, 0.5], [0.5, 0.8, 0.8], [-1.0, 0.9, -1.0], [-1.0, 0.9, 0.1]])
    assert purify_leaves(candidates, consistency, 0.4).tolist() == [1, 1, 2, -1]
    assert purify_leaves(candidates, consistency, 0.2).tolist() == [1, 0, 2, -1]


def test_query_labels_by_the_association_leaf_id(tmp_path):
    """An association store with a refined ``leaf_id`` replaces the codebook's in the query; without one, the
    codebook's is used."""
    from stages.lib.store import write_store
    from stages.methods.openins.query import Query
    from tests.oracle_stores import write_oracle_codebook

    write_oracle_codebook(tmp_path / "codebook.zarr", np.array([0, 0, 1, 1]), 2)
    for name, refined in (("plain", None), ("refined", np.array([0, 1, 1, 1], np.int32))):
        with write_store("association", tmp_path / f"{name}.zarr", "test", {}) as w:
            w.write("instance_language", np.eye(2, dtype=np.float16))
            w.write("instance_views", np.ones(2, np.int32))
            w.write("instance_label", np.arange(2, dtype=np.int32))
            w.write("text_features", np.eye(2, dtype=np.float16))
            if refined is not None:
                w.write("leaf_id", refined)
            w.attrs.update(vocabulary=["wall", "picture"])
    assert Query.load(tmp_path / "plain.zarr", tmp_path / "codebook.zarr").leaf_id.tolist() == [0, 0, 1, 1]
    query = Query.load(tmp_path / "refined.zarr", tmp_path / "codebook.zarr")
    assert query.leaf_id.tolist() == [0, 1, 1, 1]
    assert query.subset_labels(["wall", "picture"]).tolist() == [0, 1, 1, 1]
