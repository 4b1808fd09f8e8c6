"""Known-answer tests for the semantic metrics (hand-computed confusion matrices)."""

import numpy as np
import pytest

from stages.lib.semantic_metrics import (
    SCANNET_SUBSETS,
    confusion_matrix,
    lerf_query_metrics,
    mask_iou,
    miou_macc,
    subset_labels,
)


def test_confusion_matrix_and_miou_by_hand():
    gt = np.array([0, 0, 0, 1, 1, 2, -1, 2])
    pred = np.array([0, 0, 1, 1, 0, 2, 1, -1])
    cm = confusion_matrix(gt, pred, 4)
    # class 3 is absent from the GT: it must not count in the means.
    expected = np.zeros((4, 5), int)
    expected[0, 0], expected[0, 1], expected[1, 1], expected[1, 0], expected[2, 2], expected[2, 4] = 2, 1, 1, 1, 1, 1
    np.testing.assert_array_equal(cm, expected)
    miou, macc, iou, acc = miou_macc(cm)
    # IoU0 = 2/(3+3-2)=0.5, IoU1 = 1/(2+2-1)=1/3, IoU2 = 1/(2+1-1)=0.5
    assert iou[:3] == pytest.approx([0.5, 1 / 3, 0.5])
    assert acc[:3] == pytest.approx([2 / 3, 0.5, 0.5])
    assert np.isnan(iou[3]) and np.isnan(acc[3])
    assert miou == pytest.approx((0.5 + 1 / 3 + 0.5) / 3)
    assert macc == pytest.approx((2 / 3 + 0.5 + 0.5) / 3)


def test_false_positives_of_absent_class_still_hurt_present_classes():
    gt = np.array([0, 0, 1, 1])
    pred = np.array([0, 2, 1, 1])  # class 2 absent from GT but predicted once
    miou, macc, iou, _ = miou_macc(confusion_matrix(gt, pred, 3))
    assert iou[0] == pytest.approx(0.5) and iou[1] == 1.0 and np.isnan(iou[2])
    assert miou == pytest.approx(0.75) and macc == pytest.approx(0.75)


def test_scannet_subsets_follow_the_protocol():
    assert [len(SCANNET_SUBSETS[k]) for k in (19, 15, 10)] == [19, 15, 10]
    for k in (15, 10):
        assert set(SCANNET_SUBSETS[k]) <= set(SCANNET_SUBSETS[19])
    vocab = SCANNET_SUBSETS[19]
    labels = np.array([vocab.index("picture"), vocab.index("toilet"), -1, vocab.index("cabinet")])
    np.testing.assert_array_equal(subset_labels(labels, vocab, SCANNET_SUBSETS[10]),
                                  [-1, SCANNET_SUBSETS[10].index("toilet"), -1, -1])


def test_lerf_query_metrics():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True
    b[1:3] = True
    assert mask_iou(a, b) == pytest.approx(4 / 12)
    assert mask_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0
    m = lerf_query_metrics(np.array([0.1, 0.3, 0.6, 0.9]))
    assert m == pytest.approx({"mIoU": 0.475, "mAcc@0.25": 0.75, "mAcc@0.5": 0.5})
