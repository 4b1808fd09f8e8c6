"""bench/common.py append_rows: rows land under the file's own columns, whatever their order or set."""

from __future__ import annotations

import pandas as pd

from bench.common import append_rows


def test_append_rows_aligns_columns_and_widens_the_file(tmp_path):
    out = tmp_path / "rows.csv"
    append_rows([{"a": 1, "b": 2, "c": 3}], out)
    append_rows([{"c": 30, "a": 10}], out)  # other order, a column left out
    assert pd.read_csv(out).fillna(-1).to_dict("list") == {"a": [1, 10], "b": [2, -1], "c": [3, 30]}
    append_rows([{"a": 100, "d": 400}], out)  # a column the file lacks
    table = pd.read_csv(out)
    assert list(table.columns) == ["a", "b", "c", "d"]
    assert table["a"].tolist() == [1, 10, 100] and table["d"].isna().tolist() == [True, True, False]
    assert not out.with_suffix(".partial.csv").exists()
