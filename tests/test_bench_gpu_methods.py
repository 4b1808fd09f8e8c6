"""bench/gpu_methods.sh spreads its (bench, level) jobs over the caller's GPUs, recording how many share each."""

import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/bin/sh
case "$*" in
  *device_count*) echo 2 ;;
  *bench.room*) mkdir -p results/bench_room ;;
  *) echo "$CUDA_VISIBLE_DEVICES $BENCH_CONCURRENT $2 $4" >> calls.txt ;;
esac
"""


def run_script(tmp_path: Path, visible: str | None) -> list[list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    subprocess.run(["bash", str(REPO / "bench/gpu_methods.sh"), str(tmp_path / "out"), "clean,moderate,strong",
                    "protosaga"], cwd=tmp_path, env=env, check=True, timeout=60)
    return sorted(line.split() for line in (tmp_path / "calls.txt").read_text().splitlines())


def test_jobs_stay_on_the_callers_gpus_with_their_true_sharing(tmp_path):
    calls = run_script(tmp_path, "2,3")
    # round-robin: clean and strong on the first allotted GPU (two sharing it), moderate alone on the second
    assert calls == [["2", "2", "bench.protosaga", "clean"], ["2", "2", "bench.protosaga", "strong"],
                     ["3", "1", "bench.protosaga", "moderate"]]


def test_without_a_gpu_list_jobs_take_gpu_indices(tmp_path):
    assert [c[0] for c in run_script(tmp_path, None)] == ["0", "0", "1"]
