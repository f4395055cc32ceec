from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from adasam.predictor import Predictor
from studio import pipeline
from studio.catalog import ModelChoice
from studio.errors import StudioError
from studio.state import CaseState, StructureWork
from tests.studio.conftest import new_case


@pytest.fixture(scope="module")
def predictor(studio_bundle_dir: Path) -> Predictor:
    return Predictor.from_dir(studio_bundle_dir, cache_size=4)


@pytest.fixture(scope="module")
def choice(studio_bundle_dir: Path) -> ModelChoice:
    return ModelChoice("custom", studio_bundle_dir, "tiny", "0", ("liver", "kidney"), False, None)


@pytest.fixture(scope="module")
def ran(predictor: Predictor, choice: ModelChoice) -> CaseState:
    return pipeline.run_pipeline(new_case(), predictor, choice, ["liver", "kidney"])


def _image(state: CaseState) -> np.ndarray:
    return np.asarray(state.slice.display)


def test_pipeline_gives_each_structure_three_candidates_best_first(ran: CaseState) -> None:
    assert [w.name for w in ran.works] == ["liver", "kidney"] and ran.active == "liver"
    assert ran.model_key == "custom" and dict(ran.timings_ms).keys() >= {"encode", "decode"}
    for w in ran.works:
        assert w.found and w.prompt_source == "cam" and len(w.candidates) == 3
        scores = [c.score for c in w.candidates]
        assert scores == sorted(scores, reverse=True)
        assert w.mask is not None and w.mask.shape == (128, 128) and w.mask.dtype == bool
        assert w.prompt_mask is not None and w.prompt_mask.shape == (128, 128)
        assert w.box is not None


def test_pipeline_refuses_no_structure_and_unknown_structures(
    predictor: Predictor, choice: ModelChoice
) -> None:
    with pytest.raises(StudioError, match="at least one structure"):
        pipeline.run_pipeline(new_case(), predictor, choice, [])
    with pytest.raises(StudioError, match="does not segment spleen"):
        pipeline.run_pipeline(new_case(), predictor, choice, ["spleen"])


def test_a_click_refines_the_chosen_mask_and_undo_and_reset_step_back(
    ran: CaseState, predictor: Predictor
) -> None:
    work = ran.work
    assert work is not None
    one = pipeline.click(work, predictor, _image(ran), 64, 64, "add")
    assert len(one.clicks) == 1 and one.clicks[0].positive and len(one.refined) == 1
    assert one.current is one.refined[-1] and one.original is work.original
    two = pipeline.click(one, predictor, _image(ran), 10, 10, "remove")
    assert [c.positive for c in two.all_clicks] == [True, False]
    assert pipeline.undo(two) is one
    back = pipeline.reset(two)
    assert back.clicks == () and back.refined == () and back.mask is work.mask
    assert back.stamp != work.stamp, "a reset is an edit of its own"
    assert pipeline.undo(back) is two
    with pytest.raises(StudioError, match="Nothing to undo"):
        pipeline.undo(work)


def test_clicks_outside_the_image_are_refused(ran: CaseState, predictor: Predictor) -> None:
    work = ran.work
    assert work is not None
    with pytest.raises(StudioError, match="inside the image"):
        pipeline.click(work, predictor, _image(ran), 128, 5, "add")


def test_a_box_takes_two_clicks_and_gives_three_user_candidates(
    ran: CaseState, predictor: Predictor
) -> None:
    work = ran.work
    assert work is not None
    corner = pipeline.click(work, predictor, _image(ran), 90, 80, "box")
    assert corner.corner == (90.0, 80.0) and corner.candidates is work.candidates
    boxed = pipeline.click(corner, predictor, _image(ran), 20, 30, "box")
    assert boxed.user_box == (20.0, 30.0, 90.0, 80.0) and boxed.corner is None
    assert boxed.prompt_source == "user" and len(boxed.candidates) == 3
    assert boxed.box == boxed.user_box


def _not_found(work: StructureWork) -> StructureWork:
    return StructureWork(work.name, 0.01, False, work.heatmap)


def test_a_structure_not_found_is_prompted_by_a_positive_click(
    ran: CaseState, predictor: Predictor
) -> None:
    work = ran.work
    assert work is not None
    missing = _not_found(work)
    assert missing.mask is None and missing.box is None
    with pytest.raises(StudioError, match="Add"):
        pipeline.click(missing, predictor, _image(ran), 50, 50, "remove")
    prompted = pipeline.click(missing, predictor, _image(ran), 50, 50, "add")
    assert prompted.prompt_source == "user" and len(prompted.candidates) == 3
    assert len(prompted.prompt_clicks) == 1 and prompted.clicks == ()
    refined = pipeline.click(prompted, predictor, _image(ran), 60, 60, "add")
    assert len(refined.all_clicks) == 2 and len(refined.refined) == 1


def test_choosing_a_candidate_drops_the_edits_of_the_previous_choice(
    ran: CaseState, predictor: Predictor
) -> None:
    work = ran.work
    assert work is not None
    edited = pipeline.click(work, predictor, _image(ran), 64, 64, "add")
    second = pipeline.choose_candidate(edited, 1)
    assert second.chosen == 1 and second.clicks == () and second.mask is work.candidates[1].mask
    assert pipeline.choose_candidate(second, 1) is second
    with pytest.raises(StudioError, match="candidate 1 to 3"):
        pipeline.choose_candidate(second, 3)
    with pytest.raises(StudioError, match="no candidates"):
        pipeline.choose_candidate(_not_found(work), 0)


def test_brush_replaces_the_mask_until_the_next_click(ran: CaseState, predictor: Predictor) -> None:
    work = ran.work
    assert work is not None and work.mask is not None
    painted = np.zeros_like(work.mask)
    painted[10:20, 10:20] = True
    brushed = pipeline.apply_brush(work, painted)
    assert brushed.mask is painted and brushed.previous is work
    assert pipeline.apply_brush(brushed, painted.copy()) is brushed, "no change, no edit"
    clicked = pipeline.click(brushed, predictor, _image(ran), 64, 64, "add")
    assert clicked.brushed is None
    with pytest.raises(StudioError, match="does not match"):
        pipeline.apply_brush(work, painted[:5])
    with pytest.raises(StudioError, match="no mask"):
        pipeline.apply_brush(_not_found(work), painted)


def test_the_case_state_replaces_one_structure_at_a_time(ran: CaseState) -> None:
    kidney = ran.works[1]
    moved = replace(ran, active="kidney")
    assert moved.work is kidney
    changed = moved.with_work(replace(kidney, chosen=2))
    assert changed.works[0] is ran.works[0] and changed.work is not None
    assert changed.work.chosen == 2
