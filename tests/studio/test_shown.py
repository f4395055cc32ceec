"""Pictures at a bounded size (issue 13, bounded cost): a large slice is drawn for the page at
most VIEW_SIDE / CANVAS_MAX_SIDE pixels, while its masks stay at the slice's own size for
storage and downloads; small slices are drawn unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio import views
from studio.editor import ADD_RGB, apply_strokes, editor_value
from studio.services import Services
from studio.shown import CANVAS_MAX_SIDE, VIEW_SIDE
from studio.state import CaseState
from tests.studio.conftest import write_png
from tests.studio.pictures import picture_shape
from tests.studio.test_handlers import Studio

BIG_HW = (1200, 2400)  # over both bounds; 2.9 MP, under the test settings' pixel budget


def _longest(image: object) -> int:
    """The longer side of a shown picture (an array, or the PNG file a screen slot names)."""
    shape = picture_shape(image)
    return max(int(shape[0]), int(shape[1]))


# -- the geometry (the rest is tests/adasam/test_shown.py) ---------------------------
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
    assert picture_shape(screen["correction"]) == (1024, CANVAS_MAX_SIDE, 3)
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
    assert picture_shape(clicked["correction"]) == (1024, CANVAS_MAX_SIDE, 3)


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
