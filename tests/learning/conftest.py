"""Fixtures of the learning-loop suite: a store, a tiny bundle, corrections written as the
studio writes them (slice, prediction, correction, rating)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from adasam.config import ClassifierConfig
from storage import (
    HumanObserver,
    Store,
    ensure_annotator,
    open_store,
    pixels_hash,
    record_correction,
    record_prediction,
    record_rating,
    record_slice,
)
from tests.conftest import tiny_config


@pytest.fixture(scope="session")
def loop_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained bundle (liver, kidney) whose classifier finds everything."""
    from adasam.bundle import create_bundle, save_bundle

    config = tiny_config(
        classifier=ClassifierConfig(backbone="resnet10", image_size=64, threshold=1e-6),
        trained=True,
    )
    return save_bundle(create_bundle(config, seed=0), tmp_path_factory.mktemp("loop") / "tiny")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'data' / 'db.sqlite3'}", tmp_path / "data")
    yield s
    s.close()


def phantom_image(seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A noisy slice with a bright square, and the square's mask."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 50, (size, size, 3)).astype(np.uint8)
    y, x = rng.integers(8, size - 32, 2)
    mask = np.zeros((size, size), bool)
    mask[y : y + 20, x : x + 20] = True
    image[mask] = 210
    return image, mask


def add_correction(
    store: Store,
    image: np.ndarray,
    final: np.ndarray,
    *,
    structure: str = "liver",
    verdict: str = "minor_edits",
    candidate: np.ndarray | None = None,
) -> int:
    """Store a slice, a prediction, a correction and the candidate's rating; the correction id."""
    pixels = image[:, :, 0].astype(np.float32)
    sl = record_slice(
        store, content_hash=pixels_hash(pixels), pixels=pixels, display=image, modality="MR"
    )
    ensure_annotator(store, "dr.a")
    cand = final if candidate is None else candidate
    pred = record_prediction(
        store, slice_hash=sl.content_hash, structure=structure, candidates=[cand], scores=[0.5]
    )
    corr = record_correction(
        store, prediction_id=pred.id, chosen_rank=0, final_mask=final, annotator="dr.a", seconds=3
    )
    score = {"accept": 5, "minor_edits": 4, "major_edits": 2, "reject": 1}[verdict]
    record_rating(
        store,
        observer=HumanObserver("dr.a"),
        candidate_id=pred.candidates[0].id,
        score=score,
        verdict=verdict,
    )
    return corr.id
