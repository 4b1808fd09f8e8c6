"""Atomic outputs beyond the Zarr stores (stages/lib/atomic.py): the report folders of stages.report and
stages.bench_report and evaluate_render's preview PNG. A failure injected mid-write leaves the previous output intact,
nothing partial under the final name and no temporary sibling behind."""

from __future__ import annotations

import errno
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stages import bench_report, evaluate_render, report
from stages.lib.atomic import atomic_folder_entries, atomic_path
from stages.lib.cli import run_stage


def disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def snapshot(folder) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def no_partials(root) -> bool:
    return not [p for p in root.rglob("*") if ".partial-" in p.name]


def test_atomic_path_replaces_a_file_and_a_folder_and_keeps_both_on_failure(tmp_path):
    target, folder = tmp_path / "t.txt", tmp_path / "f"
    target.write_text("old")
    folder.mkdir()
    (folder / "a").write_text("old")
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("half")
        disk_full()
    with pytest.raises(OSError), atomic_path(folder) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("half")
        disk_full()
    assert target.read_text() == "old" and snapshot(folder) == {"a": b"old"} and no_partials(tmp_path)
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        (tmp / "b").write_text("new")
    assert target.read_text() == "new" and snapshot(folder) == {"b": b"new"} and no_partials(tmp_path)


def test_folder_entries_move_only_when_all_are_written_and_others_stay(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "other_rule.json").write_text("{}")
    (out / "table.csv").write_text("old")
    with pytest.raises(OSError), atomic_folder_entries(out) as tmp:
        (tmp / "table.csv").write_text("new")
        disk_full()
    assert snapshot(out) == {"other_rule.json": b"{}", "table.csv": b"old"} and no_partials(tmp_path)
    with atomic_folder_entries(out) as tmp:
        (tmp / "table.csv").write_text("new")
        (tmp / "figures").mkdir()
        (tmp / "figures" / "a.png").write_text("png")
    assert snapshot(out) == {"other_rule.json": b"{}", "table.csv": b"new", "figures/a.png": b"png"}
    assert no_partials(tmp_path)


@pytest.fixture
def render_table(tmp_path):
    path = tmp_path / "render.csv"
    pd.DataFrame({"dataset": ["synthetic"] * 2, "scene": ["room"] * 2, "variant": ["tiny"] * 2, "view": [3, 7],
                  "psnr": [20.0, 22.0], "ssim": [0.8, 0.9], "baseline_psnr": [10.0, 11.0],
                  "num_gaussians": [100, 100], "train_seconds": [1.0, 1.0]}).to_csv(path, index=False)
    return path


def test_report_failure_after_some_files_keeps_the_previous_report(render_table, tmp_path, monkeypatch):
    out = tmp_path / "results" / "report"
    argv = ["--render-tables", str(render_table), "--out-dir", str(out)]
    run_stage(report.main, report.parser(), argv)
    (out / "bench").mkdir()
    (out / "bench" / "bench.md").write_text("another rule's report")
    before = snapshot(out)
    assert {"report.md", "render_metrics.csv", "render_psnr.png", "bench/bench.md"} <= set(before)

    pd.read_csv(render_table).assign(psnr=[30.0, 31.0]).to_csv(render_table, index=False)
    written = []
    real_plot = report.plot_psnr

    def plot_then_fail(summary, path):  # render_metrics.csv and render_psnr.png are written, report.md is not
        real_plot(summary, path)
        written.extend(p.name for p in path.parent.iterdir())
        disk_full()

    monkeypatch.setattr(report, "plot_psnr", plot_then_fail)
    with pytest.raises(SystemExit) as info:
        run_stage(report.main, report.parser(), argv)
    assert str(info.value.code).startswith("error: ") and "No space left" in str(info.value.code)
    assert sorted(written) == ["render_metrics.csv", "render_psnr.png"]
    assert snapshot(out) == before and no_partials(tmp_path)

    monkeypatch.setattr(report, "plot_psnr", real_plot)
    run_stage(report.main, report.parser(), argv)
    assert "30.5" in (out / "report.md").read_text() and (out / "bench" / "bench.md").exists()
    assert no_partials(tmp_path)


def test_bench_report_failure_mid_write_keeps_previous_files_and_the_manifest(tmp_path, monkeypatch):
    out = tmp_path / "report" / "bench"
    (out / "tables").mkdir(parents=True)
    manifest = out / "manifest.json"
    manifest.write_text('{"entries": [], "levels": ["clean"], "scenes": {}}')
    (out / "bench.md").write_text("previous")
    (out / "bench_metrics.csv").write_text("previous")
    (out / "tables" / "scannet_3d.csv").write_text("previous")
    before = snapshot(out)
    monkeypatch.setattr(bench_report, "long_metrics", lambda entries: pd.DataFrame({"protocol": ["scannet_3d"]}))
    monkeypatch.setattr(bench_report, "protocol_sections", disk_full)  # after bench_metrics.csv was written
    argv = ["--manifest", str(manifest), "--out-dir", str(out)]
    with pytest.raises(SystemExit):
        run_stage(bench_report.main, bench_report.parser(), argv)
    assert snapshot(out) == before and no_partials(tmp_path)

    for section in ("protocol_sections", "cost_section", "scene_sections"):
        monkeypatch.setattr(bench_report, section, lambda *args: [])
    run_stage(bench_report.main, bench_report.parser(), argv)
    assert (out / "bench.md").read_text().startswith("# Benchmark") and manifest.exists()
    assert not (out / "tables" / "scannet_3d.csv").exists(), "the tables folder is replaced as a whole"
    assert no_partials(tmp_path)


def test_preview_png_failure_mid_write_keeps_the_previous_preview(tmp_path, monkeypatch):
    path = tmp_path / "evaluate_render" / "tiny.png"
    path.parent.mkdir()
    strips = [np.full((4, 3, 3), 200, np.uint8), np.zeros((4, 3, 3), np.uint8)]
    evaluate_render.save_preview(strips, str(path))
    before = path.read_bytes()
    real_save = Image.Image.save

    def save_half(self, fp, format=None, **params):
        real_save(self, fp, format=format, **params)
        with open(fp, "r+b") as f:
            f.truncate(10)
        disk_full()

    monkeypatch.setattr(Image.Image, "save", save_half)
    with pytest.raises(OSError):
        evaluate_render.save_preview(strips[::-1], str(path))
    assert path.read_bytes() == before and no_partials(tmp_path)
    monkeypatch.setattr(Image.Image, "save", real_save)
    evaluate_render.save_preview(strips[::-1], str(path))
    assert np.asarray(Image.open(path))[0, 0, 0] == 0 and no_partials(tmp_path)
