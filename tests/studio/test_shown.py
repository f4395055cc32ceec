"""Pictures at a bounded size (issue 13, bounded cost): a large slice is drawn for the page at
most VIEW_SIDE / CANVAS_MAX_SIDE pixels, while its masks stay at the slice's own size for
storage and downloads; small slices are drawn unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adasam.predictor import Click
from adasam.prompts import Prompts
from studio import views
from studio.editor import ADD_RGB, apply_strokes, editor_value
from studio.services import Services
from studio.shown import CANVAS_MAX_SIDE, VIEW_SIDE, Shown, bounded_shape
from studio.state import CaseState
from tests.studio.conftest import write_png
from tests.studio.test_handlers import Studio

BIG_HW = (1200, 2400)  # over both bounds; 2.9 MP, under the test settings' pixel budget


def _longest(image: np.ndarray) -> int:
    return max(int(image.shape[0]), int(image.shape[1]))


# -- the geometry ---------------------------------------------------------------------------
def test_a_slice_within_the_bound_is_drawn_from_its_own_pixels() -> None:
    display = np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8)
    shown = Shown.of(display, VIEW_SIDE)
    assert shown.image is display and not shown.shrunk
    mask = np.zeros((300, 200), bool)
    assert shown.mask(mask) is mask and shown.point(3.0, 4.0) == (3.0, 4.0)
    assert shown.box((1.0, 2.0, 3.0, 4.0)) == (1.0, 2.0, 3.0, 4.0)


def test_a_large_slice_is_shrunk_with_its_masks_and_coordinates() -> None:
    display = np.zeros((*BIG_HW, 3), np.uint8)
    display[:, 1200:] = 200  # right half bright
    shown = Shown.of(display, 1200)
    assert shown.hw == bounded_shape(BIG_HW, 1200) == (600, 1200) and shown.slice_hw == BIG_HW
    assert shown.image[:, 601:].min() == 200 and shown.image[:, :599].max() == 0
    mask = np.zeros(BIG_HW, bool)
    mask[400:800, 200:1000] = True  # → rows 200:400, columns 100:500 at half size
    small = shown.mask(mask)
    assert small.shape == (600, 1200) and small.dtype == bool
    assert int(small.sum()) == 200 * 400 and small[200:400, 100:500].all()
    heat = np.zeros(BIG_HW, np.float32)
    heat[:600] = 1.0
    small_heat = shown.heatmap(heat)
    assert np.allclose(small_heat[:300], 1.0) and np.allclose(small_heat[300:], 0.0)
    assert shown.point(1999.0, 999.0) == pytest.approx((999.25, 499.25))  # pixel centres
    assert shown.box((200.0, 400.0, 999.0, 799.0)) == pytest.approx((100.0, 200.0, 499.0, 399.0))
    (click,) = shown.clicks((Click(1999.0, 999.0, False),))
    assert (click.x, click.y, click.positive) == pytest.approx((999.25, 499.25, False))
    prompts = Prompts(mask, np.array([200.0, 400.0, 999.0, 799.0]), np.zeros((4, 4)), None)
    moved = shown.prompts(prompts)
    assert moved.region.shape == (600, 1200) and moved.box[0] == pytest.approx(100.0)
    again = Shown.of(shown, 600)  # a shrunk picture shrinks further, same slice
    assert again.hw == (300, 600) and again.slice_hw == BIG_HW


@pytest.mark.parametrize(("hw", "canvas"), [((128, 128), (1024, 1024)), (BIG_HW, (1024, 2048))])
def test_canvas_clicks_map_back_to_slice_pixels(
    hw: tuple[int, int], canvas: tuple[int, int]
) -> None:
    assert views.canvas_shape(hw) == canvas
    h, w = hw
    assert views.canvas_to_slice(0, 0, hw) == (0.0, 0.0)
    assert views.canvas_to_slice(canvas[1] - 1, canvas[0] - 1, hw) == (w - 1, h - 1)
    x, y = views.canvas_to_slice(canvas[1] // 2, canvas[0] // 4, hw)
    assert abs(x - w / 2) <= w / canvas[1] and abs(y - h / 4) <= h / canvas[0]


# -- through the studio ---------------------------------------------------------------------
@pytest.fixture
def big_png(tmp_path: Path) -> Path:
    """A 2400 × 1200 PNG: the CT example stretched (so the tiny model finds something)."""
    from adasam.imaging import load_slice
    from tests.studio.conftest import CT_SMALL

    small = np.asarray(load_slice(CT_SMALL).display)
    big = Image.fromarray(small).resize((BIG_HW[1], BIG_HW[0]), Image.Resampling.BILINEAR)
    return write_png(tmp_path / "big.png", np.asarray(big))


@pytest.fixture
def ran_big(services: Services, big_png: Path) -> tuple[Studio, dict]:
    studio = Studio(services)
    state = studio.cases.load_upload(str(big_png), 2, "custom")["state"]
    return studio, studio.segment.run(state, "custom", ["liver"])


def test_a_large_slice_is_shown_bounded_and_its_masks_keep_the_slice_size(
    ran_big: tuple[Studio, dict],
) -> None:
    studio, screen = ran_big
    state: CaseState = screen["state"]
    assert state.slice.shape == BIG_HW
    assert _longest(screen["heatmap"]) == VIEW_SIDE and _longest(screen["prompts"]) == VIEW_SIDE
    assert [_longest(i) for i in screen["gallery"]["value"]] == [VIEW_SIDE] * 3
    assert screen["correction"].shape == (1024, CANVAS_MAX_SIDE, 3)
    work = state.work
    assert work is not None and work.mask is not None
    assert work.mask.shape == BIG_HW and work.heatmap.shape == BIG_HW
    assert all(c.mask.shape == BIG_HW for c in work.candidates)
    (mask_png, _nifti, overlay_png) = studio.review.download_files(state)
    assert Image.open(mask_png).size == (BIG_HW[1], BIG_HW[0]), "downloads keep the full size"
    assert Image.open(overlay_png).size == (BIG_HW[1], BIG_HW[0])


def test_a_click_on_a_shrunk_canvas_lands_on_the_slice_pixel_under_it(
    ran_big: tuple[Studio, dict],
) -> None:
    import gradio as gr

    studio, screen = ran_big
    event = gr.SelectData(None, {"index": [1024, 384], "value": None, "selected": True})
    clicked = studio.segment.refine_ui(screen["state"], "Add (+)", event)
    (click,) = clicked["state"].work.clicks
    assert (click.x, click.y) == (1200.0, 450.0)  # canvas 2048 wide for 2400 slice pixels
    assert clicked["correction"].shape == (1024, CANVAS_MAX_SIDE, 3)


def test_the_brush_editor_shows_a_bounded_background_and_strokes_keep_the_slice_size() -> None:
    display = np.full((*BIG_HW, 3), 90, np.uint8)
    mask = np.zeros(BIG_HW, bool)
    value = editor_value(display, mask)
    background = value["background"]
    assert background.shape == (1024, CANVAS_MAX_SIDE, 4)
    layer = np.zeros_like(background)
    layer[768:800, 1024:1100] = (*ADD_RGB, 153)  # painted at the editor's size
    out = apply_strokes(mask, {"background": background, "layers": [layer], "composite": None})
    assert out.shape == BIG_HW
    rows, cols = np.nonzero(out)
    assert rows.min() == 900 and cols.min() == 1200  # 768 × 1200/1024, 1024 × 2400/2048


def test_the_api_returns_bounded_pictures_and_a_full_size_result(
    services: Services, big_png: Path
) -> None:
    studio = Studio(services)
    out = studio.api.predict(str(big_png), "custom", "liver", -1, "")
    assert out["api_json"]["shape"] == list(BIG_HW)
    assert _longest(out["api_heatmap"]) == VIEW_SIDE and _longest(out["api_prompts"]) == VIEW_SIDE
    assert [_longest(image) for image, _ in out["api_candidates"]] == [VIEW_SIDE] * 3
    assert out["state"].work.mask.shape == BIG_HW


def test_the_quality_tab_shows_a_stored_large_mask_bounded(services: Services) -> None:
    import storage
    from studio.quality_handlers import _case_image

    store = services.store
    pixels = np.zeros(BIG_HW, np.float32)
    display = np.zeros((*BIG_HW, 3), np.uint8)
    record = storage.record_slice(
        store,
        content_hash=storage.pixels_hash(pixels),
        pixels=pixels,
        display=display,
        modality="CT",
    )
    mask = np.zeros(BIG_HW, bool)
    mask[200:800, 400:1600] = True
    prediction = storage.record_prediction(
        store, slice_hash=record.content_hash, structure="liver", candidates=[mask], scores=[0.8]
    )
    (candidate_id,) = [c.id for c in prediction.candidates]
    image = _case_image(store, candidate_id)
    assert image.shape == (1024, CANVAS_MAX_SIDE, 3)
    assert image[100:400, 200:800].any(), "the mask's outline is drawn where it is"
    assert np.array_equal(storage.load_candidate_mask(store, candidate_id), mask)
