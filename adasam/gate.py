"""The gate: a candidate version replaces the active one only when the held-out corrections show
that it is not worse (a non-inferiority decision).

A fixed share of the corrected **cases** (slices) is held out, chosen by a seeded hash of the
case id, so the choice never changes as corrections arrive and no held-out case is ever trained
on. Both versions are scored on every held-out correction by the production path: the
CAM-prompted proposal (Dice of the best-scored candidate with the final mask; an empty mask
when the structure is not found) and the simulated-user click protocol from that proposal
(:mod:`adasam.clicks`: NoC@85, NoC@90, up to ``clicks`` clicks).

**The rule.** The burden of proof is on the candidate: absence of evidence is not evidence of
"not worse". On the paired per-correction differences, oriented so that positive means the
candidate is worse (``active − candidate`` proposal Dice, ``candidate − active`` NoC@90), the
gate computes a one-sided upper confidence bound (:func:`upper_bound`, ``confidence``, 95 % by
default) of the mean difference. The candidate is activated only if **both** bounds are below
their tolerances (``dice_tolerance``, ``noc_tolerance``): with that confidence it loses less
than the tolerance. Fewer than ``min_cases`` held-out corrections are refused outright. A
candidate equal to the active one on a few noisy cases is therefore refused (its bound is wide);
a clearly better one, or one slightly worse but within the tolerance on many cases, gets in.

Why a t bound and not a paired bootstrap: the held-out sets are small (8–40 corrections), and
there the percentile bootstrap's bound is too narrow (it uses the plug-in spread and normal-like
tails, so it covers less often than it claims), depends on a seed and a resample count, and
cannot be recomputed from the stored figures. The Student-t bound ``mean + t(confidence, n−1) ×
SE`` has the stated coverage for normal differences, is close to it for bounded ones (Dice
differences lie in [−1, 1]) at these counts, is deterministic, and is reproducible from the
mean, the standard error and n that the verdict stores.

Corrections of several structures on one slice are treated as independent pairs; a cluster of
them shares the slice's image, so the bound is somewhat optimistic when slices carry several
corrected structures.
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
    """How candidates are judged (see the module docstring for the rule)."""

    heldout_share: float = field(
        default=0.2, metadata={"help": "share of corrected cases held out (never trained on)"}
    )
    heldout_seed: int = field(default=0, metadata={"help": "seed of the held-out choice"})
    min_cases: int = field(
        default=8,
        metadata={
            "help": "fewest held-out corrections to judge (≥ 2: a bound needs a spread); fewer "
            "keep the candidate inactive"
        },
    )
    dice_tolerance: float = field(
        default=0.01,
        metadata={
            "help": "non-inferiority margin: the upper bound of the mean proposal-Dice loss "
            "(active − candidate) must be below this"
        },
    )
    noc_tolerance: float = field(
        default=0.5,
        metadata={
            "help": "non-inferiority margin in clicks: the upper bound of the mean NoC@90 rise "
            "(candidate − active) must be below this"
        },
    )
    confidence: float = field(
        default=0.95, metadata={"help": "one-sided confidence of the bounds (Student t)"}
    )
    clicks: int = field(default=20, metadata={"help": "clicks of the protocol (NoC cap)"})

    def __post_init__(self) -> None:
        if not 0.0 < self.heldout_share < 1.0:
            raise ConfigError(f"heldout_share must be in (0, 1), got {self.heldout_share}")
        if self.min_cases < 2:
            raise ConfigError(
                f"min_cases must be ≥ 2 (a confidence bound needs a spread), got {self.min_cases}"
            )
        if self.clicks < 1:
            raise ConfigError(f"clicks must be ≥ 1, got {self.clicks}")
        if min(self.dice_tolerance, self.noc_tolerance) < 0:
            raise ConfigError("dice_tolerance and noc_tolerance must be ≥ 0")
        if not 0.5 <= self.confidence < 1.0:
            raise ConfigError(f"confidence must be in [0.5, 1), got {self.confidence}")


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


def mask_digest(mask: np.ndarray) -> str:
    """A short sha1 of a bool ``(H, W)`` mask (its shape and bits): a recorded score belongs
    to this final mask only."""
    m = np.asarray(mask, bool)
    return hashlib.sha1(f"{m.shape}".encode() + np.packbits(m).tobytes()).hexdigest()[:16]


def scores_record(
    scores: Sequence[CaseScore], cases: Sequence[CorrectedCase], clicks: int
) -> list[dict[str, Any]]:
    """JSON-ready scores of one version, each tied to its correction's final mask and the
    click budget, so a later gate can reuse them (:func:`reusable_scores`)."""
    by_id = {c.correction_id: c for c in cases}
    return [
        {**asdict(s), "mask": mask_digest(by_id[s.correction_id].mask), "clicks": clicks}
        for s in scores
    ]


def reusable_scores(
    records: Sequence[dict[str, Any]], cases: Sequence[CorrectedCase], clicks: int
) -> dict[int, CaseScore]:
    """The recorded scores (:func:`scores_record`, of the same version) still valid for
    ``cases``: same correction, same final mask, same click budget."""
    digests = {c.correction_id: mask_digest(c.mask) for c in cases}
    out = {}
    for r in records:
        cid = int(r["correction_id"])
        if digests.get(cid) == r.get("mask") and r.get("clicks") == clicks:
            out[cid] = CaseScore(
                cid, float(r["dice"]), int(r["noc85"]), int(r["noc90"]), tuple(r["ious"])
            )
    return out


def score_cases(
    predictor: Any,
    cases: Sequence[CorrectedCase],
    clicks: int,
    known: dict[int, CaseScore] | None = None,
) -> list[CaseScore]:
    """Score ``predictor`` (an :class:`adasam.predictor.Predictor`) on the held-out cases;
    those in ``known`` (this predictor's version, :func:`reusable_scores`) are not rerun.
    Scoring is deterministic, so a reused score is the one a rerun would give."""
    from adasam.clicks import noc, run_click_protocol
    from adasam.training.metrics import dice

    out = []
    for c in cases:
        if known and c.correction_id in known:
            out.append(known[c.correction_id])
            continue
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
    """The gate's decision, its reason and the figures behind it.

    ``delta_dice`` and ``delta_noc90`` are the mean paired changes (candidate − active), as
    stored since the first gate; ``dice_bound`` is the upper confidence bound of the mean Dice
    loss (active − candidate), ``noc_bound`` that of the mean NoC@90 rise (candidate − active),
    ``dice_se`` / ``noc_se`` their standard errors, at one-sided ``confidence``. Figures are
    None when too few held-out corrections existed to judge.
    """

    activate: bool
    reason: str
    candidate: dict[str, float | int]
    active: dict[str, float | int]
    delta_dice: float | None = None
    delta_noc90: float | None = None
    dice_bound: float | None = None
    noc_bound: float | None = None
    dice_se: float | None = None
    noc_se: float | None = None
    confidence: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Bound:
    """Mean, standard error and one-sided upper confidence bound of paired differences."""

    mean: float
    se: float
    upper: float
    n: int


def upper_bound(differences: Sequence[float] | np.ndarray, confidence: float) -> Bound:
    """The one-sided Student-t upper confidence bound of the mean of ``differences`` (1-D,
    at least 2, finite): ``mean + t(confidence, n − 1) × sd / √n`` (sd with ``n − 1``).

    With every difference equal the spread is 0 and the bound is that difference (nothing
    says otherwise; ``min_cases`` keeps a handful of cases from deciding).
    """
    from scipy.stats import t as student_t

    x = np.asarray(differences, dtype=float)
    if x.ndim != 1 or len(x) < 2:
        raise ValueError(f"a bound needs at least 2 differences in a 1-D array, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("differences must be finite")
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
    n = len(x)
    mean = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(n))
    return Bound(mean, se, mean + float(student_t.ppf(confidence, n - 1)) * se, n)


def _percent(confidence: float) -> str:
    return f"{100 * confidence:g} %"


def _r(value: float, digits: int) -> float:
    """Rounded, without a negative zero (a mean of −1e-17 reads +0.000)."""
    return round(value, digits) + 0.0


def _signed(value: float, digits: int) -> str:
    return f"{_r(value, digits):+.{digits}f}"


def judge(candidate: Sequence[CaseScore], active: Sequence[CaseScore], cfg: GateConfig) -> Verdict:
    """Activate the candidate only if the held-out corrections show, at ``cfg.confidence``,
    that it loses less than ``cfg.dice_tolerance`` proposal Dice and gains less than
    ``cfg.noc_tolerance`` NoC@90 clicks (both upper bounds below their tolerances)."""
    if [c.correction_id for c in candidate] != [a.correction_id for a in active]:
        raise ValueError("candidate and active must be scored on the same held-out cases")
    cand, act = summary(candidate), summary(active)
    n = len(candidate)
    if n < cfg.min_cases:
        return Verdict(
            False,
            f"only {n} held-out correction(s), {cfg.min_cases} needed to judge: no evidence "
            "that it is not worse; kept inactive",
            cand,
            act,
        )
    pairs = list(zip(candidate, active, strict=True))
    dice_loss = upper_bound([a.dice - c.dice for c, a in pairs], cfg.confidence)
    noc_rise = upper_bound([float(c.noc90 - a.noc90) for c, a in pairs], cfg.confidence)
    figures = dict(
        delta_dice=_r(-dice_loss.mean, 4),
        delta_noc90=_r(noc_rise.mean, 3),
        dice_bound=_r(dice_loss.upper, 4),
        noc_bound=_r(noc_rise.upper, 3),
        dice_se=_r(dice_loss.se, 4),
        noc_se=_r(noc_rise.se, 3),
        confidence=cfg.confidence,
    )
    level = f"{_percent(cfg.confidence)} bound"
    failed = []
    if not dice_loss.upper < cfg.dice_tolerance:
        failed.append(
            f"proposal Dice may be worse by up to {dice_loss.upper:.3f} ({level}) ≥ tolerance "
            f"{cfg.dice_tolerance:g} (mean change {_signed(-dice_loss.mean, 3)})"
        )
    if not noc_rise.upper < cfg.noc_tolerance:
        failed.append(
            f"NoC@90 may be worse by up to {noc_rise.upper:.2f} clicks ({level}) ≥ tolerance "
            f"{cfg.noc_tolerance:g} (mean change {_signed(noc_rise.mean, 2)})"
        )
    if failed:
        reason = f"{'; '.join(failed)}; {n} held-out corrections"
        return Verdict(False, reason, cand, act, **figures)
    reason = (
        f"not worse: proposal Dice loss at most {_signed(dice_loss.upper, 3)} ({level}, tolerance "
        f"{cfg.dice_tolerance:g}; mean change {_signed(-dice_loss.mean, 3)}), NoC@90 rise at most "
        f"{_signed(noc_rise.upper, 2)} clicks (tolerance {cfg.noc_tolerance:g}; mean change "
        f"{_signed(noc_rise.mean, 2)}); {n} held-out corrections"
    )
    return Verdict(True, reason, cand, act, **figures)
