"""Wrappers over pretrained 2D models (SAM, SAM2, CLIP) that produce the per-view priors the 3D stages lift."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

RANDOM_WEIGHTS_SEED = 0


@contextmanager
def seeded_random_weights(enabled: bool = True) -> Iterator[None]:
    """Build a random-weight model (tests, benchmarks) from a fixed seed, so its outputs are the same in every run,
    without touching the caller's random state."""
    if not enabled:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        yield
