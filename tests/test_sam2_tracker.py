"""SAM2 video propagation wrapper: label-map rules with a scripted predictor, contract with a random-weight model."""

from pathlib import Path

import numpy as np
import pytest
import torch

from stages.lib.models.sam2_tracker import (
    build_sam2_video,
    image_size_overrides,
    label_map,
    propagate_masks,
    propagate_staged,
    resolve_config,
    staged_video,
)

V, H, W = 4, 64, 64


def box_mask(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def random_frames(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (V, H, W, 3), dtype=np.uint8)


class ScriptedPredictor:
    """Stands in for SAM2VideoPredictor: object k gets logit (k + 1) inside its seed box and -1 outside, every frame."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        self.seeds: dict[int, np.ndarray] = {}
        self.calls: list[tuple[int, bool]] = []
        self.folder: Path | None = None
        self.jpegs: list[str] = []

    def init_state(self, video_path: str, offload_video_to_cpu: bool = False) -> dict:
        self.folder = Path(video_path)
        self.jpegs = sorted(p.name for p in self.folder.iterdir())
        return {}

    def add_new_mask(self, state: dict, frame_idx: int, obj_id: int, mask: np.ndarray) -> None:
        self.seeds[obj_id] = mask

    def propagate_in_video(self, state: dict, start_frame_idx: int, reverse: bool):
        self.calls.append((start_frame_idx, reverse))
        ids = list(self.seeds)
        logits = torch.stack([torch.where(torch.from_numpy(self.seeds[i]), float(i + 1), -1.0) for i in ids])[:, None]
        order = range(start_frame_idx, -1, -1) if reverse else range(start_frame_idx, V)
        for frame_idx in order:
            yield frame_idx, ids, logits


def test_label_map_highest_logit_wins_and_background_is_minus_one():
    logits = torch.tensor([[[[2.0, -1.0, 0.5]]], [[[1.0, -3.0, 4.0]]]])  # [K=2,1,H=1,W=3]
    np.testing.assert_array_equal(label_map([7, 3], logits), [[7, -1, 3]])
    assert label_map([7, 3], logits).dtype == np.int32


def test_propagate_with_scripted_predictor_covers_all_frames_both_directions():
    predictor = ScriptedPredictor()
    seeds = {1: box_mask(0, 40, 0, 40), 4: box_mask(20, 64, 20, 64)}
    labels = propagate_masks(predictor, random_frames(), seeds, seed_frame=2)
    expected = np.full((H, W), -1, dtype=np.int32)
    expected[seeds[1]] = 1
    expected[seeds[4]] = 4  # logit 5 beats logit 2 where the boxes overlap
    assert labels.shape == (V, H, W) and labels.dtype == np.int32
    for frame in labels:
        np.testing.assert_array_equal(frame, expected)
    assert predictor.calls == [(2, False), (2, True)]
    assert predictor.jpegs == [f"{i:05d}.jpg" for i in range(V)]
    assert not predictor.folder.exists()


def test_propagate_without_seeds_is_all_background():
    labels = propagate_masks(ScriptedPredictor(), random_frames(), {})
    assert (labels == -1).all() and labels.shape == (V, H, W)


@pytest.mark.parametrize(
    "frames, seeds, seed_frame",
    [
        (random_frames().astype(np.float32), {0: box_mask(0, 8, 0, 8)}, 0),
        (random_frames(), {0: np.zeros((H, W + 1), dtype=bool)}, 0),
        (random_frames(), {-1: box_mask(0, 8, 0, 8)}, 0),
        (random_frames(), {0: box_mask(0, 8, 0, 8)}, V),
    ],
)
def test_propagate_rejects_bad_inputs(frames, seeds, seed_frame):
    with pytest.raises(ValueError):
        propagate_masks(ScriptedPredictor(), frames, seeds, seed_frame)


def test_build_requires_checkpoint_unless_random_weights(tmp_path):
    with pytest.raises(ValueError):
        build_sam2_video("sam2.1_hiera_tiny", None, "cpu")
    with pytest.raises(ValueError):
        build_sam2_video("sam2.1_hiera_tiny", tmp_path / "x.pt", "cpu", random_weights=True)
    with pytest.raises(FileNotFoundError):
        build_sam2_video("sam2.1_hiera_tiny", tmp_path / "missing.pt", "cpu")


def test_config_names_and_image_size_overrides():
    assert resolve_config("sam2.1_hiera_base_plus") == "configs/sam2.1/sam2.1_hiera_b+.yaml"
    assert resolve_config("configs/sam2.1/sam2.1_hiera_l.yaml") == "configs/sam2.1/sam2.1_hiera_l.yaml"
    assert "++model.image_size=256" in image_size_overrides(256)
    assert any("feat_sizes=[16,16]" in o for o in image_size_overrides(256))
    with pytest.raises(ValueError):
        image_size_overrides(240)


def test_random_weight_tiny_model_contract():
    torch.manual_seed(0)
    predictor = build_sam2_video("sam2.1_hiera_tiny", None, "cpu", random_weights=True, image_size=128)
    assert predictor.image_size == 128
    seeds = {3: box_mask(8, 30, 8, 30), 9: box_mask(32, 60, 30, 62)}
    labels = propagate_masks(predictor, random_frames(), seeds, seed_frame=1)
    assert labels.shape == (V, H, W) and labels.dtype == np.int32
    assert set(np.unique(labels)) <= {-1, 3, 9}


def test_staged_video_reset_and_repropagated_matches_a_fresh_run():
    """The bench times propagation alone by re-seeding one staged video; reset_state must leave no trace."""
    torch.manual_seed(0)
    predictor = build_sam2_video("sam2.1_hiera_tiny", None, "cpu", random_weights=True, image_size=128)
    frames = random_frames(1)
    first = {3: box_mask(8, 30, 8, 30), 9: box_mask(32, 60, 30, 62)}
    second = {5: box_mask(0, 64, 0, 20)}
    fresh = propagate_masks(predictor, frames, second)
    with staged_video(predictor, frames) as state:
        propagate_staged(predictor, state, first, 0, np.full((V, H, W), -1, dtype=np.int32))
        predictor.reset_state(state)
        again = propagate_staged(predictor, state, second, 0, np.full((V, H, W), -1, dtype=np.int32))
    assert set(np.unique(again)) <= {-1, 5}
    np.testing.assert_array_equal(again, fresh)
