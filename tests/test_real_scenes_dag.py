"""The three real example scenes (lego, fern, DTU scan24) ingest and train through the DAG on CPU, downscaled."""

import os
from pathlib import Path

import pandas as pd
import pytest
from workflow_runner import REPO, snakemake

from stages.lib.store import read_store

SHARED = Path(os.environ.get("OVGS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.mark.slow  # three real scenes through the DAG: about 1.5 min
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real scenes not found at {SHARED} (set OVGS_SHARED_DATA)")
def test_real_scenes_run_through_the_dag(tmp_path):
    config = (REPO / "tests/config/real_tiny.yaml").read_text().replace("../shared/data", str(SHARED))
    configfile = tmp_path / "real_tiny.yaml"
    configfile.write_text(config)
    results = tmp_path / "results"
    snakemake(results, configfile=configfile)
    table = pd.read_csv(results / "report/render_metrics.csv").set_index("scene")
    for dataset, scene, views in [("nerf_synthetic", "lego", 20), ("llff", "fern", 20), ("dtu", "scan24", 13)]:
        store = read_store("scene", results / dataset / scene / "scene.zarr")
        assert store.sizes["V"] == views
        assert table.loc[scene, "psnr"] > table.loc[scene, "baseline_psnr"], scene
    assert read_store("scene", results / "dtu/scan24/scene.zarr").attrs["reader"] == "idr"
