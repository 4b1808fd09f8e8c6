"""Tidy CSV tables written atomically (a reader never sees half a table)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def write_csv_atomic(table: pd.DataFrame, path: str | Path) -> None:
    """Write ``table`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    table.to_csv(tmp, index=False)
    tmp.replace(path)
