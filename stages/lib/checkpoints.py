"""Where a training stage keeps its periodic checkpoint, and the fingerprint that decides whether to resume it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from stages.lib.store import store_fingerprint


def checkpoint_path(out: str | Path) -> Path:
    """Periodic checkpoints live beside the output store and survive an interrupted run."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".zarr") + ".checkpoint.pt")


def run_fingerprint(params: Mapping[str, Any], inputs: Mapping[str, str | Path]) -> str:
    """Digest of the parameters and the input stores' fingerprints (a checkpoint is reused only if equal)."""
    blob = json.dumps([params, {k: store_fingerprint(p) for k, p in sorted(inputs.items())}], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
