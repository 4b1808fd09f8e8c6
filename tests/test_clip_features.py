"""open_clip wrapper on tiny random-weight ViT and ConvNeXt CLIPs: shapes, norms, known answers, determinism."""

import json

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from stages.lib.models.clip_features import (
    TINY_EMBED_DIM,
    ClipModel,
    build_clip,
    tiny_overrides,
)

ARCHS = {"ViT-B-16": 224 // 16, "convnext_base_w": 256 // 32}  # arch -> dense grid side


@pytest.fixture(scope="module", params=list(ARCHS))
def clip(request) -> tuple[str, ClipModel]:
    torch.manual_seed(0)
    return request.param, build_clip(request.param, None, "cpu", random_weights=True, tiny=True)


def images(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def assert_unit_rows(x: torch.Tensor) -> None:
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(x.shape[:-1]))


def test_encode_crops_shapes_norms_and_batching(clip):
    _, model = clip
    crops = images(5, 30, 45)
    out = model.encode_crops(crops)
    assert out.shape == (5, TINY_EMBED_DIM) and out.dtype == torch.float32
    assert_unit_rows(out)
    torch.testing.assert_close(model.encode_crops(crops, batch_size=2), out, atol=1e-5, rtol=1e-5)
    assert model.encode_crops(crops[:0]).shape == (0, TINY_EMBED_DIM)
    assert not torch.allclose(out[0], out[1])


def test_encode_text_shapes_norms_determinism(clip):
    _, model = clip
    out = model.encode_text(["a chair", "a wooden table", "a lamp"])
    assert out.shape == (3, TINY_EMBED_DIM)
    assert_unit_rows(out)
    torch.testing.assert_close(model.encode_text(["a wooden table"])[0], out[1])


def test_encode_vocabulary_averages_normalised_templates_then_renormalises(clip, monkeypatch):
    _, model = clip
    table = {
        "a chair.": [1.0, 0.0, 0.0],
        "photo of chair": [0.0, 1.0, 0.0],
        "a lamp.": [0.0, 0.0, 1.0],
        "photo of lamp": [0.6, 0.0, 0.8],
    }
    monkeypatch.setattr(model, "encode_text", lambda texts: torch.tensor([table[t] for t in texts]))
    out = model.encode_vocabulary(["chair", "lamp"], ["a {}.", "photo of {}"])
    s = 2**-0.5
    expected = torch.tensor([[s, s, 0.0], F.normalize(torch.tensor([0.3, 0.0, 0.9]), dim=0).tolist()])
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError):
        model.encode_vocabulary(["chair"], ["no placeholder"])


def test_encode_vocabulary_with_real_text_tower(clip):
    _, model = clip
    out = model.encode_vocabulary(["chair", "lamp", "sofa"], ["a {} in a scene", "a photo of a {}."])
    assert out.shape == (3, TINY_EMBED_DIM)
    assert_unit_rows(out)


def test_dense_features_grid_norms_determinism(clip):
    arch, model = clip
    image = images(1, 90, 120)[0]
    dense = model.dense_features(image)
    side = ARCHS[arch]
    assert dense.shape == (side, side, TINY_EMBED_DIM)
    assert_unit_rows(dense)
    torch.testing.assert_close(model.dense_features(image), dense)
    assert not torch.allclose(dense[0, 0], dense[-1, -1])


def test_vit_dense_equals_projected_final_tokens():
    torch.manual_seed(0)
    model = build_clip("ViT-B-16", None, "cpu", random_weights=True, tiny=True)
    image = images(1, 64, 64)[0]
    visual = model.model.visual
    visual.output_tokens = True
    with torch.inference_mode():
        _, tokens = visual(model._prepare(image[None]))
        expected = F.normalize(tokens[0] @ visual.proj, dim=-1).view(14, 14, -1)
    visual.output_tokens = False
    torch.testing.assert_close(model.dense_features(image), expected)


def test_convnext_dense_on_constant_map_equals_image_embedding(monkeypatch):
    torch.manual_seed(0)
    model = build_clip("convnext_base_w", None, "cpu", random_weights=True, tiny=True)
    trunk = model.model.visual.trunk
    cell = torch.randn(1, trunk.num_features, 1, 1)
    monkeypatch.setattr(trunk, "forward_features", lambda x: cell.expand(len(x), -1, 3, 5))
    crop = images(1, 32, 32)
    dense = model.dense_features(crop[0])
    assert dense.shape == (3, 5, TINY_EMBED_DIM)
    torch.testing.assert_close(dense, model.encode_crops(crop)[0].expand(3, 5, -1), atol=1e-5, rtol=1e-5)


def test_checkpoint_round_trip(tmp_path):
    (tmp_path / "tiny-vit-b-16.json").write_text(json.dumps(tiny_overrides("ViT-B-16")))
    open_clip.add_model_config(tmp_path)
    torch.manual_seed(1)
    source = build_clip("tiny-vit-b-16", None, "cpu", random_weights=True)
    checkpoint = tmp_path / "tiny.pt"
    torch.save(source.model.state_dict(), checkpoint)
    loaded = build_clip("tiny-vit-b-16", checkpoint, "cpu")
    crops = images(2, 20, 20)
    torch.testing.assert_close(loaded.encode_crops(crops), source.encode_crops(crops))
    torch.testing.assert_close(loaded.encode_text(["a chair"]), source.encode_text(["a chair"]))


def test_build_argument_checks(tmp_path):
    with pytest.raises(ValueError):
        build_clip("ViT-B-16", None, "cpu")
    with pytest.raises(ValueError):
        build_clip("ViT-B-16", tmp_path / "x.pt", "cpu", random_weights=True)
    with pytest.raises(ValueError):
        build_clip("ViT-B-16", tmp_path / "x.pt", "cpu", tiny=True)
    with pytest.raises(FileNotFoundError):
        build_clip("ViT-B-16", tmp_path / "missing.pt", "cpu")
    with pytest.raises(ValueError):
        tiny_overrides("no-such-arch")
