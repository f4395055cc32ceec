"""Threshold calibration on validation slices: the objective, the choice and ties."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from adasam.bundle import create_bundle
from adasam.training import calibrate as cal
from adasam.training.data import SliceSet
from tests.conftest import tiny_config


def _data() -> SliceSet:
    """Slice 0 holds structure ``a`` (an 8 × 8 square); slice 1 does not."""
    labels = np.zeros((2, 16, 16), np.uint8)
    labels[0, 4:12, 4:12] = 1
    images = np.zeros((2, 16, 16, 3), np.uint8)
    images[1] = 1  # lets the fake predictor tell the slices apart
    return SliceSet(
        images=images,
        labels=labels,
        has_mask=np.ones(2, bool),
        present=np.array([[True], [False]]),
        structures=("a",),
        label_values={"a": 1},
        subjects=["s0", "s1"],
        case_ids=["c0", "c1"],
        spacing=np.full((2, 2), np.nan),
    )


class _Fake:
    """Slice 0: p = 0.35, a mask exact at CAM threshold 0.3 and half the square above it.
    Slice 1 (structure absent): p = 0.25 and a non-empty mask."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def predict(self, image, names, *, cam_threshold, presence_threshold):
        self.calls.append((cam_threshold, presence_threshold))
        mask = np.zeros((16, 16), bool)
        if image[0, 0, 0] == 0:
            mask[4:12, 4 : 12 if cam_threshold <= 0.3 else 8] = True
            prob = 0.35
        else:
            mask[0:3, 0:3] = True
            prob = 0.25
        s = SimpleNamespace(probability=prob, candidates=(SimpleNamespace(mask=mask),))
        return SimpleNamespace(structure=lambda name: s)


def _bundle(presence: float = 0.5):
    cfg = tiny_config(structures=("a",))
    return create_bundle(replace(cfg, classifier=replace(cfg.classifier, threshold=presence)))


def test_calibration_maximises_dice_with_absent_slices_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _Fake()
    monkeypatch.setattr(cal, "Predictor", lambda *a, **k: fake)
    bundle = _bundle()
    result = cal.calibrate(
        bundle, _data(), [0, 1], classifier_thresholds=(0.2, 0.3, 0.4), cam_thresholds=(0.3,)
    )
    grid = {(c, k): v for c, k, v in result.grid}
    # presence 0.3: slice 0 found and exact; slice 1 rightly empty (Dice of two empties = 1)
    assert grid[(0.3, 0.3)] == pytest.approx(1.0)
    # presence 0.2: slice 1's false positive scores 0
    assert grid[(0.2, 0.3)] == pytest.approx(0.5)
    # the bundle's own pair (0.5, 0.4) is always in the grid: slice 0 missed, slice 1 right
    assert grid[(0.5, 0.4)] == pytest.approx(0.5)
    # CAM 0.4 halves slice 0's mask: Dice 2·32 / (32 + 64)
    assert grid[(0.3, 0.4)] == pytest.approx((2 * 32 / 96 + 1) / 2)
    assert (result.classifier_threshold, result.cam_threshold) == (0.3, 0.3)
    assert result.previous_score == pytest.approx(0.5)
    # one pipeline run per slice and CAM threshold, at the lowest presence threshold
    assert sorted(fake.calls) == [(0.3, 0.2), (0.3, 0.2), (0.4, 0.2), (0.4, 0.2)]
    cfg = cal.apply(bundle.config, result)
    assert (cfg.classifier.threshold, cfg.prompts.threshold) == (0.3, 0.3)
    assert cfg.training["calibration"]["score"] == pytest.approx(1.0)


def test_ties_keep_the_bundle_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    nothing = SimpleNamespace(probability=0.9, candidates=())
    flat = SimpleNamespace(predict=lambda *a, **k: SimpleNamespace(structure=lambda name: nothing))
    monkeypatch.setattr(cal, "Predictor", lambda *a, **k: flat)
    bundle = _bundle(presence=0.45)
    result = cal.calibrate(bundle, _data(), [0, 1])
    assert (result.classifier_threshold, result.cam_threshold) == (0.45, 0.4)
    with pytest.raises(ValueError, match="at least one"):
        cal.calibrate(bundle, _data(), [])
