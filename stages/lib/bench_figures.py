"""The benchmark's pictures: robustness curves per protocol, cost bars, cost against scene size, per scene a test
view with its ground truth and every method's predicted classes, and per text query each method's selection mask
beside the view and its ground truth."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from stages.lib.semantic_metrics import SCANNET_SUBSETS  # noqa: E402

UNLABELLED = (0.0, 0.0, 0.0)
SELECTED = (1.0, 0.8, 0.0)  # a method's selection mask over the dimmed view (the ground truth's is white)


def draw_panel(ax, name: str, image: "np.ndarray | None", missing: str) -> None:
    """One titled image panel without axes; ``missing`` is written in its place when there is no image."""
    if image is None:
        ax.text(0.5, 0.5, missing, ha="center", va="center", fontsize=8)
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_title(name, fontsize=8)
    ax.axis("off")


def class_colour(name: str) -> tuple[float, float, float]:
    """A fixed colour per class name (the 19 ScanNet classes from tab20, others from a hash of the name)."""
    palette = plt.get_cmap("tab20").colors
    if name in SCANNET_SUBSETS[19]:
        return tuple(palette[SCANNET_SUBSETS[19].index(name)])
    return tuple(palette[int(hashlib.md5(name.encode()).hexdigest(), 16) % len(palette)])


def colour_map(labels: np.ndarray, names: list[str]) -> np.ndarray:
    """[H, W] class ids into ``names`` (-1 unlabelled) -> [H, W, 3] RGB in [0, 1]."""
    lut = np.array([class_colour(n) for n in names] + [UNLABELLED])
    return lut[np.where((labels >= 0) & (labels < len(names)), labels, len(names))]


def splat_labels(points: np.ndarray, labels: np.ndarray, intrinsics: np.ndarray, world_to_camera: np.ndarray,
                 height: int, width: int, radius: int | None = None) -> np.ndarray:
    """Per pixel the label of the nearest point whose square (side 2 radius + 1) covers it (OpenCV pinhole, z-buffer),
    -1 where none. The default radius gives each point twice the side of the mean pixel area per point in the image,
    so that a scan's visible points leave few holes after the nearer ones have hidden the farther ones."""
    cam = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    z = cam[:, 2]
    front = z > 1e-6
    uv = cam[front] @ intrinsics.T
    col, row, z, lab = (np.floor(uv[:, 0] / uv[:, 2]).astype(int), np.floor(uv[:, 1] / uv[:, 2]).astype(int),
                        z[front], labels[front])
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    col, row, z, lab = col[inside], row[inside], z[inside], lab[inside]
    if radius is None:
        radius = int(max(0, np.ceil(np.sqrt(height * width / max(len(z), 1))) - 1))
    offsets = [(dr, dc) for dr in range(-radius, radius + 1) for dc in range(-radius, radius + 1)]
    pixel = np.concatenate([np.clip(row + dr, 0, height - 1) * width + np.clip(col + dc, 0, width - 1)
                            for dr, dc in offsets])
    depth, lab = np.tile(z, len(offsets)), np.tile(lab, len(offsets))
    order = np.lexsort((depth, pixel))  # by pixel, nearest first
    first = np.unique(pixel[order], return_index=True)[1]
    out = np.full(height * width, -1, np.int64)
    out[pixel[order][first]] = lab[order][first]
    return out.reshape(height, width)


def robustness_plot(long: pd.DataFrame, protocol: str, title: str, levels: list[str], path: Path) -> None:
    """Every metric of ``protocol`` against the corruption level (x in the bench's level order), one line per
    method, means over scenes."""
    rows = long[long["protocol"] == protocol]
    metrics = list(dict.fromkeys(rows["metric"]))
    cols = min(3, len(metrics))
    nrows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    x = {lvl: i for i, lvl in enumerate(levels)}
    for ax, metric in zip(axes.flat, metrics):
        means = rows[rows["metric"] == metric].groupby(["method", "level"])["value"].mean().reset_index()
        for method, curve in means.groupby("method"):
            curve = curve.assign(x=curve["level"].map(x)).sort_values("x")
            ax.plot(curve["x"], curve["value"], marker="o", label=method)
        ax.set_xticks(range(len(levels)), levels, rotation=30, ha="right", fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("oracle prior corruption", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cost_plot(costs: pd.DataFrame, path: Path) -> None:
    """Per method: mean wall time per stage (stacked), and the peak RSS and peak GPU memory of its stages."""
    wall = costs.pivot_table(index="Method", columns="Stage", values="Wall time (s)", sort=False).fillna(0.0)
    memory = costs.groupby("Method", sort=False)[["Peak RSS (MB)", "Peak GPU memory (MB)"]].max().fillna(0.0)
    memory = memory.reindex(wall.index)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(wall) + 3.0))
    start = np.zeros(len(wall))
    for i, stage in enumerate(wall.columns):
        left.barh(wall.index, wall[stage], left=start, label=stage, color=plt.get_cmap("tab20").colors[i % 20])
        start += wall[stage].to_numpy()
    left.set_xlabel("wall time per scene and level (s)")
    left.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    y = np.arange(len(memory))
    right.barh(y - 0.2, memory["Peak RSS (MB)"], height=0.4, color="tab:gray", label="peak RSS (CPU)")
    right.barh(y + 0.2, memory["Peak GPU memory (MB)"], height=0.4, color="tab:green", label="peak GPU allocated")
    right.set_yticks(y, memory.index)  # the same rows, bottom up, as the wall-time bars
    right.set_xlabel("peak memory of its stages (MB)")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def scaling_plot(costs: pd.DataFrame, sizes: dict[str, str], measures: dict[str, str], path: Path) -> None:
    """Every cost measure (columns) against every size (rows) of ``scaling_costs`` on log-log axes, one line per method
    and stage (colour: stage, line style: method); a panel without a positive value says so."""
    stages = list(dict.fromkeys(costs["Stage"]))
    methods = list(dict.fromkeys(costs["Method"]))
    palette = plt.get_cmap("tab20").colors  # dark hues first, their light pairs after the tenth stage
    colours = {s: palette[(2 * i) % 20 + (i // 10) % 2] for i, s in enumerate(stages)}
    styles = {m: ["-", "--", ":", "-."][i % 4] for i, m in enumerate(methods)}
    fig, axes = plt.subplots(len(sizes), len(measures), figsize=(4.2 * len(measures), 3.4 * len(sizes) + 0.6),
                             squeeze=False)
    for row, size in zip(axes, sizes.values()):
        for ax, cost in zip(row, measures.values()):
            shown = costs[(costs[size] > 0) & (costs[cost] > 0)]
            for (method, stage), curve in shown.groupby(["Method", "Stage"], sort=False):
                ax.plot(curve[size], curve[cost], marker="o", ms=3, color=colours[stage], linestyle=styles[method])
            if shown.empty:
                ax.text(0.5, 0.5, "no positive value measured", ha="center", va="center", fontsize=8,
                        transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.set_xscale("log")
                ax.set_yscale("log")
            ax.set_xlabel(size.lower(), fontsize=8)
            ax.set_ylabel(cost, fontsize=8)
            ax.grid(alpha=0.3, which="both")
    handles = [Patch(color=colours[s], label=s) for s in stages]
    handles += [plt.Line2D([], [], color="black", linestyle=styles[m], label=m) for m in methods]
    fig.legend(handles=handles, loc="lower center", ncol=min(8, len(handles)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.5 / (3.4 * len(sizes) + 0.6), 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def scene_figure(rgb: np.ndarray, gt: np.ndarray, gt_names: list[str], predictions: dict[str, np.ndarray | None],
                 pred_names: list[str], title: str, path: Path) -> None:
    """A test view's RGB, its GT semantic map and each method's predicted class map side by side (None: the
    method's evaluation stored no point labels), with one legend of the classes shown."""
    panels = [("RGB", rgb / 255.0), ("ground truth", colour_map(gt, gt_names))]
    shown = {gt_names[c] for c in np.unique(gt) if c >= 0}
    for method, labels in predictions.items():
        if labels is None:
            panels.append((method, None))
            continue
        panels.append((method, colour_map(labels, pred_names)))
        shown |= {pred_names[c] for c in np.unique(labels) if 0 <= c < len(pred_names)}
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.6 * rgb.shape[0] / rgb.shape[1] + 1.2),
                             squeeze=False)
    for ax, (name, image) in zip(axes[0], panels):
        draw_panel(ax, name, image, "no point labels\nstored")
    fig.legend(handles=[Patch(color=class_colour(n), label=n) for n in sorted(shown)], loc="lower center",
               ncol=min(8, max(1, len(shown))), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def topdown_figure(points: np.ndarray, gt: np.ndarray, gt_names: list[str], predictions: dict[str, np.ndarray],
                   pred_names: list[str], title: str, path: Path) -> None:
    """The scan's points seen from above (the axis of least extent dropped, lowest points drawn first), coloured by
    the ground-truth class and by each method's predicted class."""
    up = int(np.argmin(np.ptp(points, axis=0)))
    plane = [a for a in range(3) if a != up]
    order = np.argsort(points[:, up])
    xy = points[order][:, plane]
    panels = [("ground truth", colour_map(gt[order], gt_names))]
    panels += [(m, colour_map(labels[order], pred_names)) for m, labels in predictions.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.4), squeeze=False)
    size = max(0.5, 4000 / len(points))
    for ax, (name, colours) in zip(axes[0], panels):
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, s=size, linewidths=0)
        ax.set_title(name, fontsize=8)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def mask_overlay(rgb: np.ndarray, mask: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    """The image [H, W, 3] (uint8) dimmed, with ``mask`` [H, W] tinted in ``colour``: [H, W, 3] in [0, 1]."""
    image = rgb / 255.0 * 0.35
    return np.where(mask[..., None], 0.4 * image + 0.6 * np.asarray(colour), image)


@dataclass
class QueryPanels:
    """One text query of a query figure: the test view showing it, its ground-truth mask and each method's selection
    on that view (None: the method's evaluation stored no mask for it)."""

    query: str
    view: int
    rgb: np.ndarray
    gt: np.ndarray
    masks: dict[str, np.ndarray | None]


def query_figure(rows: list[QueryPanels], title: str, path: Path) -> list[list[str]]:
    """One row per text query: the view's RGB, the ground-truth mask and each method's selection mask (tinted over the
    dimmed view) side by side; returns the panel titles per row."""
    methods = list(dict.fromkeys(m for r in rows for m in r.masks))
    columns = 2 + len(methods)
    height, width = rows[0].rgb.shape[:2]
    fig, axes = plt.subplots(len(rows), columns, squeeze=False,
                             figsize=(2.4 * columns, (2.4 * height / width + 0.4) * len(rows) + 0.5))
    titles = []
    for ax_row, row in zip(axes, rows):
        panels = [(f"view {row.view}", row.rgb / 255.0), (f"ground truth: {row.query}",
                                                          mask_overlay(row.rgb, row.gt, (1.0, 1.0, 1.0)))]
        panels += [(m, None if row.masks.get(m) is None else mask_overlay(row.rgb, row.masks[m], SELECTED))
                   for m in methods]
        for ax, (name, image) in zip(ax_row, panels):
            draw_panel(ax, name, image, "no mask\nstored")
        titles.append([name for name, _ in panels])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return titles
