"""Cost of the benchmark's jobs from Snakemake's ``benchmark:`` files: wall time and peak resident memory per method
and stage, which jobs several rows share, and what the sharing saves."""

from __future__ import annotations

import pandas as pd


def read_benchmark(path: str) -> dict[str, float]:
    """Wall seconds and peak RSS (MB) of one job's benchmark TSV (Snakemake writes NA where it could not measure)."""
    table = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
    return {"wall_s": float(table["s"].mean()), "peak_rss_mb": float(table["max_rss"].max())}


def job_costs(entries: list[dict]) -> pd.DataFrame:
    """One row per (method, level, scene, stage): the job's variant, cost, and how many bench rows use that job."""
    rows = [{"method": e["method"], "level": e["level"], "dataset": e["dataset"], "scene": e["scene"],
             "stage": stage, "variant": variant, "benchmark": path}
            for e in entries for stage, (variant, path) in e["benchmarks"].items()]
    if not rows:
        return pd.DataFrame(columns=["method", "level", "dataset", "scene", "stage", "variant", "benchmark",
                                     "wall_s", "peak_rss_mb", "shared_by"])
    jobs = pd.DataFrame(rows)
    measured = {path: read_benchmark(path) for path in jobs["benchmark"].unique()}
    jobs["wall_s"] = jobs["benchmark"].map(lambda p: measured[p]["wall_s"])
    jobs["peak_rss_mb"] = jobs["benchmark"].map(lambda p: measured[p]["peak_rss_mb"])
    jobs["shared_by"] = jobs.groupby("benchmark")["benchmark"].transform("size").astype(int)
    return jobs


def stage_cost_table(jobs: pd.DataFrame, stages: list[str]) -> pd.DataFrame:
    """Per method and stage: mean wall time and peak RSS over its levels and scenes, and the most rows sharing one of
    its jobs (1 = the method's own job)."""
    table = jobs.groupby(["method", "stage"], as_index=False).agg(
        wall_s=("wall_s", "mean"), peak_rss_mb=("peak_rss_mb", "max"), shared_by=("shared_by", "max"))
    table["order"] = table["stage"].map({s: i for i, s in enumerate(stages)})
    table = table.sort_values(["method", "order"]).drop(columns="order")
    table["shared_by"] = table["shared_by"].astype(int)
    return table.rename(columns={"method": "Method", "stage": "Stage", "wall_s": "Wall time (s)",
                                 "peak_rss_mb": "Peak RSS (MB)", "shared_by": "Rows sharing the job"})


def sharing_summary(jobs: pd.DataFrame) -> dict[str, float]:
    """Jobs and wall time as run (each job once) against what every row computing its own jobs would cost."""
    unique = jobs.drop_duplicates("benchmark")
    return {"jobs run": int(len(unique)), "jobs without sharing": int(len(jobs)),
            "wall time run (s)": float(unique["wall_s"].sum()),
            "wall time without sharing (s)": float(jobs["wall_s"].sum())}
