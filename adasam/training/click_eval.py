"""The click protocol in ``evaluate``: NoC@85/90, mIoU after 1/3/5 clicks, worse-click share.

For every scored (slice, structure) with the structure in the ground truth, the simulated user of
:mod:`adasam.clicks` corrects two starting points:

- ``box``: SAM's answer to the ground-truth box alone (the oracle column's mask);
- ``cam``: the pipeline's best CAM-prompted candidate, refined with its CAM box as a prompt.
  Where the classifier did not find the structure there is no candidate: the user starts from an
  empty mask with a first click inside the structure (IoU 0 before it).

Reported per structure and start, over the slices (means ± standard deviations across slices):
NoC@0.85 and NoC@0.90 (clicks to reach that IoU, 0 when the start already does, ``max_clicks``
when never reached), mIoU after 1, 3 and 5 clicks (a run that stopped early keeps its last IoU),
the mean IoU at the start, and the share of all clicks that made IoU worse by more than 0.02
(pooled over every click of every run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from adasam.clicks import ClickTrace, noc, run_click_protocol
from adasam.predictor import Predictor, StructureResult
from adasam.prompts import mask_to_box
from adasam.training.metrics import mean_std

NOC_THRESHOLDS: tuple[float, ...] = (0.85, 0.90)
MIOU_AFTER: tuple[int, ...] = (1, 3, 5)
STARTS: tuple[str, ...] = ("box", "cam")


@dataclass(frozen=True)
class ClickSettings:
    """How much of the click protocol ``evaluate`` runs (it costs one decoder pass per click).

    Attributes:
        max_clicks: clicks per run (≥ 1); 20 is the standard protocol.
        max_slices: run the protocol on at most this many slices per structure (the first ones
            with the structure present); ``None``: all of them.
        stop_iou: end a run once IoU reaches this (faster; NoC at or below it and the later
            mIoUs are unchanged in meaning, but clicks after it are not counted as worse).
    """

    max_clicks: int = field(default=20, metadata={"help": "clicks per run (standard: 20)"})
    max_slices: int | None = field(
        default=None, metadata={"help": "at most this many slices per structure (None: all)"}
    )
    stop_iou: float | None = field(
        default=None, metadata={"help": "stop a run once IoU reaches this (None: never)"}
    )

    def __post_init__(self) -> None:
        if self.max_clicks < 1:
            raise ValueError(f"max_clicks must be ≥ 1, got {self.max_clicks}")
        if self.max_slices is not None and self.max_slices < 1:
            raise ValueError(f"max_slices must be ≥ 1 or None, got {self.max_slices}")
        if self.stop_iou is not None and not 0.0 < self.stop_iou <= 1.0:
            raise ValueError(f"stop_iou must be in (0, 1], got {self.stop_iou}")


def structure_traces(
    predictor: Predictor,
    image: np.ndarray,
    gt: np.ndarray,
    result: StructureResult,
    settings: ClickSettings,
) -> dict[str, ClickTrace]:
    """The two runs (``box`` and ``cam`` starts) on one structure of one slice."""

    def run(**start: object) -> ClickTrace:
        return run_click_protocol(
            predictor,
            image,
            gt,
            max_clicks=settings.max_clicks,
            stop_iou=settings.stop_iou,
            **start,  # type: ignore[arg-type]
        )

    box = run(box=mask_to_box(gt))
    if result.candidates and result.prompts is not None:
        cam_box = tuple(float(v) for v in result.prompts.box)
        cam = run(box=cam_box, start=result.candidates[0])
    else:
        cam = run()
    return {"box": box, "cam": cam}


@dataclass(frozen=True)
class ClickSummary:
    """The click metrics of one structure from one start (see the module docstring)."""

    start: str
    n: int
    max_clicks: int
    start_iou: float
    noc: dict[float, tuple[float, float]]
    miou_after: dict[int, float]
    worse_share: float
    n_clicks: int

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "start": self.start,
            "n": self.n,
            "max_clicks": self.max_clicks,
            "start_iou_mean": self.start_iou,
            "worse_click_share": self.worse_share,
            "n_clicks": self.n_clicks,
        }
        for t, (m, s) in self.noc.items():
            d[f"noc{round(t * 100)}_mean"] = m
            d[f"noc{round(t * 100)}_std"] = s
        for k, v in self.miou_after.items():
            d[f"miou_after_{k}"] = v
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def summarize(traces: Sequence[ClickTrace], start: str, max_clicks: int) -> ClickSummary:
    """Pool the runs of one structure from one start."""
    n_clicks = sum(len(t.clicks) for t in traces)
    nan = float("nan")
    return ClickSummary(
        start=start,
        n=len(traces),
        max_clicks=max_clicks,
        start_iou=float(np.mean([t.ious[0] for t in traces])) if traces else nan,
        noc={th: mean_std([noc(t.ious, th, max_clicks) for t in traces]) for th in NOC_THRESHOLDS},
        miou_after={
            k: float(np.mean([t.iou_after(k) for t in traces])) if traces else nan
            for k in MIOU_AFTER
        },
        worse_share=sum(t.worse_count for t in traces) / n_clicks if n_clicks else nan,
        n_clicks=n_clicks,
    )


def click_table(rows: Sequence[tuple[str, ClickSummary]]) -> str:
    """Markdown: one row per (structure, start)."""

    def f(x: float, digits: int = 3) -> str:
        return "n/a" if math.isnan(x) else f"{x:.{digits}f}"

    noc_h = " | ".join(f"NoC@{round(t * 100)}" for t in NOC_THRESHOLDS)
    miou_h = " | ".join(f"mIoU@{k}" for k in MIOU_AFTER)
    n_cols = 5 + len(NOC_THRESHOLDS) + len(MIOU_AFTER)
    lines = [
        f"| structure | start | n | IoU at start | {noc_h} | {miou_h} | clicks making IoU worse "
        "(> 0.02) |",
        "|---|" + "---|" * (n_cols - 1),
    ]
    for name, s in rows:
        nocs = " | ".join(f"{f(m, 2)} ± {f(sd, 2)}" for m, sd in s.noc.values())
        mious = " | ".join(f(v) for v in s.miou_after.values())
        worse = "n/a" if math.isnan(s.worse_share) else f"{s.worse_share:.1%} of {s.n_clicks}"
        lines.append(
            f"| {name} | {s.start} | {s.n} | {f(s.start_iou)} | {nocs} | {mious} | {worse} |"
        )
    return "\n".join(lines)
