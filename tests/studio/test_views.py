from __future__ import annotations

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


def test_candidates_are_captioned_with_their_scores_and_the_chosen_one(ran: CaseState) -> None:
    work = ran.work
    assert work is not None
    items = views.candidate_gallery(work, np.asarray(ran.slice.display))
    assert len(items) == 3
    assert "chosen" in items[0][1] and "chosen" not in items[1][1]
    assert f"{work.candidates[1].score:.2f}" in items[1][1]


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
