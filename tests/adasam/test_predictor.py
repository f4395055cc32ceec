from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from adasam.bundle import load_bundle
from adasam.config import ClassifierConfig
from adasam.predictor import STAGES, Click, Predictor, image_key


def _image(h: int = 90, w: int = 120, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def predictor(tiny_bundle_dir: Path) -> Predictor:
    return Predictor.from_dir(tiny_bundle_dir, cache_size=2)


def test_predict_gives_three_sorted_candidates_at_slice_size(predictor: Predictor) -> None:
    pred = predictor.predict(_image())
    assert pred.image_hw == (90, 120) and set(pred.timings_ms) == set(STAGES)
    assert pred.model["name"] == "tiny"
    for s in pred.structures:
        assert s.heatmap.shape == (90, 120)
        assert s.found, "threshold 0.01 → every structure found"
        assert len(s.candidates) == 3
        scores = [c.score for c in s.candidates]
        assert scores == sorted(scores, reverse=True)
        for c in s.candidates:
            assert c.mask.shape == (90, 120) and c.mask.dtype == bool
            assert c.logits.shape == (64, 64)
        assert s.prompts is not None and s.prompts.box.shape == (4,)


def test_not_found_structures_get_no_prompts(tiny_bundle_dir: Path) -> None:
    bundle = load_bundle(tiny_bundle_dir)
    bundle.config = replace(
        bundle.config,
        classifier=ClassifierConfig(backbone="resnet10", image_size=64, threshold=0.9999),
    )
    pred = Predictor(bundle).predict(_image(), ["kidney"])
    (s,) = pred.structures
    assert s.name == "kidney" and not s.found and s.prompts is None and s.candidates == ()
    assert s.heatmap.shape == (90, 120)


def test_embedding_cache_is_lru_and_keyed_by_model_version(tiny_bundle_dir: Path) -> None:
    p = Predictor(load_bundle(tiny_bundle_dir), cache_size=2)
    a, b, c = _image(seed=1), _image(seed=2), _image(seed=3)
    assert p.embedding(a)[1] is False and p.embedding(a)[1] is True
    p.embedding(b)
    p.embedding(a)  # a is now most recent
    p.embedding(c)  # evicts b
    assert p.embedding(a)[1] is True and p.embedding(b)[1] is False
    p.bundle.config = replace(p.bundle.config, version="2")
    assert p.embedding(a)[1] is False
    assert image_key(a) != image_key(b)


def test_second_predict_uses_cached_embedding(predictor: Predictor) -> None:
    img = _image(seed=5)
    first = predictor.predict(img)
    second = predictor.predict(img)
    assert not first.embedding_cached and second.embedding_cached
    for s1, s2 in zip(first.structures, second.structures, strict=True):
        np.testing.assert_array_equal(s1.candidates[0].mask, s2.candidates[0].mask)


def test_segment_matches_segment_anything_sampredictor(tiny_bundle_dir: Path) -> None:
    """Same embedding and prompts → our decode path equals SamPredictor's exactly."""
    bundle = load_bundle(tiny_bundle_dir)
    with torch.no_grad():
        for n, prm in bundle.sam.named_parameters():
            if "lora_B" in n:
                prm.normal_(0, 0.1)
    ours = Predictor(bundle)
    img = _image(70, 150, seed=7)
    ref = SamPredictor(bundle.sam)
    ref.set_image(img)
    ref.features = ours.embedding(img)[0]
    box = np.array([20.0, 10.0, 100.0, 60.0])
    pts = np.array([[50.0, 30.0], [90.0, 20.0]])
    masks, scores, low = ref.predict(
        point_coords=pts, point_labels=np.array([1, 0]), box=box, multimask_output=True
    )
    cands = ours.segment(img, box=box, clicks=[Click(50, 30, True), Click(90, 20, False)])
    order = np.argsort(-scores, kind="stable")
    for c, j in zip(cands, order, strict=True):
        assert c.score == pytest.approx(float(scores[j]), abs=1e-5)
        np.testing.assert_array_equal(c.mask, masks[j])
        np.testing.assert_allclose(c.logits, low[j], atol=1e-5)


def test_refine_returns_one_mask_and_uses_previous_logits(predictor: Predictor) -> None:
    img = _image(seed=9)
    s = predictor.predict(img).structures[0]
    prev = s.candidates[0].logits
    refined = predictor.refine(img, [Click(60, 45, True)], prev, box=s.prompts.box)
    assert refined.mask.shape == (90, 120) and refined.logits.shape == prev.shape
    without = predictor.refine(img, [Click(60, 45, True)], None, box=s.prompts.box)
    assert not np.array_equal(refined.logits, without.logits)


def test_bad_inputs_raise_clear_errors(predictor: Predictor) -> None:
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="unknown structure"):
        predictor.predict(_image(), ["spleen"])
    with pytest.raises(ValueError, match="box"):
        predictor.segment(_image())
    with pytest.raises(ValueError, match="XYXY"):
        predictor.segment(_image(), box=[50, 10, 20, 40])
    with pytest.raises(ValueError, match="click"):
        predictor.refine(_image(), [])


def test_thresholds_can_be_overridden_per_call(predictor: Predictor) -> None:
    image = _image()
    assert predictor.predict(image, ["liver"]).structure("liver").found  # bundle: 0.01
    missed = predictor.predict(image, ["liver"], presence_threshold=0.9999).structure("liver")
    assert not missed.found and missed.candidates == ()
    low = predictor.predict(image, ["liver"], cam_threshold=0.1).structure("liver")
    high = predictor.predict(image, ["liver"], cam_threshold=0.9).structure("liver")
    assert low.prompts is not None and high.prompts is not None
    assert low.prompts.region.sum() > high.prompts.region.sum()
    assert predictor.bundle.config.prompts.threshold == 0.4  # the bundle is untouched
    with pytest.raises(ValueError, match="presence_threshold"):
        predictor.predict(image, presence_threshold=1.0)
