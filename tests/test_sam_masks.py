"""SAM mask wrapper contract on an untrained ViT-B (CPU): types, shapes, levels, boxes, areas, thresholds.

The image encoder runs once for the whole module (its output is memoised per input), so the file stays fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stages.lib.models.sam_masks import (
    MaskParams,
    RawMask,
    build_sam,
    generate_level_masks,
    generate_masks,
    remove_small_regions,
)
from stages.lib.weights import WeightsError

H, W = 48, 64
KEEP_ALL = {"points_per_side": 2, "points_per_batch": 2, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


class MemoEncoder(torch.nn.Module):
    """Wraps an image encoder; repeated calls with the same input return the stored output."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder
        self.img_size = encoder.img_size
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for seen, out in self.calls:
            if torch.equal(seen, x):
                return out
        self.calls.append((x.clone(), self.encoder(x)))
        return self.calls[-1][1]


@pytest.fixture(scope="module")
def sam():
    torch.manual_seed(0)
    model = build_sam("vit_b", None, "cpu", random_weights=True)
    model.image_encoder = MemoEncoder(model.image_encoder)
    return model


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def level_masks(sam, image) -> list[RawMask]:
    return generate_level_masks(sam, image, KEEP_ALL)


def assert_contract(m: RawMask) -> None:
    seg = m.segmentation
    assert seg.dtype == bool and seg.shape == (H, W)
    assert isinstance(m.predicted_iou, float) and isinstance(m.stability_score, float)
    assert isinstance(m.area, int) and m.area == int(seg.sum()) > 0
    x, y, w, h = m.bbox
    assert all(isinstance(v, int) for v in m.bbox) and w > 0 and h > 0
    inside = seg[y:y + h, x:x + w]
    assert inside.sum() == m.area  # nothing outside the box
    assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()  # tight box


def test_build_sam_refuses_missing_weights_without_the_random_flag():
    with pytest.raises(ValueError, match="random_weights=True"):
        build_sam("vit_b", None, "cpu")


def test_build_sam_missing_checkpoint_says_how_to_fetch(tmp_path: Path):
    with pytest.raises(WeightsError) as err:
        build_sam("vit_b", tmp_path / "sam" / "sam_vit_b_01ec64.pth", "cpu")
    assert isinstance(err.value, FileNotFoundError)
    assert f"python -m stages.weights fetch sam_vit_b --weights-dir {tmp_path}" in str(err.value)


def test_build_sam_loads_a_checkpoint(tmp_path: Path, sam):
    path = tmp_path / "ckpt.pth"
    state = {k.replace("image_encoder.encoder.", "image_encoder."): v for k, v in sam.state_dict().items()}
    state["mask_decoder.iou_token.weight"] = torch.full_like(state["mask_decoder.iou_token.weight"], 0.25)
    torch.save(state, path)
    loaded = build_sam("vit_b", path, "cpu")
    assert not loaded.training
    assert torch.equal(loaded.mask_decoder.iou_token.weight, state["mask_decoder.iou_token.weight"])


def test_level_masks_contract(level_masks):
    assert {m.level for m in level_masks} == {0, 1, 2}
    for m in level_masks:
        assert_contract(m)


def test_level_masks_apply_the_iou_threshold(sam, image, level_masks):
    top = max(m.predicted_iou for m in level_masks)
    assert generate_level_masks(sam, image, {**KEEP_ALL, "pred_iou_thresh": top}) == []


def test_level_masks_are_deduplicated_per_level(sam, image, level_masks):
    no_nms = generate_level_masks(sam, image, {**KEEP_ALL, "box_nms_thresh": 1.0})
    assert len(no_nms) == 3 * 4 > len(level_masks)
    assert {m.level for m in no_nms} == {0, 1, 2}


def test_automatic_masks_contract(sam, image):
    masks = generate_masks(sam, image, KEEP_ALL)
    assert masks and all(m.level == -1 for m in masks)
    for m in masks:
        assert_contract(m)


def test_bad_inputs_are_rejected(sam, image):
    with pytest.raises(ValueError, match="RGB uint8"):
        generate_level_masks(sam, image.astype(np.float32), KEEP_ALL)
    with pytest.raises(ValueError, match="unknown SAM mask parameters"):
        MaskParams.from_dict({"points_per_sid": 4})
    with pytest.raises(ValueError, match="crop_n_layers"):
        generate_level_masks(sam, image, {**KEEP_ALL, "crop_n_layers": 1})


def test_remove_small_regions_fills_holes_and_drops_islands():
    mask = np.zeros((12, 12), bool)
    mask[1:9, 1:9] = True
    mask[4, 4] = False  # 1-pixel hole
    mask[11, 11] = True  # 1-pixel island
    cleaned = remove_small_regions(mask, min_area=3)
    expected = np.zeros_like(mask)
    expected[1:9, 1:9] = True
    np.testing.assert_array_equal(cleaned, expected)
    np.testing.assert_array_equal(remove_small_regions(mask, 0), mask)
