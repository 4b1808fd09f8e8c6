"""Test-wide settings: a fixed torch thread count and deterministic kernels, so in-process CPU training is
reproducible run to run, as the stages make it (``stages.lib.cli.pick_device``; the DAG's jobs get their thread
count from the rule's ``threads``, which Snakemake exports as OMP_NUM_THREADS). The tiny room's RGB Gaussians are
trained once per session and copied into each method's DAG test (``seed_tiny_gaussians``)."""

import pytest
import torch
from workflow_runner import train_tiny_gaussians

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
