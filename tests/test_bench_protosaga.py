"""bench.protosaga on a tiny CPU room: rows per method, and association variants on the fields of an earlier run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
ROOM = {"num_views": 8, "width": 32, "height": 24, "num_points": 800, "num_objects": 8, "device": "cpu",
        "test_every": 4}


def bench(work: Path, out: Path, *extra: str) -> pd.DataFrame:
    subprocess.run([sys.executable, "-m", "bench.protosaga", "--smoke", "--levels", "clean", "--gs-iterations", "30",
                    "--feature-iterations", "20", "--schemes", "protosaga_proto", "--work", str(work),
                    "--scene-options", json.dumps(ROOM), "--out", str(out), *extra], cwd=REPO, check=True,
                   capture_output=True)
    return pd.read_csv(out)


def test_bank_variants_reuse_the_trained_fields(tmp_path):
    work = tmp_path / "work"
    first = bench(work, tmp_path / "a.csv")
    field = work / "clean" / "train_features.zarr"
    stamp = max(p.stat().st_mtime_ns for p in field.rglob("*"))
    again = bench(work, tmp_path / "b.csv", "--reuse-gaussians", "--reuse-fields", "--bank-variants",
                  '{"protosaga_first": {"membership": "first"}}')
    assert max(p.stat().st_mtime_ns for p in field.rglob("*")) == stamp, "the field was not retrained"
    totals = again[again["stage"] == "method_total"].set_index("method")
    assert set(totals.index) == {"protosaga", "gaga", "protosaga_prob", "protosaga_first"}
    assert again.loc[again["stage"] == "train_features", "note"].eq("reused").all()
    before = first[first["stage"] == "method_total"].set_index("method")
    for method in ("protosaga", "gaga", "protosaga_prob"):  # the same field gives the same association and scores
        assert totals.loc[method, "instance_mIoU"] == before.loc[method, "instance_mIoU"]
        assert totals.loc[method, "bank_entries"] == before.loc[method, "bank_entries"]


def test_a_run_stopped_mid_level_keeps_its_finished_methods(tmp_path, monkeypatch):
    """A time limit that kills the bench after its first method leaves that method's rows in the CSV."""
    import bench.protosaga as bench_protosaga

    real, calls = bench_protosaga.evaluate_instances.main, []

    def evaluate_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a kill: not an error row, the run just ends here
        return real(*args, **kwargs)

    monkeypatch.setattr(bench_protosaga.evaluate_instances, "main", evaluate_then_stop)
    out = tmp_path / "rows.csv"
    monkeypatch.setattr(sys, "argv", ["bench.protosaga", "--smoke", "--levels", "clean", "--gs-iterations", "30",
                                      "--feature-iterations", "20", "--schemes", "protosaga_proto", "--work",
                                      str(tmp_path / "work"), "--scene-options", json.dumps(ROOM), "--out", str(out)])
    with pytest.raises(KeyboardInterrupt):
        bench_protosaga.main()
    rows = pd.read_csv(out)
    assert rows.loc[rows["stage"] == "method_total", "method"].tolist() == ["protosaga"]
    assert not list(tmp_path.glob("rows.csv.partial-*"))


def test_gs_params_merge_into_the_rgb_recipe(tmp_path, monkeypatch):
    """--gs-params changes one nested key of the RGB Gaussians' parameters and keeps its siblings."""
    import bench.protosaga as bench_protosaga

    seen = {}

    def capture_and_stop(work, scene_options, gs_params, *args, **kwargs):
        seen.update(gs_params)
        raise KeyboardInterrupt

    monkeypatch.setattr(bench_protosaga, "bench_room", capture_and_stop)
    monkeypatch.setattr(sys, "argv", ["bench.protosaga", "--smoke", "--levels", "clean", "--gs-params",
                                      '{"densify": {"grow_grad2d": 0.0002}}', "--out", str(tmp_path / "rows.csv")])
    with pytest.raises(KeyboardInterrupt):
        bench_protosaga.main()
    config = bench_protosaga.load_config()
    demo = bench_protosaga.recipe_params(config, "protosaga")["train_gs"]
    assert seen["densify"] == {**demo["densify"], "grow_grad2d": 0.0002}
    assert seen["iterations"] == bench_protosaga.SMOKE_ITERATIONS["train_gs"]
