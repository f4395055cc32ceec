"""Refit a bundle's classifier on cached embeddings (SAM untouched), then its out-of-domain
check and thresholds, as a new bundle version.

For a ``sam-embedding`` classifier on a frozen encoder: trains the classifier head alone on the
bundle's training split (image-level BCE plus the CAM-alignment term on labeled slices), keeps
the epoch with the lowest validation loss, refits the domain check on the new features and
calibrates the presence and CAM thresholds on the validation slices. See
:mod:`adasam.training.classifier_fit`.
"""

from __future__ import annotations

import argparse

from adasam.commands.fields import add_fields, from_args
from adasam.settings import Settings

HELP = "refit a bundle's presence classifier and CAM on cached embeddings (SAM untouched)"
NAME = "fit-classifier"


def _config_class() -> type:
    from adasam.training.classifier_fit_config import ClassifierFitConfig

    return ClassifierFitConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_fields(parser, _config_class())


def run(args: argparse.Namespace, settings: Settings) -> int:
    from adasam.training.classifier_fit import fit_classifier

    cfg = from_args(_config_class(), args)
    result = fit_classifier(cfg)
    s, b = result.start, result.best
    print(
        f"wrote {result.out}: kept epoch {result.best_epoch} of {len(result.history) - 1} "
        f"({result.seconds / 60:.1f} min). Validation: loss {s.loss:.3f} → {b.loss:.3f}, "
        f"AUROC {s.auroc:.3f} → {b.auroc:.3f}, CAM Dice {s.cam_dice:.3f} → {b.cam_dice:.3f}, "
        f"mean p present / absent {s.p_present:.2f} / {s.p_absent:.2f} → "
        f"{b.p_present:.2f} / {b.p_absent:.2f}"
    )
    c = result.calibration
    if c is not None:
        print(
            f"calibrated on {c['n_slices']} validation slices: presence threshold "
            f"{c['classifier_threshold']}, CAM threshold {c['cam_threshold']} "
            f"(score {float(c['previous_score']):.3f} → {float(c['score']):.3f})"  # type: ignore[arg-type]
        )
    return 0
