"""stages/lib/params.py deep_merge: nested overrides as the workflow and the benches apply them."""

from __future__ import annotations

from stages.lib.params import deep_merge


def test_deep_merge_overrides_nested_keys_and_leaves_the_base_alone():
    base = {"iterations": 10, "densify": {"grow_grad2d": 0.0004, "refine_every": 100}, "bg": [1, 1, 1]}
    merged = deep_merge(base, {"densify": {"grow_grad2d": 0.0002}, "bg": [0, 0, 0], "new": {"a": 1}})
    assert merged == {"iterations": 10, "densify": {"grow_grad2d": 0.0002, "refine_every": 100}, "bg": [0, 0, 0],
                      "new": {"a": 1}}
    assert base["densify"]["grow_grad2d"] == 0.0004  # a copy, not the caller's dictionary
    assert deep_merge(base, None) == base and deep_merge(base, None) is not base  # no override: an equal copy
