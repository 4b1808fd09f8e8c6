"""Known answers for mask filtering, redundancy removal, level merging and label-map painting."""

import numpy as np

from stages.lib.mask_levels import (
    LEVELS,
    LevelFilter,
    Mask,
    filter_redundant,
    paint_label_map,
    select_levels,
)


def box(y0, y1, x0, x1, shape=(10, 10)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_quality_gates_drop_low_iou_low_stability_and_tiny_masks():
    rule = LevelFilter(min_predicted_iou=0.8, min_stability=0.9, max_overlap=0.8, min_area=5)
    good = Mask(box(0, 3, 0, 3), 0.95, 0.95)
    low_iou = Mask(box(5, 8, 5, 8), 0.7, 0.99)
    unstable = Mask(box(5, 8, 0, 3), 0.99, 0.8)
    tiny = Mask(box(9, 10, 9, 10), 0.99, 0.99)
    assert filter_redundant([low_iou, good, unstable, tiny], rule) == [good]


def test_overlap_suppression_keeps_the_better_scored_of_nested_masks():
    rule = LevelFilter(min_predicted_iou=0, min_stability=0, max_overlap=0.8)
    big = Mask(box(0, 10, 0, 10), 0.9, 0.9)          # score 0.81
    inside = Mask(box(2, 5, 2, 5), 0.95, 0.95)       # score 0.9025, fully inside big -> inner overlap 1.0
    disjoint = Mask(box(0, 2, 0, 2), 0.5, 0.5)       # inside big as well
    kept = filter_redundant([big, inside, disjoint], rule)
    assert kept == [inside, disjoint], "big overlaps the better-scored inner mask completely"
    half = Mask(box(2, 5, 3, 6), 0.9, 0.9)  # 6 of its 9 pixels overlap `inside`: inner overlap 2/3 <= 0.8
    assert filter_redundant([inside, half], rule) == [inside, half]


def test_paint_puts_small_masks_on_top_and_drops_fully_hidden_ones():
    big = Mask(box(0, 10, 0, 10))
    small = Mask(box(2, 4, 2, 4))
    hidden_twin = Mask(box(2, 4, 2, 4))  # same area as small, painted first and covered
    labels, kept = paint_label_map([small, big], (10, 10))
    assert kept == [big, small]
    assert (labels[2:4, 2:4] == 1).all() and (labels == 0).sum() == 96
    labels, kept = paint_label_map([big, hidden_twin, small], (10, 10))
    assert len(kept) == 2 and set(np.unique(labels)) == {0, 1}
    labels, kept = paint_label_map([big, hidden_twin, small], (10, 10), keep_hidden=True)
    assert len(kept) == 3, "list mode keeps masks that are covered"


def test_ccl_lgs_merged_levels_pool_members_and_remove_redundancy():
    rule = LevelFilter(min_predicted_iou=0, min_stability=0, max_overlap=0.8)
    whole = Mask(box(0, 10, 0, 10), 0.9, 0.9, level=LEVELS.index("whole"))
    part_a = Mask(box(0, 10, 0, 5), 0.92, 0.92, level=LEVELS.index("part"))
    part_b = Mask(box(0, 10, 5, 10), 0.6, 0.6, level=LEVELS.index("part"))
    sub = Mask(box(0, 5, 0, 5), 0.99, 0.99, level=LEVELS.index("subpart"))
    levels = {"subpart+part": ["subpart", "part"], "whole+part": ["whole", "part"]}
    fine, coarse = select_levels([whole, part_a, part_b, sub], levels, rule)
    # subpart+part: sub (0.98) wins over part_a, which contains it; part_b does not overlap sub
    assert fine == [sub, part_b]
    # whole+part: part_a (0.846) beats whole (0.81) which contains it; part_b is inside whole but whole is gone
    assert coarse == [part_a, part_b]
    everything = select_levels([whole, part_a, part_b, sub], {"all": list(LEVELS)}, rule, keep_all=True)[0]
    assert len(everything) == 4


def test_equal_scores_are_resolved_by_member_order():
    rule = LevelFilter(min_predicted_iou=0, min_stability=0)
    whole = Mask(box(0, 10, 0, 10), level=2)
    part = Mask(box(0, 10, 0, 5), level=1)
    assert select_levels([part, whole], {"whole+part": ["whole", "part"]}, rule) == [[whole]]
    assert select_levels([part, whole], {"part+whole": ["part", "whole"]}, rule) == [[part]]
