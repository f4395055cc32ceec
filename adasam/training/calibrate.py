"""Choosing a trained bundle's two operating thresholds on its validation slices.

- ``classifier.threshold``: the probability above which a structure counts as present (and
  gets prompts and masks at all);
- ``prompts.threshold``: where the normalised CAM is cut to make the box and the mask prompt.

Both are picked on the validation split (never the test set) to maximise the mean Dice of
the production pipeline over every (slice, structure) pair, where a structure absent from the
ground truth scores 1 when nothing is found and 0 when something is: a lower presence
threshold that finds small structures pays for the false positives it adds. Ties keep the
values the bundle already had.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from adasam.bundle import ModelBundle
from adasam.config import BundleConfig
from adasam.predictor import EmbeddingSource, Predictor
from adasam.training.data import SliceSet
from adasam.training.metrics import dice

CLASSIFIER_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
CAM_THRESHOLDS = (0.2, 0.3, 0.4, 0.5)


@dataclass(frozen=True)
class Calibration:
    """The chosen thresholds, their validation score, the bundle's own and the whole grid
    (``(classifier threshold, CAM threshold, score)`` rows)."""

    classifier_threshold: float
    cam_threshold: float
    score: float
    previous_score: float
    n_slices: int
    grid: tuple[tuple[float, float, float], ...]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def calibrate(
    bundle: ModelBundle,
    data: SliceSet,
    indices: Sequence[int],
    device: str = "cpu",
    embedding_store: EmbeddingSource | None = None,
    classifier_thresholds: Sequence[float] = CLASSIFIER_THRESHOLDS,
    cam_thresholds: Sequence[float] = CAM_THRESHOLDS,
) -> Calibration:
    """Score every threshold pair on ``data[indices]`` (see the module docstring).

    Cost: one pipeline run per slice and CAM threshold (the image embedding is computed once
    per slice); presence thresholds only filter those results.
    """
    if not indices:
        raise ValueError("calibration needs at least one validation slice")
    cfg = bundle.config
    names = list(data.structures)
    current = (cfg.classifier.threshold, cfg.prompts.threshold)
    cls_grid = sorted({*classifier_thresholds, current[0]})
    cam_grid = sorted({*cam_thresholds, current[1]})
    # scores[c, k] accumulates over (slice, structure) pairs
    scores = np.zeros((len(cls_grid), len(cam_grid)))
    lowest = min(cls_grid)
    predictor = Predictor(bundle, device, cache_size=1, embedding_store=embedding_store)
    for i in indices:
        image, gts = data.images[i], data.masks(i)
        for k, cam in enumerate(cam_grid):
            pred = predictor.predict(image, names, cam_threshold=cam, presence_threshold=lowest)
            for t, name in enumerate(names):
                s = pred.structure(name)
                mask = s.candidates[0].mask if s.candidates else None
                for c, thr in enumerate(cls_grid):
                    found = mask is not None and s.probability >= thr
                    scores[c, k] += dice(mask if found else np.zeros_like(gts[t]), gts[t])
    scores /= len(indices) * len(names)
    c0, k0 = cls_grid.index(current[0]), cam_grid.index(current[1])
    best = (c0, k0)
    for c in range(len(cls_grid)):
        for k in range(len(cam_grid)):
            if scores[c, k] > scores[best] + 1e-9:
                best = (c, k)
    grid = tuple(
        (float(cls_grid[c]), float(cam_grid[k]), float(scores[c, k]))
        for c in range(len(cls_grid))
        for k in range(len(cam_grid))
    )
    return Calibration(
        classifier_threshold=float(cls_grid[best[0]]),
        cam_threshold=float(cam_grid[best[1]]),
        score=float(scores[best]),
        previous_score=float(scores[c0, k0]),
        n_slices=len(indices),
        grid=grid,
    )


def _with_thresholds(cfg: BundleConfig, classifier: float, cam: float) -> BundleConfig:
    return replace(
        cfg,
        classifier=replace(cfg.classifier, threshold=classifier),
        prompts=replace(cfg.prompts, threshold=cam),
    )


def apply(cfg: BundleConfig, result: Calibration) -> BundleConfig:
    """``cfg`` with the calibrated thresholds, the result kept in ``training['calibration']``."""
    out = _with_thresholds(cfg, result.classifier_threshold, result.cam_threshold)
    training = dict(out.training or {})
    training["calibration"] = {k: v for k, v in result.to_dict().items() if k != "grid"}
    return replace(out, training=training)
