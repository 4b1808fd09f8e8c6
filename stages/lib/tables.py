"""Tidy CSV tables written atomically (a reader never sees half a table)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages.lib.atomic import atomic_path


def write_csv_atomic(table: pd.DataFrame, path: str | Path) -> None:
    """Write ``table`` to ``path`` through a temporary sibling file and a rename (``stages.lib.atomic``)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
