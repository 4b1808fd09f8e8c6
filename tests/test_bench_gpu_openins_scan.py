"""bench/gpu_openins_scan.sh: one hard room per GPU, the recipe first, then each setting on that room's fields."""

import subprocess
from pathlib import Path

from tests.fake_python import fake_python_env

REPO = Path(__file__).resolve().parents[1]


def test_rooms_on_their_own_gpus_then_settings_on_the_same_fields(tmp_path):
    out = tmp_path / "out"
    subprocess.run(["bash", str(REPO / "bench/gpu_openins_scan.sh"), str(out), "1,2", "clean,strong",
                    'plane1cm={"codebook": {"smooth_plane_tol": 0.01}}'],
                   cwd=tmp_path, env=fake_python_env(tmp_path, "4,5"), check=True, timeout=60)
    calls = [line.split(" ", 2) for line in (tmp_path / "calls.txt").read_text().splitlines()]
    by_gpu = {gpu: [args for g, _, args in calls if g == gpu] for gpu in ("4", "5")}
    assert {c[1] for c in calls} == {"1"}  # one room per GPU
    for gpu, seed in (("4", "1"), ("5", "2")):
        recipe, setting = by_gpu[gpu]  # in this order on its GPU
        assert f"--seeds {seed} --levels clean,strong --out {out}/oi_s{seed}.csv" in recipe
        assert "--method openins_scannet" in recipe and "--reuse" not in recipe
        assert "--reuse-gaussians --reuse-features  --run-name plane1cm" in setting
        assert "--levels clean,strong" in setting and "--reuse-stages" not in setting
        assert setting.endswith(f'--stage-params {{"codebook": {{"smooth_plane_tol": 0.01}}}} '
                                f"--out {out}/oi_s{seed}_plane1cm.csv")


def test_settings_on_their_own_levels_reusing_the_named_stores(tmp_path):
    """SETTING_LEVELS and REUSE_STAGES reach every setting's command, not the recipe's."""
    out = tmp_path / "out"
    env = {**fake_python_env(tmp_path, "0"), "SETTING_LEVELS": "strong", "REUSE_STAGES": "masks,codebook"}
    subprocess.run(["bash", str(REPO / "bench/gpu_openins_scan.sh"), str(out), "1", "clean,strong",
                    'ms0={"associate": {"min_score": 0.0}}'], cwd=tmp_path, env=env, check=True, timeout=60)
    recipe, setting = [line.split(" ", 2)[2] for line in (tmp_path / "calls.txt").read_text().splitlines()]
    assert "--levels clean,strong" in recipe and "--reuse-stages" not in recipe
    assert "--levels strong " in setting and "--reuse-stages masks,codebook " in setting
