"""The example dataset configs (config/datasets/*.yaml) merged over config.yaml: every recipe they run is consistent
(each variant's ``after`` agrees with the recipe; checked when the Snakefile loads) and a dry run plans its jobs, with
the placeholder data paths (ingest reads them only when it runs)."""

from pathlib import Path

import pytest
from workflow_runner import REPO, planned_jobs

CONFIGS = sorted((REPO / "config/datasets").glob("*.yaml"))


def test_every_dataset_has_an_example_config():
    assert {p.stem for p in CONFIGS} == {"3dovs", "lerf_mask", "lerf_ovs", "nvos", "replica", "scannet", "spin_nerf"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_dataset_config_plans_its_recipes(config: Path, tmp_path):
    jobs = planned_jobs(tmp_path / "results", config)
    assert jobs.get("ingest", 0) >= 1 and jobs.get("report") == 1, jobs
