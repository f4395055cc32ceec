"""Train a bundle's clicks: SAM's interactive protocol on cached embeddings (prompt encoder and
mask decoder only; the classifier, encoder and domain check are unchanged).

Starts from a trained bundle whose encoder is frozen, reads its training split, fills the
embedding store where needed, trains, keeps the step with the fewest validation clicks to IoU
0.90 whose box-only IoU did not drop by more than --max-box-drop, and writes a new bundle
version (parent: the start) with the record under ``config.training["clicks"]`` and the
validation curve in ``training/clicks_history.jsonl``. See :mod:`adasam.training.click_train`.
"""

from __future__ import annotations

import argparse

from adasam.commands.fields import add_fields, from_args
from adasam.settings import Settings

HELP = "train a bundle's click refinement (interactive protocol, cached embeddings)"
NAME = "train-clicks"


def _config_class() -> type:
    from adasam.training.click_config import ClickTrainConfig

    return ClickTrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_fields(parser, _config_class())


def run(args: argparse.Namespace, settings: Settings) -> int:
    from adasam.training.click_train import train_clicks

    cfg = from_args(_config_class(), args)
    result = train_clicks(cfg)
    s, b = result.start, result.best
    print(
        f"wrote {result.out}: {result.steps_done} steps in {result.seconds / 60:.1f} min on "
        f"{result.n_train_pairs} training pairs; kept step {result.best_step}. Validation "
        f"(RITM clicks from the box): NoC@90 {s.noc90:.2f} → {b.noc90:.2f}, box-only IoU "
        f"{s.box_iou:.3f} → {b.box_iou:.3f}, IoU after {len(b.ious) - 1} clicks "
        f"{s.ious[-1]:.3f} → {b.ious[-1]:.3f}"
    )
    if s.cam_noc90 is not None and b.cam_noc90 is not None and s.cam_iou and b.cam_iou:
        print(
            f"From the CAM start: NoC@90 {s.cam_noc90:.2f} → {b.cam_noc90:.2f}, IoU before a "
            f"click {s.cam_iou:.3f} → {b.cam_iou:.3f}"
        )
    return 0
