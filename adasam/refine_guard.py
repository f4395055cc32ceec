"""A refinement click must never silently wreck a mask.

One click should change a mask locally: a positive click adds around it and keeps what was
there, a negative click removes around it and adds nothing new. A SAM that never learned clicks
does something else: a positive click in the middle of a correct muscle mask returned everything
*except* the muscle, a click on a liver returned a dot lattice over the whole image.
:func:`check_refinement` compares the refined mask with the previous one and lists what
collapsed; :func:`refine_checked` runs :meth:`Predictor.refine` and keeps the previous mask when
the check fails, so the caller can say so and offer the other candidates.

:meth:`Predictor.refine` itself stays the raw model (the click protocol in ``evaluate`` measures
the model, not the guard).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from adasam.predictor import Candidate, Click

if TYPE_CHECKING:
    from adasam.predictor import Predictor


@dataclass(frozen=True)
class GuardConfig:
    """When a refinement counts as collapsed (each test alone rejects it)."""

    min_kept: float = field(
        default=0.5,
        metadata={"help": "positive click: at least this share of the previous mask must stay"},
    )
    max_new: float = field(
        default=0.5,
        metadata={"help": "negative click: at most this share of the new mask may be new"},
    )
    max_growth: float = field(
        default=4.0, metadata={"help": "the mask may grow at most this many times in one click"}
    )
    min_shrink: float = field(
        default=0.1, metadata={"help": "…and keep at least this share of its area"}
    )
    min_score: float = field(
        default=0.3,
        metadata={"help": "SAM's predicted IoU below this, after a drop of ≥ score_drop"},
    )
    score_drop: float = field(default=0.3, metadata={"help": "see min_score"})
    max_pieces: int = field(
        default=8,
        metadata={"help": "more connected pieces than this (and than 2 × before): fragmented"},
    )

    def __post_init__(self) -> None:
        for name in ("min_kept", "max_new", "min_shrink", "min_score", "score_drop"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_growth < 1.0 or self.max_pieces < 1:
            raise ValueError("max_growth must be ≥ 1 and max_pieces ≥ 1")


@dataclass(frozen=True)
class GuardVerdict:
    """``ok``: the refinement may replace the previous mask; ``reasons``: what collapsed (one
    sentence each, for the user); ``metrics``: the measured values."""

    ok: bool
    reasons: tuple[str, ...]
    metrics: dict[str, float]


def _pieces(mask: np.ndarray) -> int:
    n, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return int(n) - 1


def _inside(mask: np.ndarray, click: Click) -> bool:
    r, c = round(click.y), round(click.x)
    h, w = mask.shape
    return bool(mask[min(max(r, 0), h - 1), min(max(c, 0), w - 1)])


def check_refinement(
    previous: Candidate, refined: Candidate, click: Click, cfg: GuardConfig | None = None
) -> GuardVerdict:
    """Did ``click`` turn ``previous`` into a collapsed ``refined`` mask? (bool ``(H, W)``
    masks of the same shape; the click in the same pixels.)"""
    cfg = cfg or GuardConfig()
    prev, new = previous.mask.astype(bool), refined.mask.astype(bool)
    if prev.shape != new.shape:
        raise ValueError(f"mask shapes differ: {prev.shape} and {new.shape}")
    a_prev, a_new = int(prev.sum()), int(new.sum())
    both = int((prev & new).sum())
    kept = both / a_prev if a_prev else 1.0
    new_share = (a_new - both) / a_new if a_new else 0.0
    growth = a_new / a_prev if a_prev else float("inf") if a_new else 1.0
    pieces, pieces_before = _pieces(new), _pieces(prev)
    reasons = []
    where = "inside" if click.positive else "outside"
    if _inside(new, click) != click.positive:
        reasons.append(f"the clicked point is not {where} the new mask")
    if click.positive and kept < cfg.min_kept:
        reasons.append(f"an add click dropped {1 - kept:.0%} of the previous mask")
    if not click.positive and new_share > cfg.max_new:
        reasons.append(f"a remove click made {new_share:.0%} of the mask new")
    if a_prev and growth > cfg.max_growth:
        reasons.append(f"the mask grew {growth:.1f}× in one click")
    if a_prev and growth < cfg.min_shrink:
        reasons.append(f"the mask shrank to {growth:.0%} of its area in one click")
    if pieces > max(cfg.max_pieces, 2 * pieces_before):
        reasons.append(f"the mask broke into {pieces} pieces")
    if refined.score < cfg.min_score and refined.score < previous.score - cfg.score_drop:
        reasons.append(f"SAM's own score fell from {previous.score:.2f} to {refined.score:.2f}")
    metrics = {
        "kept": kept,
        "new_share": new_share,
        "growth": growth,
        "pieces": float(pieces),
        "score": refined.score,
        "previous_score": previous.score,
    }
    return GuardVerdict(not reasons, tuple(reasons), metrics)


@dataclass(frozen=True)
class CheckedRefinement:
    """``candidate``: the mask to show (the refined one, or the previous one when rejected);
    ``refined``: what SAM returned; ``verdict``: the check."""

    candidate: Candidate
    refined: Candidate
    verdict: GuardVerdict

    @property
    def accepted(self) -> bool:
        return self.verdict.ok


def refine_checked(
    predictor: Predictor,
    image: np.ndarray,
    clicks: Sequence[Click],
    previous: Candidate,
    box: Sequence[float] | None = None,
    cfg: GuardConfig | None = None,
    refine: Callable[..., Candidate] | None = None,
) -> CheckedRefinement:
    """:meth:`Predictor.refine` with the previous candidate's logits fed back, checked against
    that candidate for the last click (see :func:`check_refinement`).

    ``refine``: what to call instead of ``predictor.refine`` (same arguments: image, clicks,
    ``previous_logits=``, ``box=``), e.g. :func:`adasam.scaling.refine` bound to the predictor."""
    if not clicks:
        raise ValueError("refine_checked needs at least one click")
    refine = refine or predictor.refine
    refined = refine(image, clicks, previous_logits=previous.logits, box=box)
    verdict = check_refinement(previous, refined, clicks[-1], cfg)
    return CheckedRefinement(refined if verdict.ok else previous, refined, verdict)
