"""SAS's capability stage: the ``capability`` store contract (shape, range, alignment with the models and the
vocabulary), the oracle source finding each model's confused classes, and clear errors."""

import json

import numpy as np
import pytest
from oracle_stores import run_cli, tiny_diffusion_capability, tiny_scene

from stages.lib.semantic_metrics import QueryMasks, mask_iou
from stages.lib.store import StoreError, read_store, write_store
from stages.methods.sas import evaluation as sas_evaluation

MODELS = [{"name": "a", "confuse": {"chair": 1.0, "bed": 0.25}, "into": {"chair": "sofa", "bed": "desk"}},
          {"name": "b", "confuse": {"table": 0.5}, "into": {"table": "desk"}}]


@pytest.fixture(scope="module")
def scene_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("sas") / "scene.zarr"
    tiny_scene().write(path, "test", {}, dataset="synthetic", scene="tiny", reader="synthetic")
    return path


def test_capability_store_contract_and_oracle_source(scene_path, tmp_path):
    out = tmp_path / "capability.zarr"
    params = {"source": "oracle", "models": MODELS, "options": {"images_per_class": 40, "width": 24, "height": 16}}
    proc = run_cli("stages.capability", ["--scene", str(scene_path), "--out", str(out), "--params", json.dumps(params)])
    assert proc.returncode == 0, proc.stderr
    store = read_store("capability", out)
    vocab = store.attrs["vocabulary"]
    table = store.load("capability")
    assert store.attrs["models"] == ["a", "b"] and store.attrs["oracle"] is True
    assert table.shape == (2, len(vocab)) and table.dtype == np.float32
    assert (store.load("images") == 40).all() and ((table >= 0) & (table <= 1)).all()
    expected = np.ones_like(table)
    expected[0, vocab.index("chair")], expected[0, vocab.index("bed")] = 0.0, 0.75
    expected[1, vocab.index("table")] = 0.5
    np.testing.assert_allclose(table, expected, atol=0.17)  # 40 draws: 2.3 standard deviations of a rate of 0.5
    assert table[0, vocab.index("chair")] == 0.0 and table[1, vocab.index("chair")] == 1.0


def test_capability_store_rejects_a_misaligned_table(tmp_path):
    with pytest.raises(StoreError):
        with write_store("capability", tmp_path / "bad.zarr", "test", {}) as w:
            w.write("capability", np.zeros((2, 5), np.float32))
            w.write("images", np.zeros(4, np.int32))  # C = 5 in the table, 4 here
            w.attrs.update(source="oracle", oracle=True, models=["a", "b"], model_params=MODELS,
                           vocabulary=list("abcde"), images_per_class=0)
    assert not (tmp_path / "bad.zarr").exists()


def test_capability_stage_errors_name_the_problem(scene_path, tmp_path):
    out = tmp_path / "x.zarr"
    unknown = run_cli("stages.capability", ["--scene", str(scene_path), "--out", str(out), "--params",
                                            json.dumps({"models": [MODELS[0], {"name": "c", "confuse": {"lamp": 1}}]})])
    assert unknown.returncode != 0 and "lamp" in unknown.stderr and not out.exists()
    one = run_cli("stages.capability", ["--scene", str(scene_path), "--out", str(out), "--params",
                                        json.dumps({"models": MODELS[:1]})])
    assert one.returncode != 0 and "two 2D models" in one.stderr
    missing = run_cli("stages.capability", ["--scene", str(tmp_path / "none.zarr"), "--out", str(out), "--params",
                                            json.dumps({"models": MODELS})])
    assert missing.returncode != 0 and "none.zarr" in missing.stderr and not out.exists()


def test_class_token_positions_with_byte_tokens():
    from stages.lib.models.diffusion import MAX_TOKENS, class_token_positions

    def tokenize(text, special):
        ids = [b for w in text.split() for b in w.encode()]
        return ([256, *ids, 257] + [257] * MAX_TOKENS)[:MAX_TOKENS] if special else ids

    assert class_token_positions(tokenize, "a photo of a chair", "chair") == [10, 11, 12, 13, 14]
    with pytest.raises(ValueError, match="do not appear"):
        class_token_positions(tokenize, "a photo of a chair", "sofa")


DIFFUSION_MODELS = [{"name": "a", "confuse": {"chair": 1.0}, "into": {"chair": "sofa"}}, {"name": "b"}]


@pytest.mark.slow  # about 2 minutes on 2 busy cores (SAM ViT-B on CPU)
def test_diffusion_source_code_path_with_random_weights(scene_path, tmp_path):
    """Random-weight tiny Stable Diffusion and SAM ViT-B: the code path only (attention capture, Eq. 2, threshold,
    SAM refinement, Eq. 3-4); the pseudo masks are meaningless, but model a reads chair as sofa wherever they are."""
    out = tmp_path / "capability.zarr"
    params = tiny_diffusion_capability(DIFFUSION_MODELS)
    proc = run_cli("stages.capability", ["--scene", str(scene_path), "--out", str(out), "--params", json.dumps(params),
                                         "--device", "cpu"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = read_store("capability", out)
    np.testing.assert_array_equal(store.load("capability"), [[0.0, 1.0], [1.0, 1.0]])
    assert store.attrs["source"] == "diffusion" and store.attrs["oracle"] is False
    assert "RANDOM WEIGHTS" in proc.stderr


def test_diffusion_source_without_checkpoint_stops_before_any_work(scene_path, tmp_path):
    out = tmp_path / "capability.zarr"
    params = {"source": "diffusion", "models": DIFFUSION_MODELS, "vocabulary": ["chair", "sofa"]}
    proc = run_cli("stages.capability", ["--scene", str(scene_path), "--out", str(out), "--params", json.dumps(params),
                                         "--weights-dir", str(tmp_path / "weights")])
    assert proc.returncode != 0 and not out.exists()
    assert "stable_diffusion" in proc.stderr and "python -m stages.weights fetch" in proc.stderr
    assert "capability (diffusion)" not in proc.stderr  # stopped before the first class's images


def test_view_queries_keep_each_querys_mask_on_its_first_test_view(scene_path):
    """With the scan points' GT classes as the prediction, every category's kept mask lies on the first test view
    that shows it and matches its GT mask there (pixels take the class of their back-projected nearest point)."""
    scene = read_store("scene", scene_path)
    categories = list(scene.attrs["categories"])
    masks = QueryMasks.empty()
    ious = sas_evaluation.test_view_queries(scene, scene.load("points_semantic"), categories, masks)
    gt, test = scene.load("gt_semantic"), np.nonzero(scene.load("is_test"))[0]
    assert masks.views.keys() == ious.keys()
    for name, position in masks.views.items():
        shows = [(gt[v] == categories.index(name)).any() for v in test]
        assert position == shows.index(True)
        target = gt[test[position]] == categories.index(name)
        assert mask_iou(masks.masks[name], target) > 0.5, name
