"""The standard simulated-user click protocol (RITM / SAM evaluation) and its metrics.

The simulated user looks at the current mask and the ground truth, finds the two error regions
(false negatives: missed ground truth; false positives: mask outside it), and clicks at the
interior point farthest from the boundary of the worse one: a positive click in a missed region,
a negative click in a false one. "Farthest from the boundary" is the Euclidean distance transform
of the region padded by one pixel of background, so the image border counts as boundary (a click
never lands on the very edge of the image just because the region touches it).

:func:`run_click_protocol` drives a :class:`~adasam.predictor.Predictor` with that user: start from
a box prediction or a given candidate, then up to ``max_clicks`` clicks, each refining with all
clicks so far and the previous low-resolution logits fed back as the mask prompt (as the studio
does). :func:`noc` turns the IoU trace into NoC@k ("number of clicks to reach IoU k").

Conventions: masks are bool ``(H, W)``; clicks are :class:`~adasam.predictor.Click` in original
pixels with ``x`` the column and ``y`` the row of the chosen pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from adasam.predictor import Candidate, Click
from adasam.training.metrics import iou as mask_iou

if TYPE_CHECKING:
    from adasam.predictor import Predictor

WORSE_MARGIN = 0.02
"""A click "made IoU worse" when IoU dropped by more than this."""


def padded_distance(region: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance of every pixel of ``region`` to the nearest pixel outside it,
    the image border counting as outside; float32 ``(H, W)``, 0 outside the region."""
    padded = np.pad(region.astype(np.uint8), 1, mode="constant", constant_values=0)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist[1:-1, 1:-1]


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = np.asarray(pred), np.asarray(gt)
    if p.ndim != 2 or p.shape != g.shape:
        raise ValueError(
            f"pred and gt must be (H, W) masks of the same shape, got {p.shape} and {g.shape}"
        )
    return p.astype(bool), g.astype(bool)


def next_click(pred: np.ndarray, gt: np.ndarray, *, exclude: Sequence[Click] = ()) -> Click | None:
    """The simulated user's next click on ``pred`` (bool ``(H, W)``) given ``gt`` (same shape).

    Distance transforms of the false-negative (``gt & ~pred``) and false-positive
    (``pred & ~gt``) regions, each padded so the image border counts as boundary; the click goes
    to the maximum of the larger one (the first such pixel in row-major order), positive when the
    false-negative maximum is larger (RITM: a tie goes to the false positives). Pixels of
    ``exclude`` (earlier clicks, rounded to the pixel) are not clicked again.

    Returns:
        The click, or ``None`` when there is nothing left to correct (``pred == gt``, or every
        error pixel already clicked).
    """
    p, g = _check_pair(pred, gt)
    fn_dt = padded_distance(g & ~p)
    fp_dt = padded_distance(p & ~g)
    for c in exclude:
        r, col = round(c.y), round(c.x)
        if 0 <= r < p.shape[0] and 0 <= col < p.shape[1]:
            fn_dt[r, col] = fp_dt[r, col] = 0.0
    fn_max, fp_max = float(fn_dt.max()), float(fp_dt.max())
    if fn_max <= 0.0 and fp_max <= 0.0:
        return None
    positive = fn_max > fp_max
    dt = fn_dt if positive else fp_dt
    row, col = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return Click(float(col), float(row), positive)


@dataclass(frozen=True)
class ClickTrace:
    """One run of the click protocol on one (image, structure).

    Attributes:
        ious: IoU with the ground truth after 0, 1, …, k clicks (``ious[0]`` is the start:
            the box prediction, the given candidate, or an empty mask). ``len(ious) == k + 1``.
        clicks: the k clicks, in order.
        stopped: why the run ended before ``max_clicks``: ``"stop_iou"`` (target reached),
            ``"perfect"`` (no error pixel left to click), or ``""`` (all clicks used).
    """

    ious: list[float]
    clicks: list[Click] = field(default_factory=list)
    stopped: str = ""

    @property
    def worse_count(self) -> int:
        """Clicks after which IoU dropped by more than :data:`WORSE_MARGIN`."""
        return sum(
            1 for a, b in zip(self.ious[:-1], self.ious[1:], strict=True) if b < a - WORSE_MARGIN
        )

    @property
    def worse_share(self) -> float:
        """Share of the clicks that made IoU worse by more than 0.02 (0.0 with no clicks); pool
        several traces with ``sum(worse_count) / sum(len(clicks))`` instead of averaging this."""
        return self.worse_count / len(self.clicks) if self.clicks else 0.0

    def iou_after(self, k: int) -> float:
        """IoU after ``k`` clicks. A run that stopped early (target reached or nothing left to
        correct: the user would stop there) keeps its last IoU for later ``k``."""
        if k < 0:
            raise ValueError(f"k must be ≥ 0, got {k}")
        return self.ious[min(k, len(self.ious) - 1)]


def noc(ious: Sequence[float], threshold: float, max_clicks: int = 20) -> int:
    """NoC@threshold: the number of clicks after which IoU first reaches ``threshold``.

    ``ious[k]`` is the IoU after ``k`` clicks (``ious[0]`` the start, so a start that already
    meets the threshold gives 0). Never reached within ``max_clicks`` clicks → ``max_clicks``.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be ≥ 1, got {max_clicks}")
    for k, v in enumerate(ious[: max_clicks + 1]):
        if v >= threshold:
            return k
    return max_clicks


def run_click_protocol(
    predictor: Predictor,
    image: np.ndarray,
    gt: np.ndarray,
    *,
    box: Sequence[float] | None = None,
    start: Candidate | None = None,
    max_clicks: int = 20,
    stop_iou: float | None = None,
) -> ClickTrace:
    """Run the simulated user on one structure of one uint8 ``(H, W, 3)`` image.

    Args:
        predictor: the model (its image embedding is computed once and cached).
        image: the slice as the predictor takes it.
        gt: bool ``(H, W)`` ground truth.
        box: XYXY box (original pixels). Without ``start`` the run starts from SAM's best-scored
            candidate for the box (what the studio shows for a drawn box, and the GT-box oracle
            of ``evaluate``); the box also stays a prompt in every refinement (as in the
            studio).
        start: the mask to start from (e.g. the CAM-prompted candidate); its logits are fed
            back with the first click. Without ``box`` and ``start`` the run starts from an
            empty mask (IoU 0) and the first click goes inside the structure.
        max_clicks: at most this many clicks (≥ 1).
        stop_iou: stop as soon as IoU reaches this (saves time; later IoUs are then held, see
            :meth:`ClickTrace.iou_after`).

    Returns:
        The :class:`ClickTrace`.
    """
    gt = np.asarray(gt).astype(bool)
    if gt.shape != tuple(image.shape[:2]):
        raise ValueError(f"gt shape {gt.shape} does not match the image {image.shape[:2]}")
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be ≥ 1, got {max_clicks}")
    if start is None and box is not None:
        start = predictor.segment(image, box=box, multimask=True)[0]
    mask = np.zeros_like(gt) if start is None else start.mask
    logits = None if start is None else start.logits
    ious = [mask_iou(mask, gt)]
    clicks: list[Click] = []
    stopped = ""
    while len(clicks) < max_clicks:
        if stop_iou is not None and ious[-1] >= stop_iou:
            stopped = "stop_iou"
            break
        c = next_click(mask, gt, exclude=clicks)
        if c is None:
            stopped = "perfect"
            break
        clicks.append(c)
        refined = predictor.refine(image, clicks, previous_logits=logits, box=box)
        mask, logits = refined.mask, refined.logits
        ious.append(mask_iou(mask, gt))
    return ClickTrace(ious, clicks, stopped)
