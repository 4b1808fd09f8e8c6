"""Text queries: codebook search by cosine similarity (argmax / threshold / vocabulary), rendered selections, CLI."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from oracle_stores import (
    build_oracle,
    run_cli,
    two_gaussians_on_axis,
    write_oracle_association,
    write_oracle_codebook,
)
from PIL import Image

from stages.lib.instance_gaussians import render_alpha
from stages.lib.store import StoreError, read_store
from stages.methods.openins.query import Query, QueryError, bench_query_latency

# Instance 0 = chair, 1 = table, 2 = mostly chair, 3 never associated (zero row).
LANGUAGE = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 0.0]])
TEXT = torch.eye(2, 3)
LEAF = torch.tensor([0, 0, 1, 2, 3, -1])


def planted(encoder=None) -> Query:
    return Query(LANGUAGE, TEXT, ["chair", "table"], LEAF, encoder=encoder)


def test_argmax_selects_the_most_similar_instance_and_its_gaussians():
    ids, mask = planted().select("chair")
    assert ids.tolist() == [0]
    assert mask.tolist() == [True, True, False, False, False, False]
    ids, mask = planted().select(" Table")
    assert ids.tolist() == [1] and mask.tolist() == [False, False, True, False, False, False]


def test_threshold_and_vocabulary_modes():
    q = planted()
    assert q.relevance("chair").tolist() == pytest.approx([1.0, 0.0, 0.8, -1.0])
    ids, mask = q.select("chair", "threshold", threshold=0.5)
    assert ids.tolist() == [0, 2] and mask.tolist() == [True, True, False, True, False, False]
    assert q.select("table", "threshold", threshold=0.5)[0].tolist() == [1, 2]
    assert q.select("table", "threshold", threshold=-1.0)[0].tolist() == [0, 1, 2], "unseen is never selected"
    assert q.select("chair", "vocabulary")[0].tolist() == [0, 2]
    assert q.select("table", "vocabulary")[0].tolist() == [1]
    with pytest.raises(ValueError):
        q.select("chair", "nearest")


def test_texts_outside_the_vocabulary_use_the_encoder():
    calls = []

    def encoder(texts: list[str]) -> torch.Tensor:
        calls.append(texts)
        return torch.tensor([[0.6, 0.8, 0.0]]) * 3

    q = planted(encoder)
    assert torch.allclose(q.text_embedding("wooden thing"), torch.tensor([0.6, 0.8, 0.0]))
    assert q.select("wooden thing")[0].tolist() == [2]  # cos 0.96 beats 0.8 (table) and 0.6 (chair)
    # vocabulary mode: only instance 2 matches the query (0.96) better than every vocabulary word (0.8)
    assert q.select("wooden thing", "vocabulary")[0].tolist() == [2]
    assert calls == [["wooden thing"]], "embeddings are cached; vocabulary words never reach the encoder"
    with pytest.raises(QueryError, match="not in the stored vocabulary"):
        planted().text_embedding("wooden thing")


def toy_query() -> Query:
    """The two Gaussians on the optical axis: instance 0 (front) is a table, instance 1 (behind it) a chair."""
    g, cams = two_gaussians_on_axis()
    return Query(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.eye(2), ["chair", "table"], g.leaf_id, g), cams


def test_render_selection_visible_respects_occlusion_alone_does_not():
    q, cams = toy_query()
    visible = q.render_selection("chair", cams)
    alone = q.render_selection("chair", cams, how="alone")
    assert visible.shape == (1, 24, 32) and visible.dtype == torch.bool
    assert not visible[0, 12, 16], "the chair is hidden behind the table"
    assert alone[0, 12, 16], "rendered alone, the chair shows its full footprint"
    # the alone footprint by hand: 0.99 exp(-d^2 / 2 var) >= 0.5 with var = (f s / z)^2 + 0.3
    var = (40 * 0.3 / 5) ** 2 + 0.3
    ys, xs = torch.meshgrid(torch.arange(24) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    assert torch.equal(alone[0], 0.99 * torch.exp(-0.5 * ((xs - 16) ** 2 + (ys - 12) ** 2) / var) >= 0.5)
    table = q.render_selection("table", cams)
    assert table[0, 12, 16] and not (table[0] & visible[0]).any()


def test_relevance_map_composites_instance_relevance():
    q, cams = toy_query()
    table = q.relevance_map("table", cams)[0]
    chair = q.relevance_map("chair", cams)[0]
    assert table[12, 16].item() > 0.98, "the front table covers the centre"
    assert abs(chair[12, 16].item()) < 0.02
    # relevance 1 for one instance and 0 for the other: the two maps split the accumulated opacity
    assert torch.allclose(table + chair, render_alpha(q.gaussians, cams)[0], atol=1e-6)


def test_bench_query_latency_runs_on_cpu():
    out = bench_query_latency(n_gaussians=20_000, n_instances=64, dim=32, device="cpu", repeats=5, warmup=1)
    assert out["n_gaussians"] == 20_000
    assert all(out[f"{m}_median_ms"] > 0 and math.isfinite(out[f"{m}_p95_ms"]) for m in ("argmax", "threshold"))


@pytest.fixture(scope="module")
def oracle(tmp_path_factory) -> dict[str, Path]:
    paths = build_oracle(tmp_path_factory.mktemp("oracle"))
    paths["association"] = paths["scene"].parent / "association.zarr"
    write_oracle_association(paths["association"], np.array(read_store("scene", paths["scene"])
                                                            .attrs["instance_categories"]))
    return paths


def query_args(paths: dict[str, Path], text: str) -> list[str]:
    return ["--association", str(paths["association"]), "--codebook", str(paths["codebook"]), "--gaussians",
            str(paths["gaussians"]), "--text", text, "--device", "cpu"]


def test_query_cli_prints_and_renders_the_selection(oracle, tmp_path):
    categories = np.array(read_store("scene", oracle["scene"]).attrs["instance_categories"])
    chairs = np.nonzero(categories == 4)[0].tolist()
    png = tmp_path / "chair.png"
    res = run_cli("stages.query", query_args(oracle, "chair") + ["--scene", str(oracle["scene"]), "--view", "1",
                                                                 "--out", str(png), "--params",
                                                                 '{"mode": "vocabulary"}'])
    assert res.returncode == 0, res.stderr
    assert f"instances {chairs}" in res.stdout
    mask = np.asarray(Image.open(png)) > 0
    gt = read_store("scene", oracle["scene"])["gt_semantic"][1] == 4
    assert mask.shape == gt.shape and (mask & gt).sum() > 0.5 * gt.sum()
    res = run_cli("stages.query", query_args(oracle, "spaceship"))
    assert res.returncode != 0 and "not in the stored vocabulary" in res.stderr
    res = run_cli("stages.query", query_args(oracle, "spaceship") + ["--clip-model", "clip_vit_b16_laion2b",
                                                                      "--weights-dir", str(tmp_path / "none")])
    assert res.returncode != 0 and "python -m stages.weights fetch clip_vit_b16_laion2b" in res.stderr


def test_query_load_rejects_a_codebook_of_another_size(oracle, tmp_path):
    bad = tmp_path / "codebook.zarr"
    write_oracle_codebook(bad, np.zeros(10, np.int64), 3)
    with pytest.raises(StoreError, match="codebook"):
        Query.load(oracle["association"], bad)
