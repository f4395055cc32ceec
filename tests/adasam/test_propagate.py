"""Propagation: stop rules, human slices, re-propagation, batching, cancel, progress; a tiny
real Predictor for the encoder batch and the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adasam.budget import Deadline
from adasam.errors import ConfigError
from adasam.frame import ModelFrame
from adasam.predictor import Candidate, Predictor
from adasam.propagate import PropagationConfig, VolumeAnnotation, enlarged_box, propagate

D, H, W = 12, 40, 48


def _truth() -> np.ndarray:
    """A disc that grows then shrinks, present on slices 2..9, drifting right."""
    yy, xx = np.mgrid[:H, :W]
    gt = np.zeros((D, H, W), bool)
    for k in range(2, 10):
        r = 3 + 6 * np.sin(np.pi * (k - 1.5) / 9)
        gt[k] = (yy - 20) ** 2 + (xx - 14 - 2 * k) ** 2 < r * r
    return gt


class Scripted:
    """Stands in for Predictor: the 'model' returns the true mask inside the box, with a score
    per slice (slice number written in pixel (0, 0))."""

    cache_size = 16

    def __init__(self, gt: np.ndarray, scores: np.ndarray | None = None) -> None:
        self.gt, self.scores = gt, np.full(len(gt), 0.9) if scores is None else scores
        self.batches: list[list[int]] = []
        self.calls: list[tuple[int, np.ndarray, np.ndarray | None]] = []

    def frame(self, hw: tuple[int, int]) -> ModelFrame:
        return ModelFrame(hw, 64, 16)

    def embed_batch(self, images: list[np.ndarray]) -> int:
        self.batches.append([int(i[0, 0, 0]) for i in images])
        return len(images)

    def segment(self, image, *, box, mask_logits=None, multimask=True) -> list[Candidate]:
        assert multimask is False
        k = int(image[0, 0, 0])
        self.calls.append((k, np.asarray(box), mask_logits))
        x0, y0, x1, y1 = (int(v) for v in box)
        inside = np.zeros((H, W), bool)
        inside[y0 : y1 + 1, x0 : x1 + 1] = True
        return [Candidate(self.gt[k] & inside, float(self.scores[k]), np.full((16, 16), 1.0))]


def _images() -> list[np.ndarray]:
    out = []
    for k in range(D):
        img = np.zeros((H, W, 3), np.uint8)
        img[0, 0] = k
        out.append(img)
    return out


def _start(gt: np.ndarray, k: int = 6) -> VolumeAnnotation:
    ann = VolumeAnnotation(gt.shape)
    ann.accept(k, gt[k])
    return ann


def test_carries_the_mask_until_it_vanishes_both_ways() -> None:
    gt = _truth()
    model = Scripted(gt)
    ann = _start(gt)
    seen = []
    rep = propagate(model, _images(), ann, 6, progress=lambda d, t: seen.append((d, t)))
    assert rep.propagated == [2, 3, 4, 5, 7, 8, 9]
    assert [(d.direction, d.stop, d.stopped_at) for d in rep.directions] == [
        (1, "vanished", 10),
        (-1, "vanished", 1),
    ]
    np.testing.assert_array_equal(ann.masks, gt)
    assert ann.status[6] == "accepted" and ann.status[7] == "propagated"
    assert ann.status[0] == ann.status[11] == "none"
    assert ann.training_slices() == [6]
    assert seen[-1][0] == len(seen) and {t for _, t in seen} == {11}
    # the prompt is the previous mask's box plus the margin
    k, box, _ = model.calls[0]
    assert k == 7
    np.testing.assert_array_equal(box, enlarged_box(gt[6], 5))
    b6 = np.array([*np.flatnonzero(gt[6].any(0))[[0, -1]], *np.flatnonzero(gt[6].any(1))[[0, -1]]])
    np.testing.assert_array_equal(box, [b6[0] - 5, b6[2] - 5, b6[1] + 5, b6[3] + 5])
    assert all(len(b) <= 8 for b in model.batches) and model.batches[0] == [7, 8, 9, 10, 11]


def test_low_score_and_growth_stop_and_human_slices_are_kept() -> None:
    gt = _truth()
    scores = np.full(D, 0.9)
    scores[8] = 0.2
    ann = _start(gt)
    hand = np.zeros((H, W), bool)
    hand[5:9, 5:9] = True
    ann.correct(4, hand)  # a human slice below: never overwritten, the run stops there
    rep = propagate(Scripted(gt, scores), _images(), ann, 6)
    assert [(d.stop, d.stopped_at) for d in rep.directions] == [("low_score", 8), ("human", 4)]
    assert rep.propagated == [5, 7]
    np.testing.assert_array_equal(ann.masks[4], hand)
    assert ann.status[4] == "corrected" and not ann.masks[8].any()
    assert ann.training_slices() == [4, 6]


def test_growth_limit_stops_a_leak() -> None:
    gt = _truth()
    leak = gt.copy()
    leak[8] = True  # the whole slice: a leak
    rep = propagate(
        Scripted(leak), _images(), _start(gt), 6, config=PropagationConfig(box_margin=60)
    )
    assert (rep.directions[0].stop, rep.directions[0].stopped_at) == ("grew", 8)


def test_correcting_a_slice_and_repropagating_redoes_its_side_and_clears_stale_masks() -> None:
    gt = _truth()
    ann = _start(gt)
    propagate(Scripted(gt), _images(), ann, 6)
    assert ann.status[9] == "propagated"
    # a human erases the structure on slice 8: slices 9.. no longer follow from anything
    ann.correct(8, np.zeros((H, W), bool))
    with pytest.raises(ValueError, match="empty mask"):
        propagate(Scripted(gt), _images(), ann, 8)
    small = gt[8] & (np.arange(W) < 30)[None, :]
    ann.correct(8, small)
    rep = propagate(Scripted(gt), _images(), ann, 8)
    assert rep.directions[1].stop == "human" and rep.directions[1].stopped_at == 6
    assert rep.directions[1].propagated == [7]
    assert ann.status[9] == "propagated" and ann.training_slices() == [6, 8]
    # when the carried mask stops early, masks of the earlier run beyond the stop are cleared
    scores = np.full(D, 0.9)
    scores[9] = 0.1
    rep = propagate(Scripted(gt, scores), _images(), ann, 8)
    assert rep.directions[0].stop == "low_score" and ann.status[9] == "none"
    assert not ann.masks[9].any()


def test_cancel_keeps_what_was_done_and_logits_option() -> None:
    gt = _truth()
    ann = _start(gt)
    calls = iter(range(100))
    rep = propagate(Scripted(gt), _images(), ann, 6, cancel=lambda: next(calls) >= 2)
    assert rep.cancelled and rep.propagated == [7, 8] and len(rep.directions) == 1
    model = Scripted(gt)
    propagate(model, _images(), _start(gt), 6, config=PropagationConfig(use_logits=True))
    first, later = model.calls[0][2], model.calls[1][2]
    assert first is not None and first.shape == (16, 16) and first.max() > 0 > first.min()
    np.testing.assert_array_equal(later, np.full((16, 16), 1.0))  # the previous slice's logits


class StepClock:
    """Monotonic seconds that advance by one at every reading."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_the_time_budget_stops_before_the_next_slice_and_keeps_what_was_done() -> None:
    gt = _truth()
    ann = _start(gt)
    before = list(ann.status)
    deadline = Deadline(2, clock=StepClock())  # read at start, then once before each slice
    rep = propagate(Scripted(gt), _images(), ann, 6, deadline=deadline)
    assert rep.timed_out and not rep.cancelled
    assert rep.propagated == [7, 8] and len(rep.directions) == 1, "the run ends, both ways"
    assert rep.directions[0].stop == "time_budget" and rep.directions[0].stopped_at == 9
    assert [ann.status[k] for k in (7, 8)] == ["propagated"] * 2
    assert ann.status[9:] == before[9:] and ann.status[:6] == before[:6]  # nothing half-done
    assert ann.masks[8].any() and not ann.masks[9].any()
    relaxed = propagate(Scripted(gt), _images(), _start(gt), 6, deadline=Deadline(600))
    assert not relaxed.timed_out and len(relaxed.directions) == 2


def test_bad_arguments() -> None:
    gt = _truth()
    ann = VolumeAnnotation(gt.shape)
    with pytest.raises(ValueError, match="accept or correct"):
        propagate(Scripted(gt), _images(), ann, 6)
    with pytest.raises(IndexError):
        ann.accept(D, gt[0])
    with pytest.raises(ConfigError):
        PropagationConfig(min_score=1.0)
    with pytest.raises(ConfigError):
        PropagationConfig(max_growth=1.0)
    ann.accept(6, gt[6])
    with pytest.raises(ValueError, match="not overwritten"):
        ann.set_propagated(6, gt[6], 0.9, np.zeros((16, 16)))


def test_real_predictor_batch_encoding_matches_single_and_fills_the_cache(
    tiny_bundle_dir: Path,
) -> None:
    torch.manual_seed(0)
    pred = Predictor.from_dir(tiny_bundle_dir, cache_size=4)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (50, 60, 3), dtype=np.uint8) for _ in range(3)]
    assert pred.embed_batch(images) == 3 and pred.embed_batch(images) == 0
    batched = [pred.embedding(i) for i in images]
    assert all(hit for _, hit in batched)
    pred.clear_cache()
    for (emb, _), image in zip(batched, images, strict=True):
        single, hit = pred.embedding(image)
        assert not hit
        torch.testing.assert_close(emb, single, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="cache_size"):
        pred.embed_batch(images * 2)
    # a whole run through the real decoder: masks are SAM's, statuses and the report hold
    vol = [rng.integers(0, 255, (50, 60, 3), dtype=np.uint8) for _ in range(6)]
    ann = VolumeAnnotation((6, 50, 60))
    start = np.zeros((50, 60), bool)
    start[15:35, 20:45] = True
    ann.accept(3, start)
    cfg = PropagationConfig(min_score=0.0, min_area=1, max_growth=1e6, batch_size=2)
    rep = propagate(pred, vol, ann, 3, config=cfg)
    assert rep.encoded >= len(rep.propagated)
    for k in rep.propagated:
        assert ann.status[k] == "propagated" and np.isfinite(ann.scores[k])
        assert ann.masks[k].any()
