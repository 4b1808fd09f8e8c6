"""Report stage: aggregate every scene's tables into Markdown + CSV + plots under ``results/report/``."""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from stages.lib.atomic import atomic_folder_entries  # noqa: E402
from stages.lib.bench_tables import markdown  # noqa: E402
from stages.lib.cli import run_stage, stage_parser  # noqa: E402
from stages.lib.vocabularies import LONG_TAIL_SIZES  # noqa: E402
from stages.methods import lookup  # noqa: E402
from stages.methods import names as registered_names  # noqa: E402


def summarise_render(per_view: pd.DataFrame) -> pd.DataFrame:
    """Per-scene means of the per-view render metrics, plus a mean row over scenes."""
    keys = ["dataset", "scene", "variant"]
    summary = per_view.groupby(keys, as_index=False).agg(
        psnr=("psnr", "mean"), ssim=("ssim", "mean"), baseline_psnr=("baseline_psnr", "mean"),
        test_views=("view", "count"), num_gaussians=("num_gaussians", "first"),
        train_seconds=("train_seconds", "first"))
    mean = summary[["psnr", "ssim", "baseline_psnr"]].mean().to_frame().T
    mean[keys] = ["mean", "", ""]
    return pd.concat([summary, mean], ignore_index=True).astype({"test_views": "Int64", "num_gaussians": "Int64"})


def no_render_rows() -> pd.DataFrame:
    """An empty per-view render table, for runs whose methods train no 3DGS (e.g. SAS's 2D fusion alone)."""
    values = ["view", "psnr", "ssim", "baseline_psnr", "num_gaussians", "train_seconds"]
    return pd.DataFrame(columns=["dataset", "scene", "variant", *values]).astype({v: float for v in values})


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


def load_semantic(tables: list[str]) -> pd.DataFrame:
    """evaluate_semantic tables given as ``method=path``, with a ``method`` column."""
    frames = []
    for item in tables:
        method, _, path = item.partition("=")
        if not path:
            raise ValueError(f"--semantic-tables entries are method=path, got {item!r}")
        frames.append(pd.read_csv(path).assign(method=method))
    return pd.concat(frames, ignore_index=True)


def with_mean_rows(table: pd.DataFrame, values: list[str]) -> pd.DataFrame:
    """Per-scene rows followed by one mean row per method."""
    means = table.groupby("method", as_index=False)[values].mean().assign(dataset="mean", scene="")
    table = table.sort_values(["method", "dataset", "scene"])
    return pd.concat([table, means], ignore_index=True)[["method", "dataset", "scene", *values]]


def scannet_table(semantic: pd.DataFrame) -> pd.DataFrame:
    """Supplement Table 2 layout: one row per method and scene, mIoU / mAcc for the 19, 15 and 10 class subsets, and
    for the long-tail K = 40 / 80 / 160 vocabularies (SAS Table 2) where the method has them (empty cells elsewhere)."""
    rows = semantic[semantic["protocol"].isin(["scannet_3d", "long_tail_3d"])]
    wide = rows.pivot_table(index=["method", "dataset", "scene"], columns="subset", values=["mIoU", "mAcc"])
    wide.columns = [f"{subset.split()[0]} {metric}" for metric, subset in wide.columns]
    order = [f"{n} {m}" for n in ("19", "15", "10", *(f"K={k}" for k in LONG_TAIL_SIZES)) for m in ("mIoU", "mAcc")
             if f"{n} {m}" in wide.columns]
    table = with_mean_rows(wide.reset_index(), order)
    if "points" in rows:  # which Gaussian labelled each scan point (scan_points / nearest_gaussian)
        points = rows.groupby(["method", "dataset", "scene"])["points"].first()
        table.insert(3, "points", [points.get(key, "") for key in zip(table["method"], table["dataset"], table["scene"])])
    return table


def class_iou_table(semantic: pd.DataFrame) -> pd.DataFrame:
    """Per-class 3D IoU (19-class subset): one row per method and scene, one column per class present."""
    rows = semantic[semantic["protocol"] == "scannet_3d_class"]
    wide = rows.pivot_table(index=["method", "dataset", "scene", "points"], columns="query", values="IoU")
    return wide.reset_index()


def purity_table(semantic: pd.DataFrame) -> pd.DataFrame:
    """Codebook purity per method and scene, with the 3D mIoU a codebook labelled by GT majorities would reach."""
    keys = ["method", "dataset", "scene"]
    purity = semantic[semantic["protocol"] == "codebook_purity"][
        [*keys, "points", "purity", "purity_weighted", "clusters", "gt_instances", "instances_majority"]]
    oracle = semantic[semantic["protocol"] == "scannet_3d_codebook_oracle"][[*keys, "mIoU"]]
    return purity.merge(oracle.rename(columns={"mIoU": "3D mIoU, GT-majority labels"}), on=keys, how="left")


def lerf_table(semantic: pd.DataFrame) -> pd.DataFrame:
    """Supplement Table 3 layout: one row per method and scene, mIoU and mAcc@0.25 / @0.5 over the text queries."""
    rows = semantic[(semantic["protocol"] == "lerf_2d") & (semantic["subset"] == "mean")]
    values = ["mIoU", "mAcc@0.25", "mAcc@0.5"]
    if "loc. acc" in rows.columns and rows["loc. acc"].notna().any():  # LERF localization (CCL-LGS evaluation)
        values.append("loc. acc")
    return with_mean_rows(rows[["method", "dataset", "scene", *values]], values)


def ovs_table(semantic: pd.DataFrame) -> pd.DataFrame:
    """3D-OVS protocol: one row per method and scene, mIoU / mAcc of the per-pixel argmax over the class list."""
    rows = semantic[semantic["protocol"] == "3dovs_2d"]
    return with_mean_rows(rows[["method", "dataset", "scene", "mIoU", "mAcc"]], ["mIoU", "mAcc"])


def paper_layout(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """CCL-LGS Tables 1 and 3 layout: one row per method, one column per scene (``value``) and their average."""
    rows = table[table["dataset"] != "mean"].assign(column=lambda t: t["dataset"] + "/" + t["scene"])
    wide = rows.pivot_table(index="method", columns="column", values=value)
    wide["Avg."] = wide.mean(axis=1)
    return wide.reset_index().rename(columns={"method": "Method"})


def prompt_table(tables: list[str]) -> pd.DataFrame:
    """SAGA Tables 1-2 layout: one row per method and scene, mIoU / mAcc of the NVOS and SPIn-NeRF protocols; on
    synthetic scenes also NVOS on the nearest and on the largest target view (``nvos`` is the configured one)."""
    rows = load_semantic(tables)
    rows = rows[rows["object"] == "mean"]
    wide = rows.pivot_table(index=["method", "dataset", "scene"], columns="protocol", values=["mIoU", "mAcc"])
    names = {"nvos": "NVOS", "nvos_nearest": "NVOS nearest view", "nvos_largest": "NVOS largest view (all-around)",
             "spin": "SPIn-NeRF"}
    wide.columns = [f"{names.get(protocol, protocol)} {metric}" for metric, protocol in wide.columns]
    order = [f"{n} {m}" for n in names.values() for m in ("mIoU", "mAcc") if f"{n} {m}" in wide.columns]
    return with_mean_rows(wide.reset_index(), order)


RANDOM_WEIGHTS = "random weights: plumbing only, not a result"


def mark_random_weights(table: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """A ``priors`` column after ``method``: ``RANDOM_WEIGHTS`` on the rows of methods whose 2D priors came from a
    random-weight model, so such rows are never read as results."""
    table = table.copy()
    table.insert(table.columns.get_loc("method") + 1, "priors",
                 [RANDOM_WEIGHTS if m in methods else "" for m in table["method"]])
    return table


def annotation_table(annotations: pd.DataFrame) -> pd.DataFrame:
    """The text-query datasets' protocols (``stages.evaluate_annotations``): per method and scene its labelled means
    (LERF-OVS: macro and query-weighted mIoU / localization accuracy; 3D-OVS: mIoU and accuracy over views and classes;
    LERF-Mask: macro mIoU / mBIoU)."""
    rows = annotations[annotations["query"].str.startswith("mean")]
    values = [c for c in ("mIoU", "loc. acc", "accuracy", "mBIoU") if c in rows.columns]
    return rows[["method", "dataset", "scene", "protocol", "query", *values]].rename(columns={"query": "mean"})


INSTANCE_METRICS = {"I": "mIoU", "P": "precision", "R": "recall", "B": "mBIoU"}


def report_label(name: str) -> str:
    """The display name a method package registered for a piece (``report_label``), else the name itself."""
    return lookup("report_label", name) if name in registered_names("report_label") else name


def association_criteria(rule: str) -> tuple[str, str]:
    """(depth set, probability set) marks a method package registered for an association rule, else blanks."""
    return lookup("association_criteria", rule) if rule in registered_names("association_criteria") else ("", "")


def instance_table(instances: pd.DataFrame) -> pd.DataFrame:
    """Proto-SaGa Table 1 layout: per method the rows I, P, R (and B = mBIoU) of its primary inference scheme on the
    test views, one column per scene and their average."""
    test = instances[instances["protocol"] == "test"]
    flag = test["primary"].fillna(False).astype(bool) if "primary" in test else False
    primary = test.assign(primary=flag).sort_values("primary", ascending=False, kind="stable").groupby(
        ["method", "dataset", "scene"], sort=False).head(1)  # tables without the column: the first scheme
    long = primary.melt(id_vars=["method", "dataset", "scene"], value_vars=list(INSTANCE_METRICS.values()),
                      var_name="metric")
    long["column"] = long["dataset"] + "/" + long["scene"]
    wide = long.pivot_table(index=["method", "metric"], columns="column", values="value").reset_index()
    scenes = [c for c in wide.columns if c not in ("method", "metric")]
    wide["Avg."] = wide[scenes].mean(axis=1)
    wide["metric"] = wide["metric"].map({v: k for k, v in INSTANCE_METRICS.items()})
    wide["order"] = wide["metric"].map({k: i for i, k in enumerate(INSTANCE_METRICS)})
    return wide.sort_values(["method", "order"]).drop(columns="order").rename(
        columns={"method": "Method", "metric": "Metric"})


def association_table(instances: pd.DataFrame) -> pd.DataFrame:
    """Proto-SaGa Table 3 layout: the associated train-view masks against GT instances, per method, with the
    association criteria used (depth set Eq. 10, probability set Eq. 15); averages over scenes."""
    rows = instances[instances["protocol"] == "associated"]
    avg = rows.groupby(["method", "association"], as_index=False)[["mIoU", "precision", "recall"]].mean()
    criteria = avg["association"].map(association_criteria)
    avg.insert(1, "Depth", [c[0] for c in criteria])
    avg.insert(2, "Prob", [c[1] for c in criteria])
    return avg.drop(columns="association").rename(columns={"method": "Method", "precision": "Precision",
                                                           "recall": "Recall"})


def inference_table(instances: pd.DataFrame) -> pd.DataFrame:
    """Proto-SaGa Table 4 layout: every inference scheme of every method on the test views, averages over scenes."""
    rows = instances[instances["protocol"] == "test"].copy()
    rows["Inference"] = rows["scheme"].map(report_label)
    avg = rows.groupby(["method", "Inference"], as_index=False, sort=False)[["mIoU", "precision", "recall", "mBIoU"]]
    return avg.mean().rename(columns={"method": "Method", "precision": "Precision", "recall": "Recall"})


def capability_heatmap(label: str, store_path: str, out: Path) -> list[str]:
    """SAS Eq. 3-5: a capability store's model x class table as Markdown and a heat map PNG (file name from label)."""
    from stages.lib.store import read_store

    store = read_store("capability", store_path)
    table = pd.DataFrame(store.load("capability"), index=store.attrs["models"], columns=store.attrs["vocabulary"])
    name = f"capability_{label.replace('/', '_')}.png"
    fig, ax = plt.subplots(figsize=(0.45 * table.shape[1] + 2, 0.5 * table.shape[0] + 1.8))
    image = ax.imshow(table.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=90, fontsize=8)
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=8)
    for (i, j), value in pd.DataFrame(table.to_numpy()).stack().items():
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color="w" if value < 0.6 else "k")
    fig.colorbar(image, ax=ax, label="capability (mean IoU)")
    ax.set_title(f"{label} ({store.attrs['source']} source)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / name, dpi=120)
    plt.close(fig)
    return [f"### {label} ({store.attrs['source']} source, {store.attrs['images_per_class']} images per class)", "",
            table.reset_index(names="model").to_markdown(index=False, floatfmt=".2f"), "", f"![capability]({name})", ""]


def plot_semantic(scannet: pd.DataFrame, lerf: pd.DataFrame, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, table, column, title in ((axes[0], scannet, "19 mIoU", "3D mIoU, 19 classes (%)"),
                                     (axes[1], lerf, "mIoU", "2D text-query mIoU (%)")):
        rows = table[table["dataset"] != "mean"]
        ax.bar(range(len(rows)), rows[column], color="tab:blue")
        ax.set_xticks(range(len(rows)), [f"{r.method}\n{r.scene}" for r in rows.itertuples()], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 100)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: argparse.Namespace) -> None:
    """Every file goes to a temporary sibling folder and moves into ``--out-dir`` once all were written."""
    with atomic_folder_entries(args.out_dir) as out:
        write_report(args, out)


def write_report(args: argparse.Namespace, out: Path) -> None:
    per_view = (pd.concat([pd.read_csv(t) for t in args.render_tables], ignore_index=True) if args.render_tables
                else no_render_rows())
    summary = summarise_render(per_view)
    summary.to_csv(out / "render_metrics.csv", index=False)
    plot_psnr(summary, out / "render_psnr.png")
    lines = ["# Benchmark report", "", "## Novel-view synthesis (held-out views)", "",
             markdown(summary, decimals=3, best=False), "", "![PSNR per scene](render_psnr.png)", ""]
    if args.semantic_tables:
        semantic = load_semantic(args.semantic_tables)
        semantic.to_csv(out / "semantic_metrics.csv", index=False)
        scannet, lerf = scannet_table(semantic), lerf_table(semantic)
        plot_semantic(scannet, lerf, out / "semantic_miou.png")
        lines += ["## Open-vocabulary 3D segmentation (ScanNet protocol, %)", "",
                  "`points`: `scan_points` = Gaussian i labels scan point i (train_gs fixed_points, the paper's ScanNet "
                  "setting); `nearest_gaussian` = each point takes its nearest Gaussian's label.", "",
                  scannet.to_markdown(index=False, floatfmt=".2f"), "", *diagnosis_tables(semantic),
                  "## Open-vocabulary text queries on test views (LERF protocol, %)", "",
                  lerf.to_markdown(index=False, floatfmt=".2f"), "",
                  "![Segmentation per method and scene](semantic_miou.png)", "", *prior_notes(args.semantic_notes),
                  "### Text-query mIoU per scene (LERF protocol, CCL-LGS Table 1 layout, %)", "",
                  paper_layout(lerf, "mIoU").to_markdown(index=False, floatfmt=".1f"), ""]
        ovs = ovs_table(semantic)
        if len(ovs) > len(ovs["method"].unique()):  # more than the mean rows: some method ran the 3D-OVS protocol
            lines += ["## Semantic segmentation over the scene's class list (3D-OVS protocol, %)", "",
                      ovs.to_markdown(index=False, floatfmt=".2f"), "",
                      "### mIoU per scene (CCL-LGS Table 3 layout, %)", "",
                      paper_layout(ovs, "mIoU").to_markdown(index=False, floatfmt=".1f"), ""]
    if args.prompt_tables:
        prompts = mark_random_weights(prompt_table(args.prompt_tables), args.random_weight_methods)
        prompts.to_csv(out / "prompt_metrics.csv", index=False)
        lines += ["## Promptable 3D segmentation (NVOS / SPIn-NeRF protocols, point prompts, %)", "",
                  prompts.to_markdown(index=False, floatfmt=".2f"), ""]
    if args.annotation_tables:
        annotations = load_semantic(args.annotation_tables)
        annotations.to_csv(out / "annotation_metrics.csv", index=False)
        lines += ["## Text queries on annotated views (LERF-OVS, 3D-OVS, LERF-Mask protocols, %)", "",
                  mark_random_weights(annotation_table(annotations), args.random_weight_methods).to_markdown(
                      index=False, floatfmt=".2f"), "", *prior_notes(args.semantic_notes)]
    if args.instance_tables:
        instances = load_semantic(args.instance_tables)
        instances.to_csv(out / "instance_metrics.csv", index=False)
        lines += ["## Class-agnostic instance segmentation on test views (Gaga protocol: I mIoU, P precision and "
                  "R recall at IoU 0.5, B boundary mIoU; %)", "",
                  instance_table(instances).to_markdown(index=False, floatfmt=".1f"), "",
                  "## Associated masks on training views against GT instances (%)", "",
                  association_table(instances).to_markdown(index=False, floatfmt=".1f"), "",
                  "## Inference schemes on test views (%)", "",
                  inference_table(instances).to_markdown(index=False, floatfmt=".1f"), ""]
    if args.fusion_methods and args.semantic_tables:
        fusion = scannet[scannet["method"].isin(args.fusion_methods)]
        lines += ["## SAS 2D fusion and 3D distillation (Table 3: each model alone, Add, Linear, capability-guided "
                  "2D fusion; the distilled network after pixel-point, superpoint, superpoint + TESD distillation; "
                  "ScanNet protocol on the scan's points, %)", "", fusion.to_markdown(index=False, floatfmt=".2f"), ""]
    if args.capability_stores:
        lines += ["## SAS model capability (Eq. 3-5: mean IoU against the pseudo masks of single-object images)", ""]
        for item in args.capability_stores:
            label, _, path = item.partition("=")
            lines += capability_heatmap(label, path, out)
    (out / "report.md").write_text("\n".join(lines))


def diagnosis_tables(semantic: pd.DataFrame) -> list[str]:
    """Per-class 3D IoU and codebook purity (Markdown lines), where the semantic tables have them."""
    lines = []
    if "scannet_3d_class" in set(semantic["protocol"]):
        lines += ["### 3D IoU per class (19-class subset, %)", "",
                  class_iou_table(semantic).to_markdown(index=False, floatfmt=".1f"), ""]
    if "codebook_purity" in set(semantic["protocol"]):
        lines += ["### Codebook purity (%: per cluster, the share of its Gaussians from its majority GT instance; "
                  "`purity` averages clusters, `purity_weighted` Gaussians; `instances_majority` = GT instances that "
                  "are some cluster's majority)", "", purity_table(semantic).to_markdown(index=False, floatfmt=".1f"), ""]
    return lines


def prior_notes(notes: list[str]) -> list[str]:
    """One line per method saying which 2D priors it ran on (oracle or models), so no table is misread."""
    return [f"- {n}" for n in notes] + ([""] if notes else [])


def parser() -> argparse.ArgumentParser:
    p = stage_parser("report", __doc__)
    p.add_argument("--render-tables", nargs="*", default=[], help="per-view CSV tables of evaluate_render")
    p.add_argument("--semantic-tables", nargs="*", default=[], help="method=path of evaluate_semantic CSV tables")
    p.add_argument("--semantic-notes", nargs="*", default=[], help="per-method notes on the 2D priors used")
    p.add_argument("--prompt-tables", nargs="*", default=[], help="method=path of evaluate_prompt CSV tables")
    p.add_argument("--capability-stores", nargs="*", default=[], help="label=path of SAS capability stores")
    p.add_argument("--fusion-methods", nargs="*", default=[], help="methods shown in the SAS 2D-fusion table")
    p.add_argument("--instance-tables", nargs="*", default=[], help="method=path of evaluate_instances CSV tables")
    p.add_argument("--annotation-tables", nargs="*", default=[],
                   help="method=path of evaluate_annotations CSV tables (text-query datasets)")
    p.add_argument("--random-weight-methods", nargs="*", default=[],
                   help="methods whose 2D priors came from random-weight models (rows marked, never results)")
    p.add_argument("--out-dir", required=True)
    return p


if __name__ == "__main__":
    run_stage(main, parser())
