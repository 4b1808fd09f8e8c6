"""The report takes method-specific display names from the method registry (Proto-SaGa's schemes and criteria)."""

from __future__ import annotations

import pandas as pd

from stages.report import association_table, inference_table


def instances() -> pd.DataFrame:
    rows = [("pg", "test", "protosaga_kmeans", "protosaga_memory_bank"), ("pg", "test", "my_scheme", "x"),
            ("pg", "associated", "", "protosaga_memory_bank"), ("g", "associated", "", "gaga_memory_bank"),
            ("p", "associated", "", "probability_memory_bank"), ("o", "associated", "", "other_rule")]
    return pd.DataFrame([{"method": m, "protocol": p, "scheme": s, "association": a, "mIoU": 50.0, "precision": 40.0,
                          "recall": 30.0, "mBIoU": 20.0} for m, p, s, a in rows])


def test_inference_schemes_use_the_registered_labels_and_keep_unknown_names():
    assert inference_table(instances())["Inference"].tolist() == ["K-Means", "my_scheme"]


def test_association_criteria_come_from_the_registry():
    table = association_table(instances()).set_index("Method")
    assert table.loc["pg", ["Depth", "Prob"]].tolist() == ["yes", "yes"]
    assert table.loc["g", ["Depth", "Prob"]].tolist() == ["yes", ""]
    assert table.loc["p", ["Depth", "Prob"]].tolist() == ["", "yes"]
    assert table.loc["o", ["Depth", "Prob"]].tolist() == ["", ""]
