"""bench/gpu_methods.sh spreads its (bench, level) jobs over the caller's GPUs, recording how many share each."""

import subprocess
from pathlib import Path

from tests.fake_python import fake_python_env

REPO = Path(__file__).resolve().parents[1]


def run_script(tmp_path: Path, visible: str | None) -> list[list[str]]:
    subprocess.run(["bash", str(REPO / "bench/gpu_methods.sh"), str(tmp_path / "out"), "clean,moderate,strong",
                    "protosaga"], cwd=tmp_path, env=fake_python_env(tmp_path, visible), check=True, timeout=60)
    # each call: GPU, sharing count, then "-m bench.<name> --levels <level> ..."
    calls = [line.split() for line in (tmp_path / "calls.txt").read_text().splitlines()]
    return sorted([c[0], c[1], c[3], c[5]] for c in calls)


def test_jobs_stay_on_the_callers_gpus_with_their_true_sharing(tmp_path):
    calls = run_script(tmp_path, "2,3")
    # round-robin: clean and strong on the first allotted GPU (two sharing it), moderate alone on the second
    assert calls == [["2", "2", "bench.protosaga", "clean"], ["2", "2", "bench.protosaga", "strong"],
                     ["3", "1", "bench.protosaga", "moderate"]]


def test_without_a_gpu_list_jobs_take_gpu_indices(tmp_path):
    assert [c[0] for c in run_script(tmp_path, None)] == ["0", "0", "1"]
