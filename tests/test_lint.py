"""The workflow passes ``snakemake --lint`` without findings, for the default and the bench configurations (the GPU
bench's with its scaling run)."""

from __future__ import annotations

import pytest
from workflow_runner import REPO, snakemake


@pytest.mark.parametrize("configfile", ["config.yaml", "tests/config/tiny_bench.yaml", "config/bench_gpu.yaml"])
def test_snakemake_lint_has_no_findings(configfile, tmp_path):
    proc = snakemake(tmp_path / "results", "--lint", configfile=REPO / configfile, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Lints for" not in out, out[-4000:]
    assert "good condition" in out
