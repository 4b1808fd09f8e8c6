"""SAS's real 2D models (``clip_dense``: MaskCLIP dense features; ``sam_clip``: SAM masks classified by CLIP crops) and
the common model interface: known answers on hand-made features and masks, the MaskCLIP value path against hand
computation on a tiny random-weight open_clip ViT, checkpoint errors before any work, and the evaluation's plumbing.
Random-weight outputs are code paths only."""

import json

import numpy as np
import pytest
import torch
from oracle_stores import run_cli, tiny_diffusion_capability, tiny_scene

from stages.lib.models.clip_features import build_clip
from stages.lib.models.maskclip import maskclip_dense
from stages.lib.models.sam_masks import MaskParams, RawMask
from stages.lib.oracle.class_models import OracleClassModel
from stages.lib.oracle.embedding import encode_names
from stages.lib.store import read_store
from stages.lib.weights import WeightsError
from stages.methods.sas import evaluation, sam_clip
from stages.methods.sas.alignment import prompts
from stages.methods.sas.clip_dense import dense_classes, input_size
from stages.methods.sas.models2d import ImageInputs, ModelContext, OracleModel, alignment_text, build_models
from stages.methods.sas.sam_clip import SamClipModel, paint_masks

TINY_CLIP = {"random_weights": True, "tiny": True}


@pytest.fixture(scope="module")
def tiny_clip():
    return build_clip("ViT-B-16", None, "cpu", random_weights=True, tiny=True)


def test_dense_logits_are_upsampled_bilinearly_before_the_argmax():
    """Two patches: the left one is class 0 (cosine 1), the right one class 1 at cosine 0.5. Bilinear logits across
    8 pixels (half-pixel centres at t = 0, 0, 1/8, 3/8, 5/8, 7/8, 1, 1) favour class 1 only where 0.5 t > 1 - t,
    i.e. t > 2/3: the last three pixels (nearest upsampling would give four)."""
    text = torch.eye(3)[:2]
    patches = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.5, 0.75 ** 0.5]]])  # [1, 2, 3]
    pred = dense_classes(patches, text, (2, 8))
    np.testing.assert_array_equal(pred, [[0, 0, 0, 0, 0, 1, 1, 1]] * 2)
    assert dense_classes(3.0 * patches, 2.0 * text, (2, 8)).tolist() == pred.tolist()  # cosine: scale-free


def test_input_size_keeps_the_aspect_on_the_patch_grid():
    assert input_size(48, 64, 448, 16) == (448, 592)  # 64 * 448 / 48 = 597.3 -> 37 patches
    assert input_size(4, 400, 8, 16) == (16, 800)  # never below one patch


def test_maskclip_value_path_equals_hand_computation(tiny_clip):
    visual = tiny_clip.model.visual
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = maskclip_dense(visual, x)
        assert out.shape == (1, 14, 14, tiny_clip.embed_dim)
        before_last = visual.forward_intermediates(x, indices=[len(visual.transformer.resblocks) - 2],
                                                   intermediates_only=True, output_fmt="NLC")
        token = before_last["image_intermediates"][0][0, 3 * 14 + 5]  # patch row 3, column 5
        block = visual.transformer.resblocks[-1]
        width = block.attn.embed_dim
        v = block.ln_1(token) @ block.attn.in_proj_weight[2 * width:].T + block.attn.in_proj_bias[2 * width:]
        o = v @ block.attn.out_proj.weight.T + block.attn.out_proj.bias
        expected = visual.ln_post(o) @ visual.proj
    torch.testing.assert_close(out[0, 3, 5], expected, rtol=1e-4, atol=1e-5)


def test_maskclip_features_any_grid(tiny_clip):
    image = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    feats = tiny_clip.maskclip_features(image, (64, 96))
    assert feats.shape == (4, 6, tiny_clip.embed_dim)
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(4, 6))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        tiny_clip.maskclip_features(image, (60, 96))


def test_paint_masks_smallest_covering_mask_wins():
    masks = np.zeros((4, 4, 5), bool)
    masks[0, :, :4] = True  # 16 px, class 2
    masks[1, 1:3, 1:3] = True  # 4 px, class 0
    masks[2, 0, 0:2] = True  # 2 px, class 1
    masks[3, 0, 1:3] = True  # 2 px, class 3: ties with mask 2 at (0, 1), mask 2 (listed first) wins
    pred = paint_masks(masks, np.array([2, 0, 1, 3]))
    np.testing.assert_array_equal(pred, [[1, 1, 3, 2, -1],
                                         [2, 0, 0, 2, -1],
                                         [2, 0, 0, 2, -1],
                                         [2, 2, 2, 2, -1]])


class ColourClip:
    """A stand-in CLIP: a crop's embedding is the mean colour of its lit pixels, a prompt's the colour it names."""

    COLOURS = {"red": [1.0, 0, 0], "green": [0, 1.0, 0], "blue": [0, 0, 1.0]}

    def encode_crops(self, crops):
        lit = crops.reshape(len(crops), -1, 3).astype(np.float64)
        keep = lit.sum(-1, keepdims=True) > 0
        return torch.from_numpy((lit * keep).sum(1) / np.maximum(keep.sum(1), 1)).float()

    def encode_text(self, texts):
        return torch.tensor([next(c for n, c in self.COLOURS.items() if n in t) for t in texts])


def test_sam_clip_labels_masks_by_their_crops(monkeypatch):
    """Red square, green bar with a blue patch inside it (its own, smaller mask) on a black background."""
    image = np.zeros((20, 30, 3), np.uint8)
    image[2:8, 2:8] = (200, 10, 10)
    image[10:18, 5:25] = (10, 180, 20)
    image[12:15, 15:19] = (20, 20, 220)
    regions = [np.zeros((20, 30), bool) for _ in range(3)]
    regions[0][2:8, 2:8] = True
    regions[1][10:18, 5:25] = True  # covers the blue patch too: its crop is mostly green
    regions[2][12:15, 15:19] = True
    raw = [RawMask(m, 0.9, 0.9, int(m.sum()), (0, 0, 1, 1), -1) for m in regions]
    monkeypatch.setattr(sam_clip, "generate_masks", lambda sam, rgb, params: raw)
    model = SamClipModel("mask", None, ColourClip(), MaskParams(), crop_size=32)
    vocabulary = ["blue", "red", "green"]
    pred = model.classify(ImageInputs(image, None, None, 0), vocabulary)
    expected = np.full((20, 30), -1)
    expected[regions[0]], expected[regions[1]], expected[regions[2]] = 1, 2, 0
    np.testing.assert_array_equal(pred, expected)
    assert model.text_features(vocabulary).shape == (3, 3)
    monkeypatch.setattr(sam_clip, "generate_masks", lambda sam, rgb, params: [])
    assert (model.classify(ImageInputs(image, None, None, 0), vocabulary) == -1).all()


def test_missing_checkpoints_stop_before_any_model_loads(tmp_path, monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded before every checkpoint was checked")

    monkeypatch.setattr("stages.lib.models.clip_features.build_clip", no_load)
    context = ModelContext(weights_dir=tmp_path)
    with pytest.raises(WeightsError, match="python -m stages.weights fetch clip_vit_b16_laion2b"):
        build_models([{"name": "dense", "kind": "clip_dense"}, {"name": "o"}], context)
    with pytest.raises(WeightsError, match="python -m stages.weights fetch sam_vit_h"):  # CLIP random, SAM missing
        build_models([{"name": "dense", "kind": "clip_dense", "clip": TINY_CLIP},
                      {"name": "mask", "kind": "sam_clip", "clip": TINY_CLIP}], context)
    with pytest.raises(ValueError, match="kind 'lseg' unknown"):
        build_models([{"name": "x", "kind": "lseg"}], context)
    with pytest.raises(ValueError, match="short_sid"):
        build_models([{"name": "x", "kind": "clip_dense", "short_sid": 4}], context)


def test_oracle_kind_is_the_default_and_keeps_its_predictions():
    params = {"name": "a", "confuse": {"chair": 1.0}, "into": {"chair": "sofa"}}
    vocabulary = ["chair", "sofa", "wall"]
    semantic = np.array([[0, 0, 2], [1, -1, 2]])
    instance = np.array([[1, 1, 2], [3, 0, 2]])
    (model,) = build_models([params], ModelContext())
    assert isinstance(model, OracleModel) and model.name == "a" and not model.reads_pixels
    np.testing.assert_array_equal(model.classify(ImageInputs(None, semantic, instance, 7), vocabulary),
                                  OracleClassModel(**params).predict(semantic, instance, vocabulary, 7))
    np.testing.assert_array_equal(alignment_text([model], vocabulary, 16), encode_names(vocabulary, 16).numpy())
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.check(["sofa", "wall"])


def test_real_models_share_one_clip_whose_text_tower_aligns(tiny_clip):
    context = ModelContext()
    dense, oracle = build_models([{"name": "dense", "kind": "clip_dense", "clip": TINY_CLIP, "short_side": 32},
                                  {"name": "o"}], context)
    assert len(context.clips) == 1 and dense.reads_pixels
    vocabulary = ["chair", "wall"]
    text = alignment_text([oracle, dense], vocabulary, 16)
    np.testing.assert_allclose(text, dense.clip.encode_text(prompts(vocabulary)).numpy(), rtol=1e-5, atol=1e-6)
    image = np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    pred = dense.classify(ImageInputs(image, None, None, 0), vocabulary)  # random weights: the code path only
    assert pred.shape == (24, 40) and set(np.unique(pred)) <= {0, 1}


def test_evaluation_feeds_real_models_the_views_pixels(tmp_path):
    """A pixel-reading model gets each training view's RGB (and no labels when no oracle model is fused); the text
    features are the real models' CLIP text features (the tiny CLIP's 32 dimensions)."""
    path = tmp_path / "scene.zarr"
    tiny_scene().write(path, "test", {}, dataset="synthetic", scene="tiny", reader="synthetic")
    scene = read_store("scene", path)
    seen_views = []

    class Recorder:
        name, reads_pixels = "rec", True

        def classify(self, image, vocabulary):
            assert image.semantic is None and image.instance is None
            np.testing.assert_array_equal(image.rgb, scene["images"][image.key])
            seen_views.append(image.key)
            return np.zeros(image.rgb.shape[:2], np.int64)

    vocabulary = list(scene.attrs["categories"])
    text = np.eye(len(vocabulary))
    (feats,), seen = evaluation.model_point_features(scene, [Recorder()], vocabulary, text, 0.25)
    assert seen_views == np.nonzero(~scene.load("is_test"))[0].tolist()
    np.testing.assert_allclose(feats[seen], np.tile(text[0], (int(seen.sum()), 1)))
    models = build_models([{"name": "dense", "kind": "clip_dense", "clip": TINY_CLIP, "short_side": 32},
                           {"name": "mask", "kind": "sam_clip", "clip": TINY_CLIP,
                            "sam": {"random_weights": True, "tiny": True},
                            "masks": {"points_per_side": 2, "pred_iou_thresh": 0, "stability_score_thresh": 0}}],
                          ModelContext())
    text = alignment_text(models, vocabulary, 512)
    assert text.shape == (len(vocabulary), 32)
    features, seen = evaluation.model_point_features(scene, models, vocabulary, text, 0.25)
    assert [f.shape for f in features] == [(len(seen), 32)] * 2 and seen.any()


def test_capability_stage_with_real_models_checks_checkpoints_and_source(tmp_path):
    path = tmp_path / "scene.zarr"
    tiny_scene().write(path, "test", {}, dataset="synthetic", scene="tiny", reader="synthetic")
    out = tmp_path / "capability.zarr"
    real = [{"name": "dense", "kind": "clip_dense"}, {"name": "mask", "kind": "sam_clip"}]
    params = {"source": "diffusion", "models": real, "vocabulary": ["chair", "sofa"],
              "options": {"diffusion": {"random_weights": True}, "sam": {"random_weights": True}}}
    proc = run_cli("stages.capability", ["--scene", str(path), "--out", str(out), "--params", json.dumps(params),
                                         "--weights-dir", str(tmp_path / "weights"), "--device", "cpu"])
    assert proc.returncode != 0 and not out.exists()
    assert "python -m stages.weights fetch clip_vit_b16_laion2b" in proc.stderr
    assert "capability (diffusion)" not in proc.stderr  # stopped before the first class's images
    tiny = [{**m, "clip": TINY_CLIP, "sam": {"random_weights": True, "tiny": True}} for m in real]
    tiny[0].pop("sam")
    params = {"source": "oracle", "models": tiny, "vocabulary": ["chair", "sofa"]}
    proc = run_cli("stages.capability", ["--scene", str(path), "--out", str(out), "--params", json.dumps(params),
                                         "--device", "cpu"])
    assert proc.returncode != 0 and "read pixels (use the diffusion source)" in proc.stderr and not out.exists()


@pytest.mark.slow  # random-weight tiny SD and SAM ViT-B on CPU, like the oracle models' diffusion test
def test_diffusion_source_measures_real_models_on_the_synthesised_pixels(tmp_path):
    """Code path only (random weights): both real models classify every synthesised image; Eq. 3-4 give a capability
    in [0, 1] per model and class."""
    path = tmp_path / "scene.zarr"
    tiny_scene().write(path, "test", {}, dataset="synthetic", scene="tiny", reader="synthetic")
    out = tmp_path / "capability.zarr"
    models = [{"name": "dense", "kind": "clip_dense", "clip": TINY_CLIP, "short_side": 32},
              {"name": "mask", "kind": "sam_clip", "clip": TINY_CLIP, "sam": {"random_weights": True, "tiny": True},
               "masks": {"points_per_side": 2, "pred_iou_thresh": 0, "stability_score_thresh": 0}}]
    params = tiny_diffusion_capability(models)
    proc = run_cli("stages.capability", ["--scene", str(path), "--out", str(out), "--params", json.dumps(params),
                                         "--device", "cpu"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = read_store("capability", out)
    table = store.load("capability")
    assert store.attrs["models"] == ["dense", "mask"] and table.shape == (2, 2)
    assert ((table >= 0) & (table <= 1)).all() and (store.load("images") == 1).all()


def test_evaluation_and_distill_read_real_checkpoints_from_their_weights_dir(tmp_path):
    """The sas evaluation and the distill stage build real models from the capability store's parameters with the
    checkpoints of their own ``--weights-dir`` (the workflow's ``weights_dir``): a missing one stops them, naming that
    folder, before any output exists."""
    import zarr

    from stages import capability, distill, evaluate_semantic
    from stages.lib.cli import run_stage

    scene = tmp_path / "scene.zarr"
    tiny_scene().write(scene, "test", {}, dataset="synthetic", scene="tiny", reader="synthetic")
    cap = tmp_path / "capability.zarr"
    params = {"source": "oracle", "models": [{"name": "dense"}, {"name": "mask"}],
              "options": {"images_per_class": 2, "width": 24, "height": 16}}
    run_stage(capability.main, capability.parser(),
              ["--scene", str(scene), "--out", str(cap), "--params", json.dumps(params), "--device", "cpu"])
    zarr.open_group(str(cap), mode="r+").attrs["model_params"] = [{"name": "dense", "kind": "clip_dense"},
                                                                   {"name": "mask", "kind": "sam_clip"}]
    weights = tmp_path / "my_weights"
    runs = [(evaluate_semantic, ["--out", str(tmp_path / "m.zarr"), "--table", str(tmp_path / "m.csv"),
                                 "--params", '{"evaluation": "sas"}']),
            (distill, ["--out", str(tmp_path / "d.zarr"), "--params", "{}"])]
    for stage, args in runs:
        with pytest.raises(SystemExit) as stop:
            run_stage(stage.main, stage.parser(), ["--scene", str(scene), "--capability", str(cap), *args,
                                                   "--weights-dir", str(weights), "--device", "cpu"])
        assert f"{weights}/" in str(stop.value.code), stage.__name__
        assert "python -m stages.weights fetch clip_vit_b16_laion2b" in str(stop.value.code)
    assert not (tmp_path / "m.zarr").exists() and not (tmp_path / "d.zarr").exists()
