"""The 2D-prior stages (masks, track, features) in the DAG on a tiny synthetic scene with oracle priors."""

import numpy as np
import pytest
import yaml
from workflow_runner import REPO, planned_jobs, snakemake

from stages.lib.mask_store import load_masks
from stages.lib.store import read_store

SCENE = "synthetic/tiny_room"
TARGETS = [f"{SCENE}/masks/ccl_oracle.zarr", f"{SCENE}/track/ccl_oracle.zarr",
           f"{SCENE}/features/openins_oracle.zarr", f"{SCENE}/masks/saga_oracle.zarr"]


@pytest.fixture(scope="module")
def priors_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("priors") / "results"
    snakemake(results, *[str(results / t) for t in TARGETS])
    return results


def test_oracle_prior_stores_follow_their_contracts(priors_run):
    r = priors_run
    ccl = load_masks(r / f"{SCENE}/masks/ccl_oracle.zarr")
    assert ccl.levels == ["subpart+part", "whole+part"] and ccl.attrs["oracle"] is True
    assert ccl.labels.shape[:2] == (16, 2) and ccl.num_masks > 16 * 4
    for row in np.random.default_rng(0).choice(ccl.num_masks, 20, replace=False):
        v, lv, i = (int(ccl.table[k][row]) for k in ("mask_view", "mask_level", "mask_id"))
        assert (ccl.labels[v, lv] == i).sum() == ccl.table["mask_area"][row], "painted masks keep their area"
    tracks = read_store("tracks", r / f"{SCENE}/track/ccl_oracle.zarr")
    assert tracks.sizes["M"] == ccl.num_masks and tracks.attrs["oracle"] is True
    assert tracks.attrs["matched_fraction"] > 0.5, "clean oracle masks mostly match their first-frame tracks"
    track_id = tracks.load("track_id")
    # a track never holds two masks of one view
    for v in range(16):
        ids = track_id[(ccl.table["mask_view"] == v) & (track_id >= 0)]
        assert ids.size == np.unique(ids).size
    whole = load_masks(r / f"{SCENE}/masks/whole_oracle.zarr")
    feats = read_store("features", r / f"{SCENE}/features/openins_oracle.zarr")
    assert feats.sizes["M"] == whole.num_masks and feats.attrs["alpha"] == 0.4
    f = feats.load("mask_features").astype(np.float32)
    assert np.allclose(np.linalg.norm(f, axis=1), 1, atol=2e-3)
    text = feats.load("text_features").astype(np.float32)
    assert text.shape[0] == len(feats.attrs["vocabulary"])
    saga = load_masks(r / f"{SCENE}/masks/saga_oracle.zarr")
    assert saga.pixels is not None and saga.pixels.shape[0] == saga.num_masks
    assert saga.pixels.sum(axis=(1, 2)).tolist() == saga.table["mask_area"].tolist()


def test_oracle_features_carry_the_category(priors_run):
    """Clean oracle crop features point at the mask's majority GT category."""
    r = priors_run
    from stages.lib.scene import load_scene

    scene = load_scene(r / f"{SCENE}/scene.zarr")
    whole = load_masks(r / f"{SCENE}/masks/whole_oracle.zarr")
    feats = read_store("features", r / f"{SCENE}/features/openins_oracle.zarr")
    crop = feats.load("crop_features").astype(np.float32)
    text = feats.load("text_features").astype(np.float32)
    hits, total = 0, 0
    for row in range(whole.num_masks):
        v, i = int(whole.table["mask_view"][row]), int(whole.table["mask_id"][row])
        sem = scene.gt_semantic[v][whole.labels[v, 0] == i]
        if (sem >= 0).mean() > 0.5:
            hits += int(np.argmax(crop[row] @ text.T) == np.bincount(sem[sem >= 0]).argmax())
            total += 1
    assert hits == total > 20


def test_corruption_change_reruns_masks_and_its_dependants_only(priors_run, tmp_path):
    config = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    config.setdefault("stages", {})["masks"] = {"variants": {
        "ccl_oracle": {**base["stages"]["masks"]["variants"]["ccl_oracle"], "corruption": {"dropout": 0.2}}}}
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    targets = [str(priors_run / t) for t in TARGETS]
    assert planned_jobs(priors_run, changed, *targets) == {"masks": 1, "track": 1}
    snakemake(priors_run, *targets, configfile=changed)
    assert load_masks(priors_run / f"{SCENE}/masks/ccl_oracle.zarr").attrs["corruption"] == {"dropout": 0.2}
    assert planned_jobs(priors_run, changed, *targets) == {}
