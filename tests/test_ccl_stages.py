"""CCL-LGS stages in process on a tiny synthetic room with oracle priors: the ``prototypes`` store contract (codebook
stage), the semantic field with its decoders (train_features), the evaluation piece and the query CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from oracle_stores import check_query_masks, point_gaussians, tiny_scene

from stages import codebook, evaluate_semantic, features, masks, query, track, train_features
from stages.lib.cli import run_stage
from stages.lib.gaussians import save_gaussians
from stages.lib.store import StoreError, read_store, write_store
from stages.methods.ccl.losses import nearest_prototype
from stages.methods.ccl.query import CCLField

LEVELS = {"subpart+part": ["subpart", "part"], "whole+part": ["whole", "part"]}
CODEBOOK = {"algorithm": "ccl_contrastive", "num_prototypes": 16, "epochs": 4, "views_per_batch": 3}
FIELD = {"objective": "ccl_semantic", "objective_params": {"lr": 0.01}, "level": "whole+part", "feature_dim": 16,
         "iterations": 80, "lr_features": 0.03, "checkpoint_every": 0}


def run(module, *argv, params=None):
    run_stage(module.main, module.parser(), [*map(str, argv), "--params", json.dumps(params or {})])


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ccl")
    scene = tiny_scene()
    p = {name: tmp / f"{name}.zarr" for name in ("scene", "gaussians", "masks", "tracks", "features", "codebook",
                                                 "field", "semantic")}
    scene.write(p["scene"], "test", {}, dataset="synthetic", scene="tiny", reader="synthetic")
    save_gaussians(p["gaussians"], point_gaussians(scene), "test", {}, {},
                   {"sh_degree": 0, "background": [0.0, 0.0, 0.0], "iterations": 0})
    run(masks, "--scene", p["scene"], "--out", p["masks"], params={"source": "oracle", "levels": LEVELS})
    run(track, "--scene", p["scene"], "--masks", p["masks"], "--out", p["tracks"], params={"source": "oracle"})
    run(features, "--scene", p["scene"], "--masks", p["masks"], "--out", p["features"],
        params={"source": "oracle", "alpha": 0.0, "oracle": {"dim": 64}})
    run(codebook, "--scene", p["scene"], "--masks", p["masks"], "--tracks", p["tracks"], "--features",
        p["features"], "--out", p["codebook"], params=CODEBOOK)
    run(train_features, "--scene", p["scene"], "--gaussians", p["gaussians"], "--masks", p["masks"], "--codebook",
        p["codebook"], "--out", p["field"], params=FIELD)
    run(evaluate_semantic, "--scene", p["scene"], "--gaussians", p["field"], "--codebook", p["codebook"],
        "--out", p["semantic"], "--table", tmp / "semantic.csv", params={"evaluation": "ccl"})
    return scene, p, tmp


def test_prototypes_store_contract_and_index_maps(stores):
    scene, p, _ = stores
    store = read_store("prototypes", p["codebook"])
    assert store.attrs["levels"] == list(LEVELS) and store.attrs["num_prototypes"] == 16
    assert store["prototypes"].shape == (2, 16, 64) and store["index_maps"].dtype == np.int16
    assert store["index_maps"].shape == (scene.num_views, 2, scene.height, scene.width)
    assert store["canonical_features"].shape == (4, 64) and store.attrs["margin"] == 0.7
    labels = read_store("masks", p["masks"]).load("labels")
    maps = store.load("index_maps")
    assert np.array_equal(maps == -1, labels == -1)  # a prototype exactly where a mask is
    # Eq. 4 for every mask of view 1, level 0: the index map holds the nearest prototype of the mask's feature.
    table = read_store("masks", p["masks"])
    rows = np.nonzero((table.load("mask_view") == 1) & (table.load("mask_level") == 0))[0]
    feats = torch.from_numpy(read_store("features", p["features"]).load("mask_features")[rows].astype(np.float32))
    nearest = nearest_prototype(feats, torch.from_numpy(store.load("prototypes")[0])).numpy()
    for row, j in zip(rows, nearest):
        assert np.all(maps[1, 0][labels[1, 0] == table.load("mask_id")[row]] == j)
    assert store.load("prototype_masks").sum() > 0


def test_prototypes_contract_rejects_a_missing_array(tmp_path):
    with pytest.raises(StoreError, match="required array 'index_maps' is missing"):
        with write_store("prototypes", tmp_path / "bad.zarr", "test", {}) as w:
            w.write("prototypes", np.zeros((1, 2, 3), np.float32))
            w.attrs.update(levels=["a"], num_prototypes=2, vocabulary=[], canonical_phrases=[])
    assert not (tmp_path / "bad.zarr").exists()


def test_codebook_rejects_tracks_of_other_masks(stores, tmp_path):
    _, p, _ = stores
    other = tmp_path / "tracks.zarr"
    with write_store("tracks", other, "test", {}) as w:
        w.write("track_id", np.zeros(3, np.int32))
        w.attrs.update(source="test", oracle=True, num_tracks=1)
    with pytest.raises(SystemExit, match=f"{other}: 3 mask rows"):
        run(codebook, "--scene", p["scene"], "--masks", p["masks"], "--tracks", other, "--features", p["features"],
            "--out", tmp_path / "cb.zarr", params=CODEBOOK)


def test_field_keeps_its_decoders_and_decodes_the_index_maps(stores):
    scene, p, _ = stores
    field_store = read_store("feature_gaussians", p["field"])
    assert field_store.sizes["D"] == 16 and "objective_state" in field_store
    field = CCLField.load(p["field"], p["codebook"])
    train = np.nonzero(~scene.is_test)[0]
    from stages.lib.instance_gaussians import Cameras

    with torch.no_grad():
        decoded = field.pixel_prototypes(field.render_features(Cameras.from_scene(read_store("scene", p["scene"]),
                                                                                   train))).numpy()
    target = read_store("prototypes", p["codebook"]).load("index_maps")[train].transpose(1, 0, 2, 3)
    valid = target >= 0
    agreement = (decoded[valid] == target[valid]).mean()
    used = len(np.unique(target[valid]))
    assert agreement > 3 / used, f"decoded prototypes agree with the index maps on {agreement:.2f} of pixels"


def test_evaluation_reports_lerf_localization_ovs_and_scannet(stores):
    _, p, tmp = stores
    attrs = read_store("semantic_metrics", p["semantic"]).attrs
    assert {"loc_acc_2d", "miou_ovs_2d", "miou_2d", "miou_3d"} <= set(attrs)
    table = pd.read_csv(tmp / "semantic.csv")
    assert set(table["protocol"]) == {"scannet_3d", "scannet_3d_class", "lerf_2d", "3dovs_2d"}
    assert "loc. acc" in table.columns
    for key in ("loc_acc_2d", "miou_ovs_2d", "miou_2d", "miou_3d"):
        assert 0.0 <= attrs[key] <= 1.0
    masks = check_query_masks(p["scene"], p["semantic"])  # CCL-LGS's query masks for the bench's query figures
    assert masks.keys() == set(attrs["queries"])


def test_query_cli_selects_gaussians_and_renders_a_mask(stores, capsys):
    scene, p, tmp = stores
    category = scene.categories[int(np.max(scene.gt_semantic[0]))]
    out = tmp / "q.png"
    run(query, "--method", "ccl", "--codebook", p["codebook"], "--gaussians", p["field"], "--text", category,
        "--scene", p["scene"], "--view", 0, "--out", out)
    printed = capsys.readouterr().out
    assert f"query {category!r}:" in printed and "Gaussians" in printed and out.stat().st_size > 0
    with pytest.raises(SystemExit, match="not in the stored vocabulary"):
        run(query, "--method", "ccl", "--codebook", p["codebook"], "--gaussians", p["field"], "--text", "zebra")


def test_query_latency_bench_times_every_query_kind_on_cpu():
    from bench.ccl import query_latency

    out = query_latency(size=16, n_gaussians=500, device="cpu", repeats=3, warmup=1)
    for name in ("query_2d", "query_2d_decoded", "query_3d"):
        assert out[f"{name}_median_ms"] > 0 and out[f"{name}_p95_ms"] >= out[f"{name}_median_ms"]
