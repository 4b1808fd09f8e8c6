"""Test-wide settings: a fixed torch thread count and deterministic kernels, so in-process CPU training is
reproducible run to run, as the stages make it (``stages.lib.cli.pick_device``; the DAG's jobs get their thread
count from the rule's ``threads``, which Snakemake exports as OMP_NUM_THREADS)."""

import torch

TEST_THREADS = 2
torch.set_num_threads(TEST_THREADS)
torch.use_deterministic_algorithms(True)
