"""Evaluation with CAM-generated prompts (the production pipeline), plus a GT-box oracle.

Per (slice, structure) where the ground truth contains the structure: Dice, IoU and HD95 of the
best-scored candidate (an empty mask when the classifier did not find the structure). Where the
ground truth lacks it, a found structure counts as a false positive. AUROC is computed from the
classifier's probabilities against presence. The oracle column prompts SAM with the box of the
ground-truth mask (no CAM, no classifier) and is labelled as an oracle everywhere it appears.

The same scores are also broken down by the ground truth's area in pixels (at the evaluated
size, ``AREA_EDGES``), with the share of slices where the structure was found: a mean over
slices weighs a 100-pixel tip as much as a whole muscle, and this shows where it is lost.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from adasam.clicks import ClickTrace
from adasam.predictor import Predictor
from adasam.prompts import mask_to_box
from adasam.training.click_eval import (
    STARTS,
    ClickSettings,
    ClickSummary,
    click_table,
    structure_traces,
    summarize,
)
from adasam.training.data import SliceSet
from adasam.training.metrics import auroc, dice, hd95, iou, mean_std

AREA_EDGES: tuple[float, ...] = (0, 200, 800, 3000, math.inf)
"""Ground-truth area bins (pixels) of the evaluation report's breakdown."""


@dataclass(frozen=True)
class AreaBin:
    """Scores of the slices whose ground-truth area (pixels) lies in ``[low, high)``.

    ``dice``: mean CAM-prompted Dice; ``found``: share of those slices that got a prompt;
    ``oracle_dice``: mean GT-box oracle Dice (None without the oracle)."""

    low: float
    high: float
    n: int
    dice: float
    found: float
    oracle_dice: float | None

    @property
    def label(self) -> str:
        return area_label(self.low, self.high)

    def to_dict(self) -> dict[str, object]:
        return {
            "low_px": self.low,
            "high_px": None if math.isinf(self.high) else self.high,
            "n": self.n,
            "dice_mean": self.dice,
            "found_rate": self.found,
            "oracle_gt_box_dice_mean": self.oracle_dice,
        }


def area_label(low: float, high: float) -> str:
    """``"< 200 px"``, ``"200–800 px"`` or ``"≥ 3000 px"``."""
    if math.isinf(high):
        return f"≥ {low:g} px"
    return f"< {high:g} px" if low == 0 else f"{low:g}–{high:g} px"


def area_bins(
    areas: list[float],
    dices: list[float],
    found: list[bool],
    oracle: list[float] | None = None,
    edges: tuple[float, ...] = AREA_EDGES,
) -> tuple[AreaBin, ...]:
    """Group per-slice scores by ground-truth area; empty bins are left out."""
    a = np.asarray(areas, dtype=float)
    if not (len(a) == len(dices) == len(found)) or (oracle is not None and len(oracle) != len(a)):
        raise ValueError("areas, dices, found (and oracle) must have one entry per slice")
    out = []
    for low, high in itertools.pairwise(edges):
        sel = np.flatnonzero((a >= low) & (a < high))
        if not len(sel):
            continue
        out.append(
            AreaBin(
                low=float(low),
                high=float(high),
                n=len(sel),
                dice=float(np.mean(np.asarray(dices)[sel])),
                found=float(np.mean(np.asarray(found, dtype=float)[sel])),
                oracle_dice=None if oracle is None else float(np.mean(np.asarray(oracle)[sel])),
            )
        )
    return tuple(out)


@dataclass
class StructureReport:
    name: str
    n_present: int
    n_absent: int
    dice: tuple[float, float]
    iou: tuple[float, float]
    hd95: tuple[float, float]
    false_positive_rate: float
    auroc: float
    oracle_dice: tuple[float, float] | None
    by_area: tuple[AreaBin, ...] = ()
    clicks: tuple[ClickSummary, ...] = ()
    score_spearman: float = float("nan")
    zero_shot_oracle_dice: tuple[float, float] | None = None
    in_domain_share: float = float("nan")

    def to_dict(self) -> dict[str, object]:
        d = {
            "score_spearman": self.score_spearman,
            "zero_shot_oracle_dice": self.zero_shot_oracle_dice,
            "in_domain_share": self.in_domain_share,
            "name": self.name,
            "n_present": self.n_present,
            "n_absent": self.n_absent,
            "dice_mean": self.dice[0],
            "dice_std": self.dice[1],
            "iou_mean": self.iou[0],
            "iou_std": self.iou[1],
            "hd95_mean": self.hd95[0],
            "hd95_std": self.hd95[1],
            "false_positive_rate": self.false_positive_rate,
            "auroc": self.auroc,
        }
        if self.oracle_dice is not None:
            d["oracle_gt_box_dice_mean"] = self.oracle_dice[0]
            d["oracle_gt_box_dice_std"] = self.oracle_dice[1]
        d = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}
        d["by_area"] = [b.to_dict() for b in self.by_area]
        d["clicks"] = [c.to_dict() for c in self.clicks]
        return d


def evaluate_predictor(
    predictor: Predictor,
    data: SliceSet,
    indices: list[int] | None = None,
    oracle: bool = True,
    progress: bool = False,
    clicks: ClickSettings | None = None,
    zero_shot: Predictor | None = None,
    timings: list[dict[str, float]] | None = None,
) -> list[StructureReport]:
    """Run the production pipeline on each slice and score it (see module docstring); with
    ``clicks``, also the simulated-user click protocol (:mod:`adasam.training.click_eval`);
    with ``zero_shot`` (plain LiteMedSAM), its single-mask Dice with the GT box.

    ``score_spearman``: Spearman rank correlation between the predicted-IoU scores of the
    CAM-prompted candidates and their true IoU (do the scores rank the candidates?);
    ``in_domain_share``: share of slices the bundle's domain model accepts. ``timings``, when
    given, receives each slice's per-stage wall times (``Prediction.timings_ms``)."""
    idx = list(range(len(data))) if indices is None else list(indices)
    names = list(data.structures)
    missing = [n for n in names if n not in predictor.structures]
    if missing:
        raise ValueError(f"the model does not segment {missing}")
    acc: dict[str, dict[str, list[float]]] = {
        n: {
            k: []
            for k in (
                "dice",
                "iou",
                "hd95",
                "fp",
                "prob",
                "present",
                "oracle",
                "area",
                "found",
                "score",
                "true_iou",
                "zero_shot",
            )
        }
        for n in names
    }
    in_domain: list[bool] = []
    traces: dict[str, dict[str, list[ClickTrace]]] = {n: {k: [] for k in STARTS} for n in names}
    for i in tqdm(idx, desc="evaluate", disable=not progress, leave=False):
        img = data.images[i]
        gts = data.masks(i)
        sp = data.spacing[i]
        spacing = None if np.isnan(sp).any() else tuple(sp)
        pred = predictor.predict(img, names)
        if timings is not None:
            timings.append(pred.timings_ms)
        if pred.domain is not None:
            in_domain.append(pred.domain.in_domain)
        for t, name in enumerate(names):
            s = pred.structure(name)
            gt = gts[t]
            a = acc[name]
            a["prob"].append(s.probability)
            a["present"].append(bool(gt.any()))
            mask = s.candidates[0].mask if s.candidates else np.zeros(gt.shape, bool)
            if gt.any():
                a["dice"].append(dice(mask, gt))
                a["iou"].append(iou(mask, gt))
                a["hd95"].append(hd95(mask, gt, spacing))
                a["area"].append(float(gt.sum()))
                a["found"].append(bool(s.found))
                for c in s.candidates:
                    a["score"].append(c.score)
                    a["true_iou"].append(iou(c.mask, gt))
                if zero_shot is not None:
                    zs = zero_shot.segment(img, box=mask_to_box(gt), multimask=False)[0]
                    a["zero_shot"].append(dice(zs.mask, gt))
                if oracle:
                    box = mask_to_box(gt)
                    cand = predictor.segment(img, box=box)[0]
                    a["oracle"].append(dice(cand.mask, gt))
                t_n = traces[name]
                if clicks and (clicks.max_slices is None or len(t_n["box"]) < clicks.max_slices):
                    for start, tr in structure_traces(predictor, img, gt, s, clicks).items():
                        t_n[start].append(tr)
            else:
                a["fp"].append(float(s.found))
    reports = []
    for name in names:
        a = acc[name]
        reports.append(
            StructureReport(
                name=name,
                n_present=len(a["dice"]),
                n_absent=len(a["fp"]),
                dice=mean_std(a["dice"]),
                iou=mean_std(a["iou"]),
                hd95=mean_std(a["hd95"]),
                false_positive_rate=float(np.mean(a["fp"])) if a["fp"] else float("nan"),
                auroc=auroc(a["prob"], a["present"]),
                oracle_dice=mean_std(a["oracle"]) if oracle else None,
                by_area=area_bins(
                    a["area"], a["dice"], a["found"], a["oracle"] if oracle else None
                ),
                clicks=tuple(summarize(traces[name][k], k, clicks.max_clicks) for k in STARTS)
                if clicks
                else (),
                score_spearman=_spearman(a["score"], a["true_iou"]),
                zero_shot_oracle_dice=mean_std(a["zero_shot"]) if zero_shot else None,
                in_domain_share=float(np.mean(in_domain)) if in_domain else float("nan"),
            )
        )
    return reports


def _spearman(x: list[float], y: list[float]) -> float:
    """Spearman rank correlation (NaN with fewer than 3 pairs or a constant side)."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def markdown_table(reports: list[StructureReport], hd_unit: str) -> str:
    def f(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{x:.3f}"

    lines = [
        "| structure | n (present / absent) | Dice (CAM prompts) | IoU | "
        f"HD95 ({hd_unit}) | false-positive rate | AUROC | oracle: Dice with GT box |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        oracle = "—" if r.oracle_dice is None else f"{f(r.oracle_dice[0])} ± {f(r.oracle_dice[1])}"
        lines.append(
            f"| {r.name} | {r.n_present} / {r.n_absent} | {f(r.dice[0])} ± "
            f"{f(r.dice[1])} | {f(r.iou[0])} ± {f(r.iou[1])} | {f(r.hd95[0])} ± "
            f"{f(r.hd95[1])} | {f(r.false_positive_rate)} | {f(r.auroc)} | {oracle} |"
        )
    return "\n".join(lines)


def area_table(reports: list[StructureReport]) -> str:
    """Markdown: Dice (found rate, oracle) per structure and ground-truth area bin."""
    edges = list(itertools.pairwise(AREA_EDGES))
    lines = [
        "| structure | " + " | ".join(area_label(lo, hi) for lo, hi in edges) + " |",
        "|---|" + "---|" * len(edges),
    ]
    for r in reports:
        by_low = {b.low: b for b in r.by_area}
        cells = []
        for lo, _ in edges:
            b = by_low.get(lo)
            if b is None:
                cells.append("—")
                continue
            oracle = "" if b.oracle_dice is None else f"; oracle {b.oracle_dice:.3f}"
            cells.append(f"n {b.n}: {b.dice:.3f} (found {b.found:.0%}{oracle})")
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(
    reports: list[StructureReport], out: Path, meta: dict[str, object], spacing_known: bool
) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    unit = "mm" if spacing_known else "px"
    body = {
        "meta": meta,
        "hd95_unit": unit,
        "conventions": {
            "prompts": "CAM-generated (classifier + GradCAM → box + mask logits); the "
            "oracle column uses ground-truth boxes and is not a deployable result",
            "dice_when_not_found": "an unfound structure scores Dice 0 against a non-empty "
            "ground truth",
            "hd95_empty": "both empty: 0; exactly one empty: image diagonal",
            "clicks": "NoC@k: clicks until IoU ≥ k (0 if the start meets it, max_clicks if "
            "never); mIoU@k: IoU after k clicks, held at the last value when a run stopped "
            "early; worse_click_share: share of all clicks that lowered IoU by more than 0.02",
        },
        "structures": [r.to_dict() for r in reports],
    }
    out.write_text(json.dumps(body, indent=2) + "\n")
    table = markdown_table(reports, unit)
    by_area = area_table(reports)
    text = (
        f"{table}\n\nDice (CAM prompts) by ground-truth area, pixels at the evaluated size:"
        f"\n\n{by_area}"
    )
    rows = [(r.name, c) for r in reports for c in r.clicks]
    if rows:
        text += (
            "\n\nClick protocol (simulated user: next click at the interior point farthest from "
            "the largest error region's boundary, previous logits fed back; box = GT box alone, "
            "cam = CAM-prompted candidate):\n\n" + click_table(rows)
        )
    out.with_suffix(".md").write_text(f"# Evaluation\n\n{json.dumps(meta)}\n\n{text}\n")
    return text
