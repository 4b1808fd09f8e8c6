"""gsplat's CUDA extension: where its one-off JIT build is cached, whether a cached build exists, and a build that
many jobs sharing one cache do only once.

gsplat 1.5.3 (without a prebuilt ``gsplat.csrc``) compiles its kernels with torch's JIT loader on first import of
``gsplat.cuda._backend`` (~70-80 s), into torch's extensions root: ``$TORCH_EXTENSIONS_DIR`` if set (used as is),
else ``~/.cache/torch_extensions/py<XY>_cu<ZZZ>``; the build is ``<root>/gsplat_cuda/gsplat_cuda.so``. The workflow
sets ``TORCH_EXTENSIONS_DIR`` from the config key ``torch_extensions_dir`` (README, "Run on a SLURM cluster").
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

EXTENSION = "gsplat_cuda"
ENV = "TORCH_EXTENSIONS_DIR"


@dataclass(frozen=True)
class BuildCache:
    """Where gsplat's JIT build lives and what is there."""

    root: Path          # torch's extensions root
    from_env: bool      # root given by TORCH_EXTENSIONS_DIR
    prebuilt: bool      # gsplat ships a compiled gsplat.csrc (no JIT build at all)

    @property
    def build_dir(self) -> Path:
        return self.root / EXTENSION

    @property
    def library(self) -> Path:
        return self.build_dir / f"{EXTENSION}.so"

    @property
    def cached(self) -> bool:
        return self.library.is_file()

    @property
    def lock(self) -> Path:
        return self.root / f"{EXTENSION}.build.lock"  # beside the build dir: gsplat deletes that dir before building

    def describe(self) -> str:
        where = f"{ENV}={self.root}" if self.from_env else f"{self.root} (default; {ENV} unset)"
        if self.prebuilt:
            return f"gsplat CUDA build: prebuilt module gsplat.csrc, no JIT build needed ({where})"
        state = f"cached build found: {self.library}" if self.cached else \
            f"no cached build ({self.library} missing): the first CUDA use compiles it (~70-80 s)"
        return f"gsplat CUDA build cache {where}: {state}"


def build_cache() -> BuildCache:
    """The extensions root torch's JIT loader uses (``torch.utils.cpp_extension._get_build_directory``'s rule),
    without creating it."""
    env = os.environ.get(ENV)
    if env:
        root = Path(env)
    else:
        from torch.utils.cpp_extension import get_default_build_root

        accel = f"rocm{torch.version.hip.replace('.', '')}" if torch.version.hip else \
            f"cu{torch.version.cuda.replace('.', '')}" if torch.version.cuda else "cpu"
        root = Path(get_default_build_root()) / f"py{sys.version_info.major}{sys.version_info.minor}" \
            f"{getattr(sys, 'abiflags', '')}_{accel}"
    return BuildCache(root=root, from_env=bool(env), prebuilt=importlib.util.find_spec("gsplat.csrc") is not None)


def ensure_built(log: logging.Logger) -> float:
    """Load gsplat's CUDA extension, building it at most once per cache: without a cached build, the build runs
    under an exclusive lock file in the cache, and jobs that wait for it then load the finished build (gsplat's own
    loader removes the build folder of a build in progress). Returns the seconds spent."""
    cache = build_cache()
    start = time.perf_counter()
    if cache.prebuilt or cache.cached:
        import gsplat.cuda._backend  # noqa: F401
    else:
        cache.root.mkdir(parents=True, exist_ok=True)
        with open(cache.lock, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if cache.cached:
                log.info("gsplat CUDA build appeared in %s while waiting for its lock", cache.build_dir)
            import gsplat.cuda._backend  # noqa: F401
            fcntl.flock(lock, fcntl.LOCK_UN)
    seconds = time.perf_counter() - start
    from gsplat.cuda._backend import _C

    if _C is None:
        raise RuntimeError(f"gsplat's CUDA extension could not be loaded or built (cache {cache.build_dir})")
    log.info("gsplat CUDA extension ready in %.1f s (%s)", seconds, cache.library if not cache.prebuilt else "csrc")
    return seconds
