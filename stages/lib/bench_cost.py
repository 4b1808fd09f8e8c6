"""Cost of the benchmark's jobs: wall time from Snakemake's ``benchmark:`` files, peak resident and GPU memory from the
stage's own record in its log (``stages.lib.stage_cost``), per method and stage; which jobs several rows share, and
what the sharing saves."""

from __future__ import annotations

import pandas as pd

from stages.lib.stage_cost import read_stage_cost

COLUMNS = {"method": "Method", "stage": "Stage", "wall_s": "Wall time (s)", "peak_rss_mb": "Peak RSS (MB)",
           "peak_gpu_mb": "Peak GPU memory (MB)", "shared_by": "Rows sharing the job"}


def read_benchmark(path: str) -> dict[str, float]:
    """Wall seconds and peak RSS (MB) of one job's benchmark TSV (Snakemake writes NA where it could not measure)."""
    table = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
    return {"wall_s": float(table["s"].mean()), "peak_rss_mb": float(table["max_rss"].max())}


def measure_job(benchmark: str, log: str | None) -> dict[str, float]:
    """A job's wall time (benchmark file) and peak memory: the stage's ``getrusage`` / ``max_memory_allocated``
    record in its log where there is one, else the benchmark's sampled max RSS and no GPU value (NaN)."""
    cost = {**read_benchmark(benchmark), "peak_gpu_mb": float("nan")}
    record = read_stage_cost(log) if log else None
    if record is not None:
        cost.update(peak_rss_mb=record["peak_rss_mb"], peak_gpu_mb=record["peak_gpu_mb"])
    return cost


def job_costs(entries: list[dict]) -> pd.DataFrame:
    """One row per (method, level, scene, stage): the job's variant, cost, and how many bench rows use that job."""
    rows = [{"method": e["method"], "level": e["level"], "dataset": e["dataset"], "scene": e["scene"],
             "stage": stage, "variant": variant, "benchmark": path, "log": e.get("logs", {}).get(stage)}
            for e in entries for stage, (variant, path) in e["benchmarks"].items()]
    if not rows:
        return pd.DataFrame(columns=["method", "level", "dataset", "scene", "stage", "variant", "benchmark", "log",
                                     "wall_s", "peak_rss_mb", "peak_gpu_mb", "shared_by"])
    jobs = pd.DataFrame(rows)
    measured = {path: measure_job(path, log) for path, log in jobs.drop_duplicates("benchmark")[["benchmark", "log"]]
                .itertuples(index=False)}
    for key in ("wall_s", "peak_rss_mb", "peak_gpu_mb"):
        jobs[key] = jobs["benchmark"].map(lambda p, k=key: measured[p][k])
    jobs["shared_by"] = jobs.groupby("benchmark")["benchmark"].transform("size").astype(int)
    return jobs


def stage_cost_table(jobs: pd.DataFrame, stages: list[str]) -> pd.DataFrame:
    """Per method and stage: mean wall time, the most peak RSS and GPU memory over its levels and scenes, and the most
    rows sharing one of its jobs (1 = the method's own job)."""
    table = jobs.groupby(["method", "stage"], as_index=False).agg(
        wall_s=("wall_s", "mean"), peak_rss_mb=("peak_rss_mb", "max"), peak_gpu_mb=("peak_gpu_mb", "max"),
        shared_by=("shared_by", "max"))
    table["order"] = table["stage"].map({s: i for i, s in enumerate(stages)})
    table = table.sort_values(["method", "order"]).drop(columns="order")
    table["shared_by"] = table["shared_by"].astype(int)
    return table[list(COLUMNS)].rename(columns=COLUMNS)


def sharing_summary(jobs: pd.DataFrame) -> dict[str, float]:
    """Jobs and wall time as run (each job once) against what every row computing its own jobs would cost."""
    unique = jobs.drop_duplicates("benchmark")
    return {"jobs run": int(len(unique)), "jobs without sharing": int(len(jobs)),
            "wall time run (s)": float(unique["wall_s"].sum()),
            "wall time without sharing (s)": float(jobs["wall_s"].sum())}
