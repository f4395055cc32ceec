"""Large slices go to the models downscaled; what comes back is at full size (issue 13)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adasam import scaling
from adasam.predictor import Click, Predictor


@pytest.fixture(scope="module")
def predictor(tiny_bundle_dir: Path) -> Predictor:
    return Predictor.from_dir(tiny_bundle_dir, "cpu", cache_size=4)


def _image(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    disc = ((yy - h * 0.45) ** 2 / (h * 0.2) ** 2 + (xx - w * 0.55) ** 2 / (w * 0.2) ** 2) < 1
    grey = np.where(disc, 200, 40).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _agrees_where_confident(
    predictor: Predictor, logits: np.ndarray, full_mask: np.ndarray, small_hw: tuple[int, int]
) -> None:
    """The full-size mask, sampled at the centres of the small slice's pixels, says what the
    small slice's own mask logits say wherever those are clearly on one side (the half of the
    pixels farthest from the threshold).

    (An untrained decoder's logits are small, fine-grained patterns, so masks resampled to
    another grid differ along every edge; away from the threshold the two must agree.)"""
    frame = predictor.frame(small_hw)
    t = torch.as_tensor(logits, dtype=torch.float32)[None, None]
    with torch.inference_mode():
        small = frame.lowres_to_original(t)[0, 0].numpy()
    h, w = full_mask.shape
    rows = np.rint((np.arange(small_hw[0]) + 0.5) * h / small_hw[0] - 0.5).astype(int)
    cols = np.rint((np.arange(small_hw[1]) + 0.5) * w / small_hw[1] - 0.5).astype(int)
    sampled = full_mask[np.ix_(rows, cols)]
    threshold = predictor.bundle.sam.mask_threshold
    margin = np.abs(small - threshold)
    confident = margin > np.quantile(margin, 0.5)  # the clearer half of the slice
    agree = sampled[confident] == (small[confident] > threshold)
    assert agree.mean() > 0.98, agree.mean()


def test_a_small_slice_goes_through_unchanged(predictor: Predictor) -> None:
    image = _image(96, 80)
    assert scaling.downscaled(image, 128) is image
    direct = predictor.predict(image)
    scaled = scaling.predict(predictor, image, max_side=128)
    assert "rescale" not in scaled.timings_ms
    for a, b in zip(direct.structures, scaled.structures, strict=True):
        np.testing.assert_array_equal(a.heatmap, b.heatmap)
        for ca, cb in zip(a.candidates, b.candidates, strict=True):
            np.testing.assert_array_equal(ca.mask, cb.mask)


def test_a_large_slice_is_predicted_downscaled_and_returned_at_full_size(
    predictor: Predictor,
) -> None:
    image = _image(384, 320)
    small = scaling.downscaled(image, 128)
    assert small.shape == (128, 107, 3)
    on_small = predictor.predict(small)
    full = scaling.predict(predictor, image, max_side=128)
    assert full.image_hw == (384, 320) and full.timings_ms["rescale"] >= 0
    for s, ref in zip(full.structures, on_small.structures, strict=True):
        assert s.heatmap.shape == (384, 320) and s.heatmap.dtype == np.float32
        assert float(s.heatmap.min()) >= 0.0 and float(s.heatmap.max()) <= 1.0
        assert s.probability == ref.probability and s.found == ref.found
        if s.prompts is None:
            continue
        x0, y0, x1, y1 = s.prompts.box
        assert 0 <= x0 <= x1 <= 319 and 0 <= y0 <= y1 <= 383
        rx0, _, _, ry1 = ref.prompts.box  # type: ignore[union-attr]
        assert abs(x0 - rx0 * 320 / 107) <= 3 and abs(y1 - ry1 * 3) <= 3
        assert s.prompts.region.shape == (384, 320)
        for c, r in zip(s.candidates, ref.candidates, strict=True):
            assert c.mask.shape == (384, 320) and c.mask.dtype == np.bool_
            np.testing.assert_array_equal(c.logits, r.logits)
            _agrees_where_confident(predictor, r.logits, c.mask, (128, 107))


def test_segment_and_refine_map_user_prompts_to_the_model_frame(predictor: Predictor) -> None:
    image = _image(384, 320)
    small = scaling.downscaled(image, 128)
    sx, sy = 107 / 320, 128 / 384
    box = (100.0, 90.0, 260.0, 250.0)
    full = scaling.segment(predictor, image, box=box, max_side=128)
    ref = predictor.segment(small, box=(box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy))
    assert len(full) == 3 and all(c.mask.shape == (384, 320) for c in full)
    np.testing.assert_allclose(full[0].logits, ref[0].logits)
    _agrees_where_confident(predictor, ref[0].logits, full[0].mask, (128, 107))
    one = scaling.refine(
        predictor, image, [Click(176.0, 173.0)], previous_logits=full[0].logits, max_side=128
    )
    assert one.mask.shape == (384, 320)
    ref_one = predictor.refine(
        small, [Click((176.5) * sx - 0.5, (173.5) * sy - 0.5)], previous_logits=ref[0].logits
    )
    np.testing.assert_allclose(one.logits, ref_one.logits, atol=1e-4)
