"""The benchmark's comparison tables: every evaluation table of every (method, level, scene) in one long frame, one
table per protocol with a row per (method, level), and the Markdown formatting (best per column, no ``nan``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

KEYS = ["method", "level", "priors", "dataset", "scene"]


@dataclass(frozen=True)
class Protocol:
    title: str
    definition: str


PROTOCOLS = {
    "scannet_3d": Protocol(
        "Open-vocabulary 3D semantic segmentation (ScanNet protocol)",
        "Every ground-truth point of the scan takes the class of the method's 3D prediction (nearest Gaussian, or the "
        "point itself for point-based methods) among the 19 / 15 / 10 ScanNet class names used as text queries; "
        "mIoU and mAcc over the classes present in the ground truth. K=40 / 80 / 160 (methods with per-point features): "
        "the same over the long-tail vocabularies (NYU40, extended by ScanNet200 names; SAS Table 2)."),
    "lerf_2d": Protocol(
        "Open-vocabulary text queries on test views (LERF protocol)",
        "Every category shown in the held-out views is a text query; its rendered selection is compared with the "
        "ground-truth mask per view that shows it; mIoU over the queries, mAcc@t = share of queries with IoU > t, "
        "loc. acc = share of queries whose relevance peak falls inside the object."),
    "3dovs_2d": Protocol(
        "Semantic segmentation over the scene's class list (3D-OVS protocol)",
        "Per pixel of the held-out views, the argmax over the scene's class list; mIoU and mAcc over the classes."),
    "instance": Protocol(
        "Class-agnostic instance segmentation on test views (Gaga protocol)",
        "Predicted instance masks of the held-out views matched to ground-truth instances (Hungarian); mIoU of the "
        "matches, precision and recall at IoU 0.5, boundary mIoU; the method's primary inference scheme."),
    "promptable": Protocol(
        "Promptable 3D segmentation (NVOS / SPIn-NeRF protocols)",
        "Point prompts on a reference view select an object in 3D; its rendering on the target views is compared "
        "with the object's ground-truth mask; mIoU and mAcc (pixel accuracy) over the prompted objects."),
}


def semantic_rows(table: pd.DataFrame) -> pd.DataFrame:
    """evaluate_semantic CSV -> long rows (protocol, metric, value) of its ScanNet (with the long-tail K-class rows),
    LERF and 3D-OVS protocols."""
    out = []
    for r in table.to_dict("records"):
        if r["protocol"] == "scannet_3d":
            n = str(r["subset"]).split()[0]
            out += [("scannet_3d", f"{n} mIoU (%)", r["mIoU"]), ("scannet_3d", f"{n} mAcc (%)", r["mAcc"])]
        elif r["protocol"] == "long_tail_3d":
            k = r["subset"]
            out += [("scannet_3d", f"{k} mIoU (%)", r["mIoU"]), ("scannet_3d", f"{k} mAcc (%)", r["mAcc"])]
        elif r["protocol"] == "lerf_2d" and r["subset"] == "mean":
            out += [("lerf_2d", "mIoU (%)", r["mIoU"]), ("lerf_2d", "mAcc@0.25 (%)", r.get("mAcc@0.25")),
                    ("lerf_2d", "mAcc@0.5 (%)", r.get("mAcc@0.5"))]
            if "loc. acc" in r and pd.notna(r["loc. acc"]):
                out.append(("lerf_2d", "loc. acc (%)", r["loc. acc"]))
        elif r["protocol"] == "3dovs_2d":
            out += [("3dovs_2d", "mIoU (%)", r["mIoU"]), ("3dovs_2d", "mAcc (%)", r["mAcc"])]
    return pd.DataFrame(out, columns=["protocol", "metric", "value"])


def prompt_rows(table: pd.DataFrame) -> pd.DataFrame:
    """evaluate_prompt CSV -> long rows: mean over the prompted objects per protocol (NVOS, SPIn-NeRF)."""
    names = {"nvos": "NVOS", "spin": "SPIn-NeRF"}
    mean = table[table["object"] == "mean"]
    out = [("promptable", f"{names.get(r.protocol, r.protocol)} {m} (%)", getattr(r, m))
           for r in mean.itertuples(index=False) for m in ("mIoU", "mAcc")]
    return pd.DataFrame(out, columns=["protocol", "metric", "value"])


def instance_rows(table: pd.DataFrame) -> pd.DataFrame:
    """evaluate_instances CSV -> long rows of the primary scheme on the test views (the first scheme without a
    ``primary`` column)."""
    test = table[table["protocol"] == "test"]
    if "primary" in test and test["primary"].fillna(False).astype(bool).any():
        test = test[test["primary"].fillna(False).astype(bool)]
    first = test.head(1)
    names = {"mIoU": "mIoU (%)", "precision": "precision (%)", "recall": "recall (%)", "mBIoU": "boundary mIoU (%)"}
    out = [("instance", label, float(first[col].iloc[0])) for col, label in names.items()
           if col in first and len(first)]
    return pd.DataFrame(out, columns=["protocol", "metric", "value"])


ROW_READERS = {"evaluate_semantic": semantic_rows, "evaluate_prompt": prompt_rows, "evaluate_instances": instance_rows}


def long_metrics(entries: list[dict]) -> pd.DataFrame:
    """One row per (method, level, scene, protocol, metric) from the manifest's entries and their CSV tables."""
    frames = []
    for entry in entries:
        for stage, path in entry["tables"].items():
            rows = ROW_READERS[stage](pd.read_csv(path))
            frames.append(rows.assign(**{k: entry[k] for k in KEYS}))
    if not frames:
        return pd.DataFrame(columns=[*KEYS, "protocol", "metric", "value"])
    long = pd.concat(frames, ignore_index=True)
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    return long[[*KEYS, "protocol", "metric", "value"]]


def protocol_table(long: pd.DataFrame, protocol: str, levels: list[str]) -> pd.DataFrame:
    """Rows (method, level): the mean of each metric over the scenes that measured it, and the scene count."""
    rows = long[long["protocol"] == protocol]
    metrics = list(dict.fromkeys(rows["metric"]))
    wide = rows.pivot_table(index=["method", "level", "priors"], columns="metric", values="value", aggfunc="mean")
    scenes = rows.groupby(["method", "level", "priors"])["scene"].nunique()
    wide = wide.reindex(columns=metrics).assign(scenes=scenes).reset_index()
    wide["order"] = wide["level"].map({lvl: i for i, lvl in enumerate(levels)})
    wide = wide.sort_values(["method", "order"]).drop(columns="order")
    wide["scenes"] = wide["scenes"].astype(int)
    return wide.rename(columns={"method": "Method", "level": "Level", "priors": "Priors"})


def markdown(table: pd.DataFrame, decimals: int = 1, best: bool = True) -> str:
    """A table for reading: integers as integers, floats at ``decimals``, missing cells as "–", with ``best`` the
    highest value of every float column in bold."""
    shown = table.copy().astype(object)
    for column in table.columns:
        values = table[column]
        if pd.api.types.is_integer_dtype(values):
            shown[column] = values.map(lambda v: "–" if pd.isna(v) else str(v))
        elif pd.api.types.is_float_dtype(values):
            top = values.max() if best and values.notna().any() else np.nan
            shown[column] = [("–" if pd.isna(v) else f"**{v:.{decimals}f}**" if v == top and len(values) > 1
                              else f"{v:.{decimals}f}") for v in values]
        else:
            shown[column] = values.fillna("–").map(str)
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(table[c]) else ":---" for c in table.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([header, rule, *body])
