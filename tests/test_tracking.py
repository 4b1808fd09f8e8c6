"""Known answers for the IoU > 0.5 track assignment (CCL-LGS Sec. 3.3) and re-seeding; the track stage on no masks."""

import numpy as np
from oracle_stores import run_cli, tiny_scene

from stages.lib.mask_store import write_masks
from stages.lib.store import read_store
from stages.lib.track_assign import assign_tracks, label_iou
from stages.lib.tracking import TrackConfig, track_label_maps


def test_iou_table_against_hand_counts():
    labels = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    prop = np.array([[5, 5, 5, -1], [5, 5, -1, -1]])
    iou, masks, objs = label_iou(labels, prop)
    assert masks.tolist() == [0, 1] and objs.tolist() == [5]
    assert iou[0, 0] == 4 / 5 and iou[1, 0] == 1 / 8


def test_assignment_threshold_unmatched_and_ties():
    labels = np.array([[0, 0, 1, 1, 2, 2, 2, 2]])
    # mask 0 == object 7 exactly; mask 1 half-covered by object 8 (IoU 2/4 = 0.5, not > 0.5); mask 2 split 2/2
    prop = np.array([[7, 7, 8, 8, 3, 3, 9, 9]])
    prop_half = np.array([[7, 7, -1, 8, 3, 3, 9, 9]])
    assert assign_tracks(labels, prop) == {0: 7, 1: 8, 2: -1}, "mask 2 overlaps 3 and 9 at IoU 0.5 each"
    assert assign_tracks(labels, prop_half)[1] == -1, "IoU exactly 0.5 is not a match"
    # a tie above threshold: two objects each IoU 0.6 with one mask is impossible for disjoint objects, but ties
    # of equal IoU below it go unmatched; with a lower threshold the lower object id wins the tie
    assert assign_tracks(labels, prop, min_iou=0.4)[2] == 3


def test_tracks_from_first_frame_and_reseeding():
    # frame 0 shows mask A; frames 1-2 also show a new object B that propagation from frame 0 cannot know.
    v, h, w = 3, 4, 8
    labels = np.full((v, h, w), -1)
    labels[:, :, :4] = 0
    labels[1:, :, 4:] = 1
    clean = np.where(labels >= 0, labels + 10, -1)  # the objects' true ids

    def propagate(seed_frame, seeds):
        out = np.full((v, h, w), -1, np.int32)
        for obj, mask in seeds.items():
            true = np.bincount(clean[seed_frame][mask]).argmax()
            out[seed_frame:][clean[seed_frame:] == true] = obj
        return out

    cfg = TrackConfig(reseed_min_area=1)
    assign, _ = track_label_maps(labels, propagate, cfg)
    assert [a.get(1, None) for a in assign] == [None, -1, -1], "first-frame seeding never tracks B"
    assert [a[0] for a in assign] == [0, 0, 0]
    assign, prop = track_label_maps(labels, propagate, TrackConfig(reseed_after=2, reseed_min_area=1))
    assert assign[1][1] == -1 and assign[2][1] == 1, "B seeded after two frames unmatched, as a new track"
    assert (prop[2][:, 4:] == 1).all() and (prop[1][:, 4:] == -1).all()


def test_track_stage_writes_empty_tracks_for_a_masks_store_without_masks(tmp_path):
    """A masks store with no mask at all (what a random-weight or failing SAM can give) gives an empty tracks
    store instead of stopping the stage."""
    scene = tiny_scene()
    scene.write(tmp_path / "scene.zarr", "ingest", {}, "synthetic", "tiny", "synthetic")
    shape = (scene.num_views, scene.height, scene.width)
    write_masks(tmp_path / "masks.zarr", [[[]] for _ in range(scene.num_views)], shape, ["whole"], {}, {},
                {"source": "sam", "oracle": False})
    res = run_cli("stages.track", ["--scene", str(tmp_path / "scene.zarr"), "--masks", str(tmp_path / "masks.zarr"),
                                   "--out", str(tmp_path / "tracks.zarr"), "--params", '{"source": "oracle"}'])
    assert res.returncode == 0, res.stderr
    tracks = read_store("tracks", tmp_path / "tracks.zarr")
    assert tracks.sizes["M"] == 0 and tracks.attrs["num_tracks"] == 0
    assert (tracks.load("propagated") == -1).all()
