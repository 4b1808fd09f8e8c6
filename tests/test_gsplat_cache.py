"""gsplat's CUDA build cache: the profiles name it (torch_extensions_dir), every job gets it as TORCH_EXTENSIONS_DIR,
and train_gs logs whether a cached build is there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stages.lib.gsplat_build import ENV, EXTENSION, build_cache

REPO = Path(__file__).resolve().parents[1]
PROFILES = ("local", "slurm")


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_name_the_cache(profile):
    cfg = yaml.safe_load((REPO / "workflow/profiles" / profile / "config.yaml").read_text())
    assert cfg["config"]["torch_extensions_dir"], f"profile {profile} sets no torch_extensions_dir"


def test_lookup_follows_torch_extensions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path / "ext"))
    cache = build_cache()
    assert cache.from_env and cache.build_dir == tmp_path / "ext" / EXTENSION
    assert "no cached build" in cache.describe() and f"{ENV}={tmp_path / 'ext'}" in cache.describe()
    cache.build_dir.mkdir(parents=True)
    cache.library.write_bytes(b"")
    assert build_cache().cached and f"cached build found: {cache.library}" in build_cache().describe()


def test_default_root_is_torchs(tmp_path, monkeypatch):
    """Unset, the lookup names the folder torch's JIT loader builds in (under the user cache)."""
    from torch.utils.cpp_extension import _get_build_directory

    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = build_cache()
    assert not cache.from_env and str(cache.root).startswith(str(tmp_path))
    assert cache.build_dir == Path(_get_build_directory(EXTENSION, verbose=False))
    assert "(default; TORCH_EXTENSIONS_DIR unset)" in cache.describe()


def test_profile_passes_the_cache_to_jobs_and_train_gs_logs_it(tmp_path):
    """A run through a copy of the local profile (its torch_extensions_dir pointed at a temporary folder): the
    train_gs job's log names that folder, so the job got it as TORCH_EXTENSIONS_DIR."""
    profile = tmp_path / "profile"
    shutil.copytree(REPO / "workflow/profiles/local", profile)
    prof = yaml.safe_load((profile / "config.yaml").read_text())
    ext = tmp_path / "shared ext"
    prof["config"]["torch_extensions_dir"] = str(ext)
    (profile / "config.yaml").write_text(yaml.safe_dump(prof))
    cfg = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    scene = cfg["scenes"][0]
    scene["options"] = dict(scene["options"], num_views=6, width=32, height=24, test_every=3, num_points=400)
    cfg["scenes"] = [scene]
    cfg["run_methods"] = ["3dgs"]
    cfg["results"] = str(tmp_path / "results")
    cfg["stages"]["train_gs"]["variants"]["tiny"].update(iterations=20, checkpoint_every=0)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--profile", str(profile), "--configfile",
                           str(tmp_path / "cfg.yaml"), "--nolock", "--until", "train_gs"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (tmp_path / "results/logs/synthetic/tiny_room/train_gs/tiny.log").read_text()
    assert f"gsplat CUDA build cache {ENV}={ext}: no cached build" in log, log[-3000:]
    assert "(not used on CPU)" in log

