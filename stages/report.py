"""Report stage: aggregate every scene's tables into Markdown + CSV + plots under ``results/report/``."""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from stages.lib.cli import run_stage, stage_parser  # noqa: E402


def summarise_render(per_view: pd.DataFrame) -> pd.DataFrame:
    """Per-scene means of the per-view render metrics, plus a mean row over scenes."""
    keys = ["dataset", "scene", "variant"]
    summary = per_view.groupby(keys, as_index=False).agg(
        psnr=("psnr", "mean"), ssim=("ssim", "mean"), baseline_psnr=("baseline_psnr", "mean"),
        test_views=("view", "count"), num_gaussians=("num_gaussians", "first"),
        train_seconds=("train_seconds", "first"))
    mean = summary[["psnr", "ssim", "baseline_psnr"]].mean().to_frame().T
    mean[keys] = ["mean", "", ""]
    return pd.concat([summary, mean], ignore_index=True)


def plot_psnr(summary: pd.DataFrame, path: Path) -> None:
    rows = summary[summary["dataset"] != "mean"]
    labels = [f"{r.dataset}/{r.scene}\n{r.variant}" for r in rows.itertuples()]
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(rows) + 2), 3.5))
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], rows["psnr"], width=0.4, label="3DGS")
    ax.bar([i + 0.2 for i in x], rows["baseline_psnr"], width=0.4, label="mean colour")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel("test-view PSNR (dB)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: argparse.Namespace) -> None:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_view = pd.concat([pd.read_csv(t) for t in args.render_tables], ignore_index=True)
    summary = summarise_render(per_view)
    summary.to_csv(out / "render_metrics.csv", index=False)
    plot_psnr(summary, out / "render_psnr.png")
    lines = ["# Benchmark report", "", "## Novel-view synthesis (held-out views)", "",
             summary.to_markdown(index=False, floatfmt=".3f"), "", "![PSNR per scene](render_psnr.png)", ""]
    (out / "report.md").write_text("\n".join(lines))


def parser() -> argparse.ArgumentParser:
    p = stage_parser("report", __doc__)
    p.add_argument("--render-tables", nargs="+", required=True, help="per-view CSV tables of evaluate_render")
    p.add_argument("--out-dir", required=True)
    return p


if __name__ == "__main__":
    run_stage(main, parser())
