"""bench/saga_prompt.py on CPU: a tiny latency run appends one row per call to the CSV, with the device named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def test_prompt_latency_rows_append(tmp_path):
    out = tmp_path / "latency.csv"
    cmd = [sys.executable, "-m", "bench.saga_prompt", "--device", "cpu", "--gaussians", "2000", "--size", "32",
           "--repeats", "3", "--warmup", "1", "--out", str(out)]
    for note in ("first", "second"):
        subprocess.run([*cmd, "--note", note], cwd=REPO, check=True, capture_output=True)
    rows = pd.read_csv(out)
    assert rows["note"].tolist() == ["first", "second"] and set(rows["device"]) == {"cpu"}
    assert (rows["gaussians"] == 2000).all() and (rows["latency_ms_median"] > 0).all()
    assert (rows["latency_ms_p95"] >= rows["latency_ms_median"]).all()
