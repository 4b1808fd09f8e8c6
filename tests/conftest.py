"""Test-wide settings: a fixed torch thread count, so in-process CPU training is reproducible run to run (the
DAG's jobs get theirs from the rule's ``threads``, which Snakemake exports as OMP_NUM_THREADS)."""

import torch

TEST_THREADS = 2
torch.set_num_threads(TEST_THREADS)
