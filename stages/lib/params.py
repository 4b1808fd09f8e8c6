"""Parameter dictionaries: nested overrides, as the workflow (scene overrides, resources) and the benches use them."""

from __future__ import annotations

import copy
from typing import Any


def deep_merge(base: dict[str, Any], over: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of ``base`` with ``over`` merged in, nested dictionaries key by key (``over``'s values win)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out
