"""Test-wide settings: a fixed torch thread count and deterministic kernels, so in-process CPU training is
reproducible run to run, as the stages make it (``stages.lib.cli.pick_device``; the DAG's jobs get their thread
count from the rule's ``threads``, which Snakemake exports as OMP_NUM_THREADS). The tiny room's RGB Gaussians are
trained once per session and copied into the DAG tests (``seed_tiny_gaussians``); the end-to-end tests of CCL-LGS,
SAGA, Proto-SaGa / Gaga and SAS read one DAG run of the four (``methods_run``)."""

import pytest
import torch
import yaml
from workflow_runner import methods_config, seed_tiny_gaussians, snakemake, train_tiny_gaussians

TEST_THREADS = 2
torch.set_num_threads(TEST_THREADS)
torch.use_deterministic_algorithms(True)


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """Every test starts at the session's thread count, also after one that changed it (the spconv backend drops
    torch to one CPU thread, see stages/lib/sparse_conv/spconv_backend.py)."""
    yield
    torch.set_num_threads(TEST_THREADS)


@pytest.fixture(scope="session")
def tiny_gaussians(tmp_path_factory):
    """A results folder holding the tiny room's scene and ``tiny`` RGB Gaussians (tests/config/tiny.yaml)."""
    return train_tiny_gaussians(tmp_path_factory.mktemp("tiny_gaussians") / "results")


@pytest.fixture(scope="session")
def methods_run(tmp_path_factory, tiny_gaussians):
    """One DAG run of the CCL-LGS, SAGA, Proto-SaGa / Gaga and SAS recipes on the tiny room
    (``workflow_runner.methods_config``) from the session's RGB Gaussians: the methods' independent jobs run side by
    side on the two cores, and the report is written once. Returns the results folder and the config file."""
    root = tmp_path_factory.mktemp("methods")
    configfile = root / "methods.yaml"
    configfile.write_text(yaml.safe_dump(methods_config()))
    seed_tiny_gaussians(root / "results", tiny_gaussians)
    snakemake(root / "results", configfile=configfile, timeout=2400)
    return root / "results", configfile
