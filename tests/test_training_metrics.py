"""R1@m and mIoU on hand-made spans (FACTS.md conventions: IoU >= m; clip to [0, duration])."""

import numpy as np
import pytest

from cmagrounding.training.metrics import CONVENTION, GroundingMetrics, compute_metrics, temporal_iou


@pytest.mark.parametrize(
    "pred, gt, iou",
    [
        ((2.0, 6.0), (2.0, 6.0), 1.0),  # identical
        ((0.0, 2.0), (5.0, 9.0), 0.0),  # disjoint
        ((2.0, 4.0), (0.0, 10.0), 0.2),  # nested: prediction inside the ground truth
        ((0.0, 10.0), (2.0, 4.0), 0.2),  # nested: ground truth inside the prediction
        ((0.0, 5.0), (5.0, 10.0), 0.0),  # touching at one point
        ((0.0, 6.0), (4.0, 10.0), 0.2),  # partial overlap: 2 / 10
        ((6.0, 0.0), (4.0, 10.0), 0.2),  # a reversed row is reordered
        ((3.0, 3.0), (3.0, 3.0), 1.0),  # the same point
        ((3.0, 3.0), (0.0, 10.0), 0.0),  # a point inside a span has no extent
    ],
)
def test_temporal_iou_hand_made(pred, gt, iou):
    assert temporal_iou(np.array([pred]), np.array([gt]))[0] == pytest.approx(iou, abs=1e-12)


def test_predictions_past_the_duration_are_clipped():
    durations = np.array([10.0, 10.0, 20.0])
    pred = np.array([[8.0, 15.0], [-3.0, 4.0], [25.0, 30.0]])  # past the end, before 0, wholly after
    gt = np.array([[8.0, 10.0], [0.0, 4.0], [18.0, 20.0]])
    m = compute_metrics(pred, gt, durations)
    # [8, 15] -> [8, 10] == gt; [-3, 4] -> [0, 4] == gt; [25, 30] -> [20, 20], a point: IoU 0
    assert m.recall[0.5] == pytest.approx(2 / 3)
    assert m.miou == pytest.approx(2 / 3)
    unclipped = temporal_iou(pred[:1], gt[:1])[0]
    assert unclipped == pytest.approx(2 / 7)  # what the score would be without the clipping


def test_ground_truth_past_the_duration_is_clipped():
    m = compute_metrics(np.array([[5.0, 10.0]]), np.array([[5.0, 12.0]]), np.array([10.0]))
    assert m.miou == pytest.approx(1.0)


def test_threshold_is_inclusive_and_recall_counts_fractions():
    # IoUs: 1.0, 0.5 (exactly), 0.2, 0.0
    pred = np.array([[0.0, 1.0], [0.0, 0.5], [0.2, 0.4], [0.0, 0.1]])
    gt = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.5, 1.0]])
    m = compute_metrics(pred, gt)  # normalized spans: duration 1
    assert m.recall == {0.1: 0.75, 0.3: 0.5, 0.5: 0.5, 0.7: 0.25}
    assert m.miou == pytest.approx((1.0 + 0.5 + 0.2 + 0.0) / 4)
    assert m.count == 4


def test_result_states_its_convention_and_round_trips():
    m = compute_metrics(np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]]))
    d = m.to_dict()
    assert d["convention"] == CONVENTION and "IoU >= m" in d["convention"] and "clipped" in d["convention"]
    assert set(d) == {"R1@0.1", "R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "count", "convention"}
    assert GroundingMetrics.from_dict(d).to_dict() == d
    table = m.table({"R1@0.5": 57.56}, title="x")
    assert "100.00" in table and "57.56" in table and "IoU >= m" in table


def test_shape_errors():
    with pytest.raises(ValueError):
        temporal_iou(np.zeros((2, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError):
        compute_metrics(np.zeros((2, 2)), np.zeros((2, 2)), np.ones(3))
