"""Crop geometry of the masked square crops and the crop/context fusion (OpenInsGaussian alpha)."""

import numpy as np
import pytest
import torch

from stages.lib.crops import (
    cell_counts,
    footprint_channels,
    fuse_crop_context,
    masked_square_crop,
    pool_in_masks,
    square_box,
)


def test_square_box_is_centred_on_the_mask_box():
    assert square_box((10, 20, 6, 2)) == (10, 18, 6)   # wide box: square grows vertically around its centre
    assert square_box((4, 4, 2, 8)) == (1, 4, 8)       # tall box: grows horizontally


def test_masked_crop_blanks_background_and_keeps_geometry():
    image = np.full((20, 30, 3), 200, np.uint8)
    image[5:9, 10:18] = (10, 20, 30)
    mask = np.zeros((20, 30), bool)
    mask[5:9, 10:18] = True            # 4 x 8 box -> 8 x 8 square, rows 3..10
    crop = masked_square_crop(image, mask, size=8)
    assert crop.shape == (8, 8, 3)
    assert (crop[2:6] == (10, 20, 30)).all(), "the object fills the middle rows at its own colour"
    assert (crop[:2] == 0).all() and (crop[6:] == 0).all(), "pixels outside the mask are black, not the wall"


def test_crop_at_the_image_border_is_padded_black():
    image = np.full((10, 10, 3), 255, np.uint8)
    mask = np.zeros((10, 10), bool)
    mask[0:2, 0:6] = True  # 2 x 6 box at the top edge -> square rows -2..3
    crop = masked_square_crop(image, mask, size=6)
    assert (crop[:2] == 0).all() and (crop[2:4] == 255).all() and (crop[4:] == 0).all()


def test_pool_in_masks_averages_the_upsampled_dense_map():
    dense = torch.zeros(2, 2, 2)
    dense[:, 0, 0] = 1.0   # left half points along e0
    dense[:, 1, 1] = 1.0   # right half along e1
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, :, :1] = True
    masks[1, :, 3:] = True
    pooled = pool_in_masks(dense, masks)
    assert torch.allclose(pooled, torch.eye(2), atol=1e-6)


def test_fusion_known_answer():
    crop, ctx = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert torch.allclose(fuse_crop_context(crop, ctx, 0.0), crop)
    assert torch.allclose(fuse_crop_context(crop, ctx, 1.0), torch.tensor([[0.0, 1.0]]))
    expected = torch.tensor([[0.6, 0.4]]) / torch.tensor([[0.6, 0.4]]).norm()
    assert torch.allclose(fuse_crop_context(crop, ctx, 0.4), expected)
    with pytest.raises(ValueError):
        fuse_crop_context(crop, ctx, 1.5)


def test_pool_in_masks_equals_upsampling_then_averaging():
    g = torch.Generator().manual_seed(0)
    dense = torch.randn(3, 4, 16, generator=g)
    masks = torch.rand(5, 24, 32, generator=g) > 0.6
    up = torch.nn.functional.interpolate(dense.permute(2, 0, 1)[None], size=(24, 32), mode="bilinear",
                                         align_corners=False)[0]
    direct = torch.stack([up[:, m].mean(1) for m in masks])
    assert torch.allclose(pool_in_masks(dense, masks), torch.nn.functional.normalize(direct, dim=-1), atol=1e-5)


def test_masks_share_a_pull_back_channel_only_when_their_footprints_are_apart():
    """On a 4x4 grid over 16x16 pixels: masks 0 and 2 lie 2 cells apart (shared channel), mask 1 touches both."""
    masks = torch.zeros(3, 16, 16)
    masks[0, :4, :4] = 1   # cell (0, 0)
    masks[1, :4, 4:8] = 1  # cell (0, 1), next to mask 0
    masks[2, 12:, 12:] = 1  # cell (3, 3)
    counts = cell_counts(masks, (4, 4))
    assert counts[0, 0, 0] == 16 and counts[1, 0, 1] == 16 and counts.sum() == 48
    foot = torch.nn.functional.max_pool2d((counts > 0).float()[:, None], 3, stride=1, padding=1)[:, 0] > 0
    assert footprint_channels(foot).tolist() == [0, 1, 0]


def test_pool_in_masks_packing_is_exact():
    """Packed channels give bit for bit the pooled features of one channel per mask (the masks one at a time
    share nothing, so each is pooled through its own channel)."""
    g = torch.Generator().manual_seed(1)
    dense = torch.randn(4, 5, 8, generator=g)
    masks = torch.zeros(4, 32, 40, dtype=torch.bool)
    masks[0, :8, :8] = masks[1, 20:, 30:] = masks[2, 4:20, 6:18] = masks[3, 24:, :10] = True
    together = pool_in_masks(dense, masks)
    assert all(torch.equal(together[i], pool_in_masks(dense, masks[i:i + 1])[0]) for i in range(4))
