"""The embedding cache may hold embeddings in float16 (half the memory) without changing what a
slice's answers are, cached or not (tiny models; one check on the shipped LiteMedSAM bundle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adasam.bundle import load_bundle
from adasam.errors import ConfigError
from adasam.guard import phantom_display
from adasam.phantoms import STRUCTURES, generate
from adasam.predictor import CACHE_DTYPES, Click, Predictor
from adasam.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _image(seed: int, h: int = 90, w: int = 120) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def test_float16_halves_the_cache_and_is_what_every_decode_reads(tiny_bundle_dir: Path) -> None:
    full = Predictor(load_bundle(tiny_bundle_dir), cache_size=4)
    half = Predictor(load_bundle(tiny_bundle_dir), cache_size=4, cache_dtype=torch.float16)
    images = [_image(seed) for seed in range(3)]
    for image in images:
        full.embedding(image)
        fresh, cached = half.embedding(image)
        assert not cached and fresh.dtype == torch.float32  # decoders get float32
        again, cached = half.embedding(image)
        assert cached and torch.equal(fresh, again)  # a miss reads the rounded value too
    assert half.cache_nbytes() * 2 == full.cache_nbytes() > 0
    assert all(t.dtype == torch.float16 for t in half._cache.values())


def test_a_miss_and_a_hit_give_the_same_answer_under_float16(tiny_bundle_dir: Path) -> None:
    half = Predictor(load_bundle(tiny_bundle_dir), cache_size=2, cache_dtype=torch.float16)
    image = _image(7)
    first, second = half.predict(image), half.predict(image)
    assert not first.embedding_cached and second.embedding_cached
    for a, b in zip(first.structures, second.structures, strict=True):
        for ca, cb in zip(a.candidates, b.candidates, strict=True):
            np.testing.assert_array_equal(ca.logits, cb.logits)
            assert ca.score == cb.score


def test_float16_answers_stay_close_to_float32(tiny_bundle_dir: Path) -> None:
    full = Predictor(load_bundle(tiny_bundle_dir), cache_size=2)
    half = Predictor(load_bundle(tiny_bundle_dir), cache_size=2, cache_dtype=torch.float16)
    image, box = _image(11), [20, 15, 80, 70]
    a = full.segment(image, box=box)
    b = half.segment(image, box=box)
    for ca, cb in zip(a, b, strict=True):
        assert np.abs(ca.logits - cb.logits).max() < 0.05 * max(1.0, np.abs(ca.logits).max())
        assert abs(ca.score - cb.score) < 0.01


def test_an_unknown_cache_dtype_is_refused(tiny_bundle_dir: Path) -> None:
    with pytest.raises(ValueError, match="cache_dtype"):
        Predictor(load_bundle(tiny_bundle_dir), cache_dtype=torch.bfloat16)


def test_the_setting_defaults_to_float16_and_names_itself_when_wrong() -> None:
    assert Settings.from_env({}).embed_cache_dtype == "float16"
    assert Settings.from_env({"ADASAM_EMBED_CACHE_DTYPE": "FLOAT32"}).embed_cache_dtype == (
        "float32"
    )
    with pytest.raises(ConfigError, match="ADASAM_EMBED_CACHE_DTYPE='int8' must be one of"):
        Settings.from_env({"ADASAM_EMBED_CACHE_DTYPE": "int8"})
    assert set(CACHE_DTYPES) == {"float16", "float32"}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_the_shipped_thigh_bundle_answers_the_same_from_a_float16_cache() -> None:
    """LiteMedSAM's embedding rounded to fp16: same candidates and clicks on phantoms."""
    bundle_dir = ROOT / "assets" / "bundles" / "thigh-mri"
    full = Predictor.from_dir(bundle_dir, cache_size=2)
    half = Predictor.from_dir(bundle_dir, cache_size=2, cache_dtype=torch.float16)
    for case in generate("thigh-mri", 2, seed=5151, size=256):
        image = phantom_display(case.image, "thigh-mri")
        gt = case.label == STRUCTURES["thigh-mri"]["vastus_lateralis"]
        ys, xs = np.nonzero(gt)
        box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        a = full.segment(image, box=box, multimask=False)[0]
        b = half.segment(image, box=box, multimask=False)[0]
        assert _iou(a.mask, b.mask) >= 0.99 and abs(a.score - b.score) < 0.005
        click = [Click(int(xs.mean()), int(ys.mean()))]
        ra = full.refine(image, click, a.logits, box)
        rb = half.refine(image, click, b.logits, box)
        assert _iou(ra.mask, rb.mask) >= 0.99
