"""Carry an accepted mask through a volume, slice by slice, with SAM box prompts.

The rule is LiteMedSAM's own 3D inference: starting from an accepted (or corrected) mask on slice
``start``, each next slice up and then down the volume is prompted with the XYXY box of the
previous slice's mask, enlarged by ``box_margin`` pixels on every side (and, optionally, with the
previous slice's low-resolution logits as a dense mask prompt), and single-mask output. A
direction stops when

* the predicted mask vanishes (fewer than ``min_area`` pixels),
* SAM's predicted IoU falls below ``min_score``,
* the mask grows more than ``max_growth`` times from one slice to the next (a leak), or
* it reaches the edge of the volume or a slice a human accepted or corrected (never
  overwritten).

Each propagated slice is marked ``"propagated"`` in the :class:`VolumeAnnotation` until a human
accepts or corrects it; correcting a slice and propagating from it again redoes its neighbours
up to the next human slice. Slices past a stop that still hold masks of an earlier run are
cleared (they were carried from a mask that no longer holds).

The encoder runs in batches of ``batch_size`` slices ahead of the propagation front
(:meth:`adasam.predictor.Predictor.embed_batch`); ``progress(done, total)`` is called after every
slice, and ``cancel()`` and the request's :class:`~adasam.budget.Deadline` are checked before
every slice (what was done is kept; stop reasons ``cancelled`` and ``time_budget``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from adasam.budget import Deadline
from adasam.errors import ConfigError
from adasam.prompts import mask_to_box

SliceStatus = Literal["none", "propagated", "accepted", "corrected"]
STATUSES: tuple[str, ...] = ("none", "propagated", "accepted", "corrected")
HUMAN: frozenset[str] = frozenset({"accepted", "corrected"})
StopReason = Literal["edge", "human", "vanished", "low_score", "grew", "cancelled", "time_budget"]
INTERRUPTED: frozenset[str] = frozenset({"cancelled", "time_budget"})
"""Stops that end the whole run (not only one direction)."""


class _Predictor(Protocol):  # the part of adasam.predictor.Predictor used here
    cache_size: int

    def embed_batch(self, images: Sequence[np.ndarray]) -> int: ...

    def segment(self, image: np.ndarray, **kwargs: object) -> list: ...

    def frame(self, image_hw: tuple[int, int]) -> object: ...


@dataclass(frozen=True)
class PropagationConfig:
    """How a mask is carried from slice to slice (validated on construction)."""

    box_margin: int = field(
        default=5, metadata={"help": "pixels added on every side of the previous mask's box"}
    )
    use_logits: bool = field(
        default=False,
        metadata={"help": "also give SAM the previous slice's low-res logits as mask prompt"},
    )
    min_score: float = field(
        default=0.5,
        metadata={"help": "stop when SAM's predicted IoU is below this, in [0, 1); 0: never"},
    )
    min_area: int = field(
        default=10, metadata={"help": "stop when the mask has fewer pixels (it vanished), ≥ 1"}
    )
    max_growth: float = field(
        default=3.0, metadata={"help": "stop when the area grows more than this factor, > 1"}
    )
    batch_size: int = field(default=8, metadata={"help": "slices encoded per encoder forward, ≥ 1"})

    def __post_init__(self) -> None:
        if self.box_margin < 0:
            raise ConfigError(f"box_margin must be ≥ 0 pixels, got {self.box_margin}")
        if not 0.0 <= self.min_score < 1.0:
            raise ConfigError(f"min_score must be in [0, 1), got {self.min_score}")
        if self.min_area < 1:
            raise ConfigError(f"min_area must be ≥ 1 pixel, got {self.min_area}")
        if not self.max_growth > 1.0:
            raise ConfigError(f"max_growth must be > 1, got {self.max_growth}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be ≥ 1, got {self.batch_size}")


class VolumeAnnotation:
    """One structure's masks over a volume and each slice's status.

    Attributes:
        masks: bool ``(D, H, W)``.
        status: ``D`` statuses: ``"none"`` (no mask yet), ``"propagated"`` (carried by SAM, not
            checked by a human), ``"accepted"`` (a human kept it as it is), ``"corrected"``
            (a human edited it).
        scores: float64 ``(D,)``: SAM's predicted IoU of a propagated mask, NaN otherwise.
        logits: slice → float32 low-res logits of its propagated mask.
    """

    def __init__(self, shape: tuple[int, int, int]) -> None:
        d, h, w = (int(s) for s in shape)
        if min(d, h, w) < 1:
            raise ValueError(f"shape must be (D, H, W) with D, H, W ≥ 1, got {shape}")
        self.masks = np.zeros((d, h, w), dtype=bool)
        self.status: list[str] = ["none"] * d
        self.scores = np.full(d, np.nan)
        self.logits: dict[int, np.ndarray] = {}

    @property
    def depth(self) -> int:
        return int(self.masks.shape[0])

    def _check(self, k: int, mask: np.ndarray | None) -> None:
        if not 0 <= int(k) < self.depth:
            raise IndexError(f"slice {k} is outside 0..{self.depth - 1}")
        if mask is not None and np.asarray(mask).shape != self.masks.shape[1:]:
            raise ValueError(f"mask shape {np.asarray(mask).shape} != {self.masks.shape[1:]}")

    def accept(self, k: int, mask: np.ndarray | None = None) -> None:
        """A human keeps slice ``k``'s mask (or sets ``mask``, unchanged from the model's)."""
        self._check(k, mask)
        if mask is not None:
            self.masks[k] = np.asarray(mask, dtype=bool)
        self.status[k] = "accepted"
        self.scores[k] = np.nan

    def correct(self, k: int, mask: np.ndarray) -> None:
        """A human replaces slice ``k``'s mask with an edited one."""
        self._check(k, mask)
        self.masks[k] = np.asarray(mask, dtype=bool)
        self.status[k] = "corrected"
        self.scores[k] = np.nan
        self.logits.pop(k, None)

    def clear(self, k: int) -> None:
        self._check(k, None)
        self.masks[k] = False
        self.status[k] = "none"
        self.scores[k] = np.nan
        self.logits.pop(k, None)

    def set_propagated(self, k: int, mask: np.ndarray, score: float, logits: np.ndarray) -> None:
        self._check(k, mask)
        if self.status[k] in HUMAN:
            raise ValueError(f"slice {k} was {self.status[k]} by a human; it is not overwritten")
        self.masks[k] = mask
        self.status[k] = "propagated"
        self.scores[k] = float(score)
        self.logits[k] = logits

    def training_slices(self) -> list[int]:
        """Slices a human accepted or corrected: the only ones training may use."""
        return [k for k, s in enumerate(self.status) if s in HUMAN]

    def counts(self) -> dict[str, int]:
        return {s: self.status.count(s) for s in STATUSES}


@dataclass
class DirectionReport:
    """One direction of a run: slices visited, the stop reason and the slice it stopped at."""

    direction: int
    propagated: list[int] = field(default_factory=list)
    stop: StopReason = "edge"
    stopped_at: int | None = None


@dataclass
class PropagationReport:
    start: int
    directions: list[DirectionReport]
    encoded: int
    seconds: float
    cancelled: bool

    @property
    def propagated(self) -> list[int]:
        return sorted(k for d in self.directions for k in d.propagated)

    @property
    def timed_out(self) -> bool:
        """Whether the request's time budget stopped the run."""
        return any(d.stop == "time_budget" for d in self.directions)


def enlarged_box(mask: np.ndarray, margin: int) -> np.ndarray | None:
    """XYXY box (inclusive pixels) of ``mask`` grown by ``margin`` and clipped to the image;
    None for an empty mask."""
    box = mask_to_box(mask)
    if box is None:
        return None
    h, w = mask.shape
    return np.array(
        [
            max(0.0, box[0] - margin),
            max(0.0, box[1] - margin),
            min(w - 1.0, box[2] + margin),
            min(h - 1.0, box[3] + margin),
        ]
    )


def mask_prompt_logits(predictor: _Predictor, mask: np.ndarray, gain: float = 20.0) -> np.ndarray:
    """A binary ``(H, W)`` mask as low-res mask-prompt logits: ``gain · (occupancy − 0.5)``
    in the decoder's frame (SAM wants logits, not a 0/1 mask)."""
    frame = predictor.frame(mask.shape)
    occupancy = frame.mask_to_lowres(mask)  # type: ignore[attr-defined]
    return (gain * (occupancy - 0.5)).astype(np.float32)


def _reach(annotation: VolumeAnnotation, start: int, direction: int) -> list[int]:
    """Slices from ``start`` (exclusive) towards ``direction`` up to the next human slice."""
    out = []
    k = start + direction
    while 0 <= k < annotation.depth and annotation.status[k] not in HUMAN:
        out.append(k)
        k += direction
    return out


class _Run:
    def __init__(
        self, predictor, images, annotation, config, progress, cancel, total, deadline=None
    ) -> None:
        self.predictor, self.images, self.ann, self.cfg = predictor, images, annotation, config
        self.progress, self.cancel, self.total = progress, cancel, total
        self.deadline: Deadline | None = deadline
        self.done = 0
        self.encoded = 0
        self._cache: dict[int, np.ndarray] = {}

    def image(self, k: int) -> np.ndarray:
        if k not in self._cache:
            self._cache[k] = self.images(k) if callable(self.images) else self.images[k]
        return self._cache[k]

    def encode_ahead(self, ahead: list[int]) -> None:
        batch = ahead[: max(1, min(self.cfg.batch_size, self.predictor.cache_size))]
        self.encoded += self.predictor.embed_batch([self.image(k) for k in batch])
        for k in list(self._cache):
            if k not in batch:
                del self._cache[k]

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)

    def direction(self, start: int, direction: int) -> DirectionReport:
        report = DirectionReport(direction)
        todo = _reach(self.ann, start, direction)
        prev = self.ann.masks[start].copy()
        logits = self.ann.logits.get(start)
        if self.cfg.use_logits and logits is None:
            logits = mask_prompt_logits(self.predictor, prev)
        encoded_until = -1
        for i, k in enumerate(todo):
            if self.cancel is not None and self.cancel():
                report.stop, report.stopped_at = "cancelled", k
                return report
            if self.deadline is not None and self.deadline.expired:
                report.stop, report.stopped_at = "time_budget", k
                return report
            if i > encoded_until:
                self.encode_ahead(todo[i:])
                encoded_until = i + max(1, min(self.cfg.batch_size, self.predictor.cache_size)) - 1
            stop = self.step(k, prev, logits)
            self.tick()
            if stop is not None:
                report.stop, report.stopped_at = stop, k
                for stale in todo[i:]:
                    if self.ann.status[stale] == "propagated":
                        self.ann.clear(stale)
                return report
            report.propagated.append(k)
            prev, logits = self.ann.masks[k], self.ann.logits[k]
        k_end = start + direction * (len(todo) + 1)
        if 0 <= k_end < self.ann.depth:
            report.stop, report.stopped_at = "human", k_end
        return report

    def step(self, k: int, prev: np.ndarray, logits: np.ndarray | None) -> StopReason | None:
        box = enlarged_box(prev, self.cfg.box_margin)
        if box is None:
            return "vanished"
        cand = self.predictor.segment(
            self.image(k),
            box=box,
            mask_logits=logits if self.cfg.use_logits else None,
            multimask=False,
        )[0]
        area = int(cand.mask.sum())
        if area < self.cfg.min_area:
            return "vanished"
        if self.cfg.min_score > 0 and cand.score < self.cfg.min_score:
            return "low_score"
        if area > self.cfg.max_growth * max(1, int(prev.sum())):
            return "grew"
        self.ann.set_propagated(k, cand.mask, cand.score, cand.logits)
        return None


def propagate(
    predictor: _Predictor,
    images: Sequence[np.ndarray] | Callable[[int], np.ndarray],
    annotation: VolumeAnnotation,
    start: int,
    *,
    config: PropagationConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    deadline: Deadline | None = None,
) -> PropagationReport:
    """Propagate slice ``start``'s mask up (``start + 1``, ...) and then down the volume.

    Args:
        predictor: a :class:`adasam.predictor.Predictor` (``embed_batch``, ``segment``).
        images: uint8 ``(H, W, 3)`` display image of each slice (what the model sees), as a
            sequence or a function of the slice index (called once per slice and batch).
        annotation: the structure's masks; slice ``start`` must be accepted or corrected and
            hold a non-empty mask. Updated in place.
        start: the slice to carry from.
        config: :class:`PropagationConfig` (defaults when None).
        progress: called as ``progress(done, total)`` after each slice (``total``: slices
            within reach, up to the next human slices or the edges).
        cancel: checked before each slice; when it returns True the run stops, keeping what
            it did.
        deadline: the request's time budget, checked before each slice like ``cancel`` (stop
            reason ``time_budget``), so one propagation cannot hold the model queue for long.

    Returns:
        A :class:`PropagationReport` (per direction: slices propagated and why it stopped).

    Raises:
        ValueError: ``start`` is not a human slice, or its mask is empty.
    """
    cfg = config or PropagationConfig()
    annotation._check(start, None)
    if annotation.status[start] not in HUMAN:
        raise ValueError(
            f"slice {start} is {annotation.status[start]!r}: accept or correct it before "
            "propagating from it"
        )
    if not annotation.masks[start].any():
        raise ValueError(f"slice {start} has an empty mask: nothing to propagate")
    total = len(_reach(annotation, start, 1)) + len(_reach(annotation, start, -1))
    t0 = time.perf_counter()
    run = _Run(predictor, images, annotation, cfg, progress, cancel, total, deadline)
    reports = [run.direction(start, 1)]
    if reports[0].stop not in INTERRUPTED:
        reports.append(run.direction(start, -1))
    return PropagationReport(
        start=start,
        directions=reports,
        encoded=run.encoded,
        seconds=time.perf_counter() - t0,
        cancelled=any(r.stop == "cancelled" for r in reports),
    )
