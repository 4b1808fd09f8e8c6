"""Optional upstream stores: a variant's after: block decides which stores reach a stage's command line."""

import re
from pathlib import Path

import yaml
from workflow_runner import REPO, snakemake

SCENE = "synthetic/tiny_room"


def wired_config(tmp_path: Path, stages: dict) -> Path:
    """tests/config/tiny.yaml plus extra stage variants, written to a temporary config file."""
    config = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    for stage, variants in stages.items():
        config["stages"].setdefault(stage, {"variants": {}})["variants"].update(variants)
    path = tmp_path / "wired.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def shell_command(dry_run_output: str, stage: str, variant: str) -> str:
    """The shell command writing ``<stage>/<variant>.zarr`` in a ``snakemake -n -p`` output."""
    found = [c for c in re.findall(rf"python -m stages\.{stage} .*", dry_run_output)
             if re.search(rf"--out \S+/{stage}/{variant}\.zarr ", c)]
    assert len(found) == 1, f"expected one {stage} {variant} command, got {found}"
    return found[0]


def test_optional_upstreams_named_in_after_reach_the_commands(tmp_path):
    # CCL-LGS-like wiring: the codebook learnt from 2D priors, the feature field trained against it, and the
    # evaluation reading the feature field directly (no pseudo_gt).
    config = wired_config(tmp_path, {
        "features": {"wired": {"after": {"masks": "ccl_oracle"}, "source": "oracle", "alpha": 0.0}},
        "codebook": {"wired": {"after": {"masks": "ccl_oracle", "track": "ccl_oracle", "features": "wired"}}},
        "train_features": {"wired": {"after": {"train_gs": "tiny", "masks": "ccl_oracle", "codebook": "wired"}}},
        "evaluate_semantic": {"wired": {"after": {"train_features": "tiny", "codebook": "tiny", "associate": "tiny"}}},
    })
    results = tmp_path / "results"
    targets = [results / f"{SCENE}/train_features/wired.zarr", results / f"{SCENE}/evaluate_semantic/wired.zarr"]
    out = snakemake(results, *map(str, targets), "--dry-run", "--printshellcmds", configfile=config).stdout
    codebook = shell_command(out, "codebook", "wired")
    assert f"--masks {results}/{SCENE}/masks/ccl_oracle.zarr" in codebook
    assert f"--tracks {results}/{SCENE}/track/ccl_oracle.zarr" in codebook
    assert f"--features {results}/{SCENE}/features/wired.zarr" in codebook
    assert "--gaussians" not in codebook, "an optional input the variant does not name is not passed"
    assert f"--codebook {results}/{SCENE}/codebook/wired.zarr" in shell_command(out, "train_features", "wired")
    assert "--codebook" not in shell_command(out, "train_features", "tiny")
    evaluate = shell_command(out, "evaluate_semantic", "wired")
    assert f"--gaussians {results}/{SCENE}/train_features/tiny.zarr" in evaluate


def test_after_naming_a_stage_that_is_no_upstream_is_a_clear_error(tmp_path):
    config = wired_config(tmp_path, {"codebook": {"bad": {"after": {"train_gs": "tiny"}}}})
    proc = snakemake(tmp_path / "results", "--dry-run", configfile=config, check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "stages.codebook.variants.bad.after names ['train_gs'], which codebook cannot read" in message
    allowed = re.search(r"allowed upstream stages: \[([^\]]*)\]", message)
    assert allowed and {"'masks'", "'track'", "'features'", "'train_features'"} <= set(allowed.group(1).split(", "))


def test_variants_reading_each_other_are_a_cycle_error(tmp_path):
    config = wired_config(tmp_path, {
        "codebook": {"loop": {"after": {"train_features": "loop"}}},
        "train_features": {"loop": {"after": {"train_gs": "tiny", "masks": "whole_oracle", "codebook": "loop"}}},
    })
    proc = snakemake(tmp_path / "results", "--dry-run", configfile=config, check=False)
    assert proc.returncode != 0
    assert "form a cycle" in proc.stdout + proc.stderr
