from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from adasam.predictor import Click, Predictor
from studio import pipeline, views
from studio.catalog import ModelChoice
from studio.state import CaseSource, CaseState, StructureWork
from tests.studio.conftest import new_case


@pytest.fixture(scope="module")
def ran(studio_bundle_dir: Path) -> CaseState:
    predictor = Predictor.from_dir(studio_bundle_dir)
    choice = ModelChoice("custom", studio_bundle_dir, "tiny", "0", ("liver", "kidney"), False, None)
    return pipeline.run_pipeline(new_case(), predictor, choice, ["liver"])


def test_clicks_are_drawn_green_for_add_and_red_for_remove(ran: CaseState) -> None:
    work = ran.work
    assert work is not None
    display = np.zeros((128, 128, 3), np.uint8)
    clicked = work.then(clicks=(Click(20, 30, True), Click(100, 90, False)), brushed=None)
    image = views.correction_view(clicked, display)
    assert image.shape == (128, 128, 3)
    assert tuple(image[30, 20]) == views.POSITIVE_COLOUR
    assert tuple(image[90, 100]) == views.NEGATIVE_COLOUR


def test_candidate_scores_are_listed_beside_the_images_not_on_them(ran: CaseState) -> None:
    work = ran.work
    assert work is not None
    items = views.candidate_gallery(work, np.asarray(ran.slice.display))
    assert len(items) == 3 and all(isinstance(i, np.ndarray) for i in items), "no captions"
    lines = views.candidates_markdown(work).splitlines()[1:]
    assert len(lines) == 3 and "chosen" in lines[0] and "chosen" not in lines[1]
    assert f"{work.candidates[1].score:.2f}" in lines[1] and lines[1].startswith("- #2")
    for c, line in zip(work.candidates, lines, strict=True):
        area = int(np.count_nonzero(c.mask))
        assert (f"· {area} px" in line) if area else ("**empty**" in line)
    empty = replace(work.candidates[2], mask=np.zeros_like(work.candidates[2].mask))
    with_empty = replace(work, candidates=(*work.candidates[:2], empty))
    assert "#3" in (last := views.candidates_markdown(with_empty).splitlines()[-1])
    assert "**empty** (0 px" in last
    assert "IoU" in views.SCORE_NOTE and "below 0" in views.SCORE_NOTE


@pytest.mark.parametrize(("side", "k"), [(64, 16), (128, 8), (300, 3), (512, 2), (2000, 1)])
def test_the_canvas_scales_small_slices_up_by_whole_pixels(side: int, k: int) -> None:
    image = (np.arange(side * 7 * 3) % 251).astype(np.uint8).reshape(side, 7, 3)
    assert views.canvas_scale(image.shape) == k
    big = views.upscale(image)
    assert big.shape == (side * k, 7 * k, 3)
    assert np.array_equal(big[::k, ::k], image) and np.array_equal(big[k - 1 :: k, ::k], image)


def test_not_found_structures_say_how_to_prompt_sam(ran: CaseState) -> None:
    work = ran.work
    assert work is not None
    missing = StructureWork("kidney", 0.02, False, work.heatmap)
    assert "not found" in views.heatmap_label(missing)
    assert "draw a box" in views.prompts_label(missing)
    assert "was not found" in views.correction_status(missing)
    image = views.prompts_view(missing, np.asarray(ran.slice.display))
    assert image.shape == (128, 128, 3)


def test_the_result_json_describes_every_structure(ran: CaseState) -> None:
    result = views.result_json(ran)
    (entry,) = result["structures"]
    assert entry["name"] == "liver" and entry["found"] and len(entry["candidates"]) == 3
    assert entry["chosen"] == 0 and entry["mask_area_px"] == int(ran.works[0].mask.sum())
    assert result["shape"] == [128, 128] and "encode" in result["timings_ms"]
    assert views.result_json(None) == {}


def test_case_line_shows_technical_facts_only(ran: CaseState) -> None:
    line = views.case_markdown(ran.slice, CaseSource("upload", None, "CT_small.dcm"))
    assert "CT_small.dcm" in line and "128×128" in line and "ct-abdomen" in line
    for tag in ("Patient", "Institution", "Date"):
        assert tag not in line


def test_timings_are_listed_per_stage_without_the_model_load(ran: CaseState) -> None:
    text = views.timings_markdown(ran)
    assert "SAM encoder" in text and "GradCAM" in text and "model load" not in text
    assert views.timings_markdown(None) == ""
