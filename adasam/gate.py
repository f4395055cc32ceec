"""The gate: a candidate version replaces the active one only if it is not worse on held-out
corrections.

A fixed share of the corrected **cases** (slices) is held out, chosen by a seeded hash of the
case id, so the choice never changes as corrections arrive and no held-out case is ever trained
on. Both versions are scored on every held-out correction by the production path: the
CAM-prompted proposal (Dice of the best-scored candidate with the final mask; an empty mask
when the structure is not found) and the simulated-user click protocol from that proposal
(:mod:`adasam.clicks`: NoC@85, NoC@90, up to ``clicks`` clicks).

"Not worse beyond noise" is decided on the paired per-case differences (candidate − active):
the candidate is refused when its mean Dice is lower by more than
``max(dice_tolerance, se_factor × standard error)``, or its mean NoC@90 higher by more than
``max(noc_tolerance, se_factor × standard error)``, or when fewer than ``min_cases`` held-out
corrections exist (no evidence is not evidence of "not worse").
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from adasam.errors import ConfigError
from adasam.finetune import CorrectedCase


@dataclass(frozen=True)
class GateConfig:
    """How candidates are judged."""

    heldout_share: float = field(
        default=0.2, metadata={"help": "share of corrected cases held out (never trained on)"}
    )
    heldout_seed: int = field(default=0, metadata={"help": "seed of the held-out choice"})
    min_cases: int = field(default=2, metadata={"help": "fewest held-out corrections to judge"})
    dice_tolerance: float = field(default=0.01, metadata={"help": "mean Dice drop allowed"})
    noc_tolerance: float = field(default=0.5, metadata={"help": "mean NoC@90 rise allowed"})
    se_factor: float = field(default=2.0, metadata={"help": "noise = this × standard error"})
    clicks: int = field(default=20, metadata={"help": "clicks of the protocol (NoC cap)"})

    def __post_init__(self) -> None:
        if not 0.0 < self.heldout_share < 1.0:
            raise ConfigError(f"heldout_share must be in (0, 1), got {self.heldout_share}")
        if self.min_cases < 1 or self.clicks < 1:
            raise ConfigError("min_cases and clicks must be ≥ 1")
        if min(self.dice_tolerance, self.noc_tolerance, self.se_factor) < 0:
            raise ConfigError("tolerances and se_factor must be ≥ 0")


def is_heldout(case: str, share: float, seed: int) -> bool:
    """Whether the case (slice id) is held out: a seeded hash, fixed for ever."""
    digest = hashlib.sha256(f"adasam-gate:{seed}:{case}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def split_heldout(
    cases: Sequence[CorrectedCase], cfg: GateConfig
) -> tuple[list[CorrectedCase], list[CorrectedCase]]:
    """(trainable, held out) by case."""
    train, held = [], []
    for c in cases:
        (held if is_heldout(c.case, cfg.heldout_share, cfg.heldout_seed) else train).append(c)
    return train, held


@dataclass(frozen=True)
class CaseScore:
    """One held-out correction scored: proposal Dice, NoC@85, NoC@90 and the IoU trace."""

    correction_id: int
    dice: float
    noc85: int
    noc90: int
    ious: tuple[float, ...]


def score_cases(predictor: Any, cases: Sequence[CorrectedCase], clicks: int) -> list[CaseScore]:
    """Score ``predictor`` (an :class:`adasam.predictor.Predictor`) on the held-out cases."""
    from adasam.clicks import noc, run_click_protocol
    from adasam.training.metrics import dice

    out = []
    for c in cases:
        result = predictor.predict(c.image, [c.structure]).structures[0]
        start = result.candidates[0] if result.found and result.candidates else None
        proposal = start.mask if start is not None else np.zeros_like(c.mask)
        trace = run_click_protocol(
            predictor, c.image, c.mask, start=start, max_clicks=clicks, stop_iou=0.9
        )
        out.append(
            CaseScore(
                c.correction_id,
                dice(proposal, c.mask),
                noc(trace.ious, 0.85, clicks),
                noc(trace.ious, 0.9, clicks),
                tuple(round(v, 4) for v in trace.ious),
            )
        )
    return out


def summary(scores: Sequence[CaseScore]) -> dict[str, float | int]:
    """Means of the scores (JSON-ready)."""
    if not scores:
        return {"cases": 0}
    return {
        "cases": len(scores),
        "dice": round(float(np.mean([s.dice for s in scores])), 4),
        "noc85": round(float(np.mean([s.noc85 for s in scores])), 3),
        "noc90": round(float(np.mean([s.noc90 for s in scores])), 3),
    }


@dataclass(frozen=True)
class Verdict:
    """The gate's decision, its reason and the figures behind it."""

    activate: bool
    reason: str
    candidate: dict[str, float | int]
    active: dict[str, float | int]
    delta_dice: float | None = None
    delta_noc90: float | None = None
    dice_margin: float | None = None
    noc_margin: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(values.mean()), se


def judge(candidate: Sequence[CaseScore], active: Sequence[CaseScore], cfg: GateConfig) -> Verdict:
    """Activate the candidate only if it is not worse than the active version beyond noise."""
    if [c.correction_id for c in candidate] != [a.correction_id for a in active]:
        raise ValueError("candidate and active must be scored on the same held-out cases")
    cand, act = summary(candidate), summary(active)
    if len(candidate) < cfg.min_cases:
        return Verdict(
            False,
            f"only {len(candidate)} held-out correction(s), {cfg.min_cases} needed to judge; "
            "kept inactive",
            cand,
            act,
        )
    d_dice = np.array([c.dice - a.dice for c, a in zip(candidate, active, strict=True)])
    d_noc = np.array([c.noc90 - a.noc90 for c, a in zip(candidate, active, strict=True)], float)
    mean_dice, se_dice = _mean_se(d_dice)
    mean_noc, se_noc = _mean_se(d_noc)
    dice_margin = max(cfg.dice_tolerance, cfg.se_factor * se_dice)
    noc_margin = max(cfg.noc_tolerance, cfg.se_factor * se_noc)
    figures = dict(
        delta_dice=round(mean_dice, 4),
        delta_noc90=round(mean_noc, 3),
        dice_margin=round(dice_margin, 4),
        noc_margin=round(noc_margin, 3),
    )
    if mean_dice < -dice_margin:
        reason = (
            f"worse: proposal Dice {mean_dice:+.3f} on {len(candidate)} held-out corrections "
            f"(allowed −{dice_margin:.3f})"
        )
        return Verdict(False, reason, cand, act, **figures)
    if mean_noc > noc_margin:
        reason = (
            f"worse: NoC@90 {mean_noc:+.2f} clicks on {len(candidate)} held-out corrections "
            f"(allowed +{noc_margin:.2f})"
        )
        return Verdict(False, reason, cand, act, **figures)
    reason = (
        f"not worse: Dice {mean_dice:+.3f} (allowed −{dice_margin:.3f}), NoC@90 "
        f"{mean_noc:+.2f} (allowed +{noc_margin:.2f}) on {len(candidate)} held-out corrections"
    )
    return Verdict(True, reason, cand, act, **figures)
