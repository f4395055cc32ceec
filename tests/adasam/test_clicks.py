"""The simulated-user click rule, NoC and the protocol driver, on hand-made masks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from adasam.clicks import ClickTrace, next_click, noc, run_click_protocol
from adasam.predictor import Candidate, Click, Predictor


def _mask(hw: tuple[int, int], *boxes: tuple[int, int, int, int]) -> np.ndarray:
    """bool mask with the given (row0, row1, col0, col1) half-open rectangles set."""
    m = np.zeros(hw, bool)
    for r0, r1, c0, c1 in boxes:
        m[r0:r1, c0:c1] = True
    return m


def test_no_click_when_prediction_is_perfect() -> None:
    gt = _mask((30, 30), (5, 15, 10, 20))
    assert next_click(gt.copy(), gt) is None
    assert next_click(np.zeros((8, 8), bool), np.zeros((8, 8), bool)) is None


def test_missed_square_gets_a_positive_click_at_its_centre() -> None:
    gt = _mask((30, 30), (5, 15, 10, 20))  # rows 5..14, cols 10..19
    c = next_click(np.zeros_like(gt), gt)
    # the four centre pixels are 5 px from the square's outside; the first in row-major order
    assert c == Click(14.0, 9.0, True)


def test_larger_false_region_gets_a_negative_click_inside_it() -> None:
    gt = _mask((40, 40), (5, 15, 5, 15))
    pred = _mask((40, 40), (5, 15, 5, 13), (22, 38, 20, 36))  # misses 2 columns, adds a 16² block
    c = next_click(pred, gt)
    assert c is not None and not c.positive
    assert 27 <= c.y <= 30 and 27 <= c.x <= 30
    assert not gt[int(c.y), int(c.x)] and pred[int(c.y), int(c.x)]


def test_larger_missed_region_wins_over_a_small_false_one() -> None:
    gt = _mask((40, 40), (2, 30, 2, 30))
    pred = _mask((40, 40), (2, 30, 2, 10), (34, 37, 34, 37))  # misses a 28x20 block
    c = next_click(pred, gt)
    assert c is not None and c.positive
    assert gt[int(c.y), int(c.x)] and not pred[int(c.y), int(c.x)]


def test_image_border_counts_as_boundary() -> None:
    # a missed strip along the left border: unpadded, the farthest pixel would be column 0
    gt = _mask((20, 40), (0, 20, 0, 10))
    c = next_click(np.zeros_like(gt), gt)
    assert c is not None and c.positive
    assert c.x in (4.0, 5.0)


def test_tie_goes_to_the_false_positives_as_in_ritm() -> None:
    gt = _mask((20, 40), (5, 11, 2, 8))
    pred = _mask((20, 40), (5, 11, 30, 36))  # same-size false block, gt block missed
    c = next_click(pred, gt)
    assert c is not None and not c.positive and c.x >= 30


def test_excluded_pixels_are_not_clicked_again() -> None:
    gt = _mask((30, 30), (5, 15, 10, 20))
    first = next_click(np.zeros_like(gt), gt)
    assert first is not None
    second = next_click(np.zeros_like(gt), gt, exclude=[first])
    assert second is not None and (second.x, second.y) != (first.x, first.y)
    assert gt[int(second.y), int(second.x)]
    single = _mask((5, 5), (2, 3, 2, 3))
    assert next_click(np.zeros_like(single), single, exclude=[Click(2.0, 2.0)]) is None


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="same shape"):
        next_click(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


def test_noc_counts_clicks_to_reach_the_threshold() -> None:
    ious = [0.5, 0.8, 0.86, 0.91]
    assert noc(ious, 0.85) == 2
    assert noc(ious, 0.90) == 3
    assert noc(ious, 0.95) == 20
    assert noc([0.92], 0.9) == 0  # the start already meets it
    assert noc([0.1, 0.2, 0.3, 0.95], 0.9, max_clicks=2) == 2  # beyond the budget does not count
    with pytest.raises(ValueError):
        noc(ious, 0.0)


def test_trace_worse_share_and_held_ious() -> None:
    t = ClickTrace([0.5, 0.7, 0.65, 0.69, 0.9], [Click(0, 0)] * 4, "stop_iou")
    assert t.worse_count == 1  # 0.70 → 0.65; 0.69 → … is not a drop
    assert t.worse_share == pytest.approx(0.25)
    assert t.iou_after(1) == 0.7 and t.iou_after(10) == 0.9
    assert ClickTrace([0.3]).worse_share == 0.0
    assert ClickTrace([0.5, 0.485]).worse_count == 0  # a drop within the 0.02 margin


class _DiskUser:
    """Stand-in predictor: a positive click adds the ground truth within ``r`` px of it, a
    negative one removes everything within ``r`` px; records the logits it was fed back."""

    def __init__(self, gt: np.ndarray, r: float = 6.0) -> None:
        self.gt, self.r = gt, r
        self.fed: list[np.ndarray | None] = []
        rows, cols = np.mgrid[: gt.shape[0], : gt.shape[1]]
        self._rc = rows, cols

    def _cand(self, mask: np.ndarray) -> Candidate:
        return Candidate(mask, 1.0, np.where(mask, 1.0, -1.0).astype(np.float32))

    def segment(self, image: np.ndarray, *, box: Sequence[float], multimask: bool) -> list:
        x0, y0, x1, y1 = (int(v) for v in box)
        m = np.zeros(self.gt.shape, bool)
        m[y0 + 2 : y1 - 1, x0 + 2 : x1 - 1] = True  # the box, shrunk
        return [self._cand(m & self.gt)]

    def refine(self, image, clicks, previous_logits=None, box=None) -> Candidate:
        self.fed.append(previous_logits)
        mask = np.zeros(self.gt.shape, bool) if previous_logits is None else previous_logits > 0
        c = clicks[-1]
        near = (self._rc[0] - c.y) ** 2 + (self._rc[1] - c.x) ** 2 <= self.r**2
        mask = (mask | (near & self.gt)) if c.positive else (mask & ~near)
        return self._cand(mask)


def test_protocol_from_box_feeds_logits_back_and_reaches_target() -> None:
    gt = _mask((40, 50), (5, 30, 8, 40))
    user = _DiskUser(gt)
    image = np.zeros((40, 50, 3), np.uint8)
    trace = run_click_protocol(user, image, gt, box=(8, 5, 39, 29), max_clicks=20)  # type: ignore[arg-type]
    assert len(trace.ious) == len(trace.clicks) + 1
    assert trace.ious[0] < 1.0 and trace.ious[-1] == 1.0 and trace.stopped == "perfect"
    assert all(c.positive for c in trace.clicks)
    assert np.all(np.diff(trace.ious) >= 0) and trace.worse_share == 0.0
    # every refinement got the previous step's logits
    assert user.fed[0] is not None and len(user.fed) == len(trace.clicks)
    assert noc(trace.ious, 0.9) <= len(trace.clicks)


def test_protocol_stops_at_stop_iou_and_respects_max_clicks() -> None:
    gt = _mask((40, 50), (5, 30, 8, 40))
    image = np.zeros((40, 50, 3), np.uint8)
    t = run_click_protocol(_DiskUser(gt), image, gt, max_clicks=20, stop_iou=0.5)  # type: ignore[arg-type]
    assert t.ious[0] == 0.0 and t.ious[-1] >= 0.5 and t.stopped == "stop_iou"
    assert all(v < 0.5 for v in t.ious[:-1])
    t2 = run_click_protocol(_DiskUser(gt, r=1.0), image, gt, max_clicks=3)  # type: ignore[arg-type]
    assert len(t2.clicks) == 3 and t2.stopped == ""


def test_protocol_from_a_start_candidate_with_false_region_clicks_negative() -> None:
    gt = _mask((40, 50), (5, 20, 5, 20))
    start = np.zeros_like(gt)
    start[5:20, 5:40] = True  # twice too wide
    user = _DiskUser(gt, r=8.0)
    trace = run_click_protocol(  # type: ignore[arg-type]
        user, np.zeros((40, 50, 3), np.uint8), gt, start=user._cand(start), max_clicks=5
    )
    assert not trace.clicks[0].positive and trace.ious[1] > trace.ious[0]


def test_protocol_runs_on_a_real_predictor(tiny_bundle_dir: Path) -> None:
    p = Predictor.from_dir(tiny_bundle_dir)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    gt = _mask((48, 64), (10, 30, 15, 45))
    trace = run_click_protocol(p, image, gt, box=(15, 10, 44, 29), max_clicks=3)
    assert 1 <= len(trace.clicks) <= 3 and len(trace.ious) == len(trace.clicks) + 1
    assert all(0 <= c.x < 64 and 0 <= c.y < 48 for c in trace.clicks)
    with pytest.raises(ValueError, match="does not match"):
        run_click_protocol(p, image, gt[:-1], box=(15, 10, 44, 29))
