"""bench/gpu_methods.sh spreads its (bench, level) jobs over the caller's GPUs, recording how many share each."""

import json
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


def scene_options(args: list[str]) -> dict | None:
    return json.loads(args[args.index("--scene-options") + 1]) if "--scene-options" in args else None


def test_room_options_reach_the_room_and_every_job(tmp_path):
    room = {"num_views": 150, "width": 512, "height": 512, "num_points": 100000, "device": "cuda", "seed": 1}
    env = dict(fake_python_env(tmp_path, "0,1"), ROOM_OPTIONS=json.dumps(room, separators=(",", ":")))
    subprocess.run(["bash", str(REPO / "bench/gpu_methods.sh"), str(tmp_path / "out"), "moderate,strong",
                    "protosaga"], cwd=tmp_path, env=env, check=True, timeout=60)
    room_calls = [line.split() for line in (tmp_path / "room_calls.txt").read_text().splitlines()]
    jobs = [line.split()[2:] for line in (tmp_path / "calls.txt").read_text().splitlines()]
    assert [scene_options(c) for c in room_calls] == [room]
    assert [scene_options(c) for c in jobs] == [room, room]


def test_without_room_options_the_default_room(tmp_path):
    run_script(tmp_path, None)
    room_calls = [line.split() for line in (tmp_path / "room_calls.txt").read_text().splitlines()]
    jobs = [line.split() for line in (tmp_path / "calls.txt").read_text().splitlines()]
    assert [scene_options(c) for c in room_calls + jobs] == [None] * 4
