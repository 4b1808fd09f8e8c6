"""The LERF-OVS, 3D-OVS and LERF-Mask fixtures (6 views, 32x24) as three scenes of one DAG run: ingest, the 3dgs
recipe (50 iterations), render metrics and the report; then each dataset's 2D protocol
(``stages.evaluate_annotations``) on its ingested store (predictions derived from its annotations: known answers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from dataset_fixtures import room, write_lerf_mask, write_lerf_ovs, write_ovs3d
from workflow_runner import snakemake

from stages.evaluate_annotations import score_table
from stages.lib.annotation_protocols import ovs3d_scores
from stages.lib.annotations import QueryAnnotations
from stages.lib.scene import load_scene

SCENES = {"lerf_ovs": ("teatime", lambda root, scene: write_lerf_ovs(root, scene=scene, annotated=(1, 4))),
          "3dovs": ("bed", lambda root, scene: write_ovs3d(root, scene=scene, annotated=(0, 3))),
          "lerf_mask": ("figurines", lambda root, scene: write_lerf_mask(root, scene=scene, test_views=(2, 5)))}


def predictions_from_annotations(annotations: QueryAnnotations) -> dict[str, np.ndarray]:
    """Masks (and relevance) equal to the annotations; 3D-OVS: each annotated view's class map takes every pixel's
    first covering class (class 0 where no mask covers it)."""
    if annotations.protocol != "3dovs":
        return {"masks": annotations.masks, "relevance": annotations.masks.astype(np.float32)}
    views = sorted(set(annotations.view.tolist()))
    maps = np.zeros((len(views), *annotations.masks.shape[1:]), np.int64)
    for m in range(len(annotations.view) - 1, -1, -1):
        maps[views.index(annotations.view[m])][annotations.masks[m]] = annotations.query[m]
    return {"class_maps": maps}


@pytest.fixture(scope="module")
def text_query_run(tmp_path_factory):
    """The three fixtures, cut from one rendered room, as three scenes of one DAG run (the scenes' jobs run side by
    side on two cores)."""
    tmp = tmp_path_factory.mktemp("text_query")
    small_room = room(num_views=6, width=32, height=24)
    scenes = []
    for dataset, (name, write) in sorted(SCENES.items()):
        write(tmp / "data" / dataset, small_room)
        scenes.append({"dataset": dataset, "scene": name, "reader": dataset, "path": str(tmp / "data" / dataset / name),
                       "options": {"num_random_points": 500}})
    config = {
        "scenes": scenes,
        "methods": {"3dgs": {"train_gs": "tiny50"}},
        "run_methods": ["3dgs"],
        "stages": {"train_gs": {"variants": {"tiny50": {"iterations": 50, "sh_degree": 0, "checkpoint_every": 0,
                                                        "densify": {"enabled": False}}}}},
        "resources": {"default": {"threads": 1, "mem_mb": 2000, "runtime": 10, "gpu": 0}},
    }
    configfile = tmp / "text_query.yaml"
    configfile.write_text(yaml.safe_dump(config))
    snakemake(tmp / "results", configfile=configfile)
    return tmp / "results"


@pytest.mark.parametrize("dataset", sorted(SCENES))
def test_text_query_dataset_runs_through_the_dag(text_query_run, dataset):
    name, _ = SCENES[dataset]
    results = text_query_run
    assert np.isfinite(pd.read_csv(results / "report/render_metrics.csv").set_index("scene").loc[name, "psnr"])

    store = results / dataset / name / "scene.zarr"
    annotations = load_scene(store).annotations
    assert annotations.protocol == dataset
    arrays = predictions_from_annotations(annotations)
    scores = score_table(annotations, arrays, "predictions")
    if dataset == "3dovs":  # uncovered pixels and classes absent from a view keep it below 100 %
        views = sorted(set(annotations.view.tolist()))
        expected = ovs3d_scores(annotations, dict(zip(views, arrays["class_maps"])))["mIoU"]
        assert 0 < expected < 1
        assert scores["mIoU"].iloc[-1] == pytest.approx(100 * expected, abs=0.01)
    else:
        assert (scores["mIoU"] == 100).all(), scores  # predictions equal to the annotations score 100 %
