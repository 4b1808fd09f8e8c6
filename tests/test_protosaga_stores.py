"""Stores Proto-SaGa adds or changes: oracle masks with per-view shuffled ids, and the instance_metrics contract."""

import json

import numpy as np
import pytest
from oracle_stores import tiny_scene

from stages import masks as masks_stage
from stages.lib.cli import run_stage
from stages.lib.mask_store import load_masks
from stages.lib.store import StoreError, read_store, write_store


@pytest.fixture(scope="module")
def mask_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("shuffle")
    scene = tiny_scene()
    scene.write(root / "scene.zarr", "test", {}, dataset="synthetic", scene="tiny", reader="synthetic")
    out = {}
    for name, shuffle in (("plain", False), ("shuffled", True)):
        params = {"source": "oracle", "levels": {"whole": ["whole"]}, "shuffle_ids": shuffle}
        run_stage(masks_stage.main, masks_stage.parser(), ["--scene", str(root / "scene.zarr"), "--out",
                                                           str(root / f"{name}.zarr"), "--params", json.dumps(params)])
        out[name] = load_masks(root / f"{name}.zarr")
    return out


def test_shuffled_ids_are_a_per_view_permutation(mask_pair):
    plain, shuffled = mask_pair["plain"], mask_pair["shuffled"]
    assert shuffled.attrs["shuffle_ids"] is True and plain.num_masks == shuffled.num_masks
    changed = 0
    for v in range(plain.labels.shape[0]):
        a, b = plain.labels[v, 0], shuffled.labels[v, 0]
        assert np.array_equal(a < 0, b < 0)
        pairs = np.unique(np.stack([a[a >= 0], b[b >= 0]]), axis=1)
        assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]  # one-to-one relabelling
        changed += int((pairs[0] != pairs[1]).any())
        rows = shuffled.rows(v, 0)  # the table still describes each id's mask
        ids, areas = shuffled.table["mask_id"][rows], shuffled.table["mask_area"][rows]
        assert [int((b == i).sum()) for i in ids] == areas.tolist()
    assert changed >= plain.labels.shape[0] // 2


def test_instance_metrics_store_contract(tmp_path):
    with write_store("instance_metrics", tmp_path / "ok.zarr", "test", {}) as w:
        w.write("scores", np.array([[0.9, 0.8, 0.7, 0.6]], np.float32))
        w.attrs.update(rows=[{"protocol": "test", "scheme": "protosaga_proto"}], columns=["mIoU", "precision",
                                                                                         "recall", "mBIoU"])
    store = read_store("instance_metrics", tmp_path / "ok.zarr")
    assert store.sizes["R"] == 1 and store.load("scores").shape == (1, 4)
    with pytest.raises(StoreError, match="axis 1"):
        with write_store("instance_metrics", tmp_path / "bad.zarr", "test", {}) as w:
            w.write("scores", np.zeros((2, 3), np.float32))
            w.attrs.update(rows=[], columns=[])
    assert not (tmp_path / "bad.zarr").exists()
