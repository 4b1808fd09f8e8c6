"""The bench plan: corruption levels derive variants only where a corruption reaches, so the rest is shared."""

from __future__ import annotations

import pytest

from stages.lib.bench_plan import add_variants, bench_plan


def config(levels=("clean", "strong"), table=None):
    return {
        "methods": {
            "a": {"train_gs": "gs", "masks": "m", "features": "fa", "train_features": "tf", "evaluate_semantic": "ea"},
            "b": {"train_gs": "gs", "masks": "m", "features": "fb", "train_features": "tf", "evaluate_semantic": "eb"},
            "real": {"train_gs": "gs", "masks": "sam", "train_features": "tf_sam"},
        },
        "stages": {
            "train_gs": {"variants": {"gs": {"iterations": 10}}},
            "masks": {"variants": {"m": {"source": "oracle", "corruption": {"min_area": 2}}, "sam": {"source": "sam"}}},
            "features": {"variants": {"fa": {"after": {"masks": "m"}, "source": "oracle", "alpha": 0.4},
                                      "fb": {"after": {"masks": "m"}, "source": "oracle", "alpha": 0.0}}},
            "train_features": {"variants": {"tf": {"after": {"train_gs": "gs", "masks": "m"}},
                                            "tf_sam": {"after": {"train_gs": "gs", "masks": "sam"}}}},
            "evaluate_semantic": {"variants": {"ea": {"after": {"train_features": "tf", "features": "fa"}},
                                               "eb": {"after": {"train_features": "tf", "features": "fb"}}}},
        },
        "bench": {"methods": ["a", "b", "real"], "levels": list(levels),
                  "corruption_levels": table or {"clean": {}, "strong": {"masks": {"dropout": 0.3},
                                                                         "features": {"noise": 1.0}},
                                                 "masks_only": {"masks": {"dropout": 0.3}}}},
    }


def test_clean_level_keeps_the_recipes_and_a_corrupted_level_derives_only_what_it_reaches():
    cfg = config()
    plan = bench_plan(cfg)
    runs = {(r.method, r.level): r for r in plan.runs}
    assert runs[("a", "clean")].recipe == cfg["methods"]["a"]
    strong = runs[("a", "strong")].recipe
    assert strong == {"train_gs": "gs", "masks": "m__strong", "features": "fa__strong", "train_features": "tf__strong",
                      "evaluate_semantic": "ea__strong"}
    # the two methods share the corrupted masks and feature field at the same level
    assert runs[("b", "strong")].recipe["masks"] == strong["masks"]
    assert runs[("b", "strong")].recipe["train_features"] == strong["train_features"]
    # the corruption merges over the variant's own and the wiring points at the derived upstream variants
    assert plan.variants[("masks", "m__strong")] == {"source": "oracle", "corruption": {"min_area": 2, "dropout": 0.3}}
    assert plan.variants[("train_features", "tf__strong")] == {"after": {"train_gs": "gs", "masks": "m__strong"}}
    assert plan.variants[("features", "fb__strong")]["after"] == {"masks": "m__strong"}
    # a real model's priors are not corrupted: that recipe is the same at every level
    assert runs[("real", "strong")].recipe == cfg["methods"]["real"]
    assert runs[("real", "strong")].priors == "masks: sam model"
    assert runs[("a", "strong")].priors == "masks: oracle, strong; features: oracle, strong"


def test_a_single_prior_level_leaves_the_other_priors_shared():
    plan = bench_plan(config(levels=("masks_only",)))
    a = next(r for r in plan.runs if r.method == "a")
    assert a.recipe["masks"] == "m__masks_only"
    assert a.recipe["features"] == "fa__masks_only"  # reads the corrupted masks, so it is re-extracted
    assert ("features", "fa__masks_only") in plan.variants
    assert "noise" not in str(plan.variants[("features", "fa__masks_only")])
    assert a.priors == "masks: oracle, masks_only; features: oracle, clean"


def test_add_variants_writes_them_and_refuses_a_conflicting_name():
    cfg = config()
    plan = bench_plan(cfg)
    add_variants(cfg, plan)
    assert cfg["stages"]["masks"]["variants"]["m__strong"]["corruption"]["dropout"] == 0.3
    cfg["stages"]["masks"]["variants"]["m__strong"] = {"source": "oracle"}
    with pytest.raises(ValueError, match="m__strong exists and differs"):
        add_variants(cfg, plan)


@pytest.mark.parametrize("change, message", [
    (lambda c: c["bench"].update(levels=["extreme"]), "bench.levels names 'extreme'"),
    (lambda c: c["bench"].update(methods=["nope"]), "bench.methods lists 'nope'"),
    (lambda c: c["bench"]["corruption_levels"].update(strong={"capability": {}}), "corrupts \\['capability'\\]"),
])
def test_bad_bench_config_is_named(change, message):
    cfg = config()
    change(cfg)
    with pytest.raises(ValueError, match=message):
        bench_plan(cfg)
