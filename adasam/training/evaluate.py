"""Evaluation with CAM-generated prompts (the production pipeline), plus a GT-box oracle.

Per (slice, structure) where the ground truth contains the structure: Dice, IoU and HD95 of the
best-scored candidate (an empty mask when the classifier did not find the structure). Where the
ground truth lacks it, a found structure counts as a false positive. AUROC is computed from the
classifier's probabilities against presence. The oracle column prompts SAM with the box of the
ground-truth mask (no CAM, no classifier) and is labelled as an oracle everywhere it appears.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from adasam.predictor import Predictor
from adasam.prompts import mask_to_box
from adasam.training.data import SliceSet
from adasam.training.metrics import auroc, dice, hd95, iou, mean_std


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

    def to_dict(self) -> dict[str, object]:
        d = {
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
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def evaluate_predictor(
    predictor: Predictor,
    data: SliceSet,
    indices: list[int] | None = None,
    oracle: bool = True,
    progress: bool = False,
) -> list[StructureReport]:
    """Run the production pipeline on each slice and score it (see module docstring)."""
    idx = list(range(len(data))) if indices is None else list(indices)
    names = list(data.structures)
    missing = [n for n in names if n not in predictor.structures]
    if missing:
        raise ValueError(f"the model does not segment {missing}")
    acc: dict[str, dict[str, list[float]]] = {
        n: {"dice": [], "iou": [], "hd95": [], "fp": [], "prob": [], "present": [], "oracle": []}
        for n in names
    }
    for i in tqdm(idx, desc="evaluate", disable=not progress, leave=False):
        img = data.images[i]
        gts = data.masks(i)
        sp = data.spacing[i]
        spacing = None if np.isnan(sp).any() else tuple(sp)
        pred = predictor.predict(img, names)
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
                if oracle:
                    box = mask_to_box(gt)
                    cand = predictor.segment(img, box=box)[0]
                    a["oracle"].append(dice(cand.mask, gt))
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
            )
        )
    return reports


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
        },
        "structures": [r.to_dict() for r in reports],
    }
    out.write_text(json.dumps(body, indent=2) + "\n")
    table = markdown_table(reports, unit)
    out.with_suffix(".md").write_text(f"# Evaluation\n\n{json.dumps(meta)}\n\n{table}\n")
    return table
