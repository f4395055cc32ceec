"""Refinement users can trust: a wrecking click is refused (and can be insisted on), a sharply
changed mask needs a second submit, the rating form can be cleared."""

from __future__ import annotations

import numpy as np
import pytest

from adasam.predictor import Candidate
from adasam.refine_guard import GuardConfig
from studio import pipeline
from studio.config import StudioSettings
from studio.review_handlers import ReviewHandlers
from studio.state import CaseState, StructureWork
from studio.submit_check import needs_confirmation
from studio.views import result_json
from tests.studio.conftest import new_case

HW = (128, 128)


def _rect(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros(HW, bool)
    m[r0:r1, c0:c1] = True
    return m


def _cand(mask: np.ndarray, score: float = 0.9) -> Candidate:
    return Candidate(mask, score, np.where(mask[::4, ::4], 1.0, -1.0).astype(np.float32))


class _Stub:
    """A predictor whose refinement is whatever the test says."""

    def __init__(self, answer: Candidate) -> None:
        self.answer, self.calls = answer, 0

    def refine(self, image, clicks, previous_logits=None, box=None) -> Candidate:
        self.calls += 1
        return self.answer


def _work() -> StructureWork:
    good = _cand(_rect(40, 80, 40, 80))
    return StructureWork(
        name="vastus_lateralis",
        probability=0.9,
        found=True,
        heatmap=np.zeros(HW, np.float32),
        candidates=(good, _cand(_rect(30, 90, 30, 90)), _cand(_rect(50, 70, 50, 70))),
        prompt_source="user",
        user_box=(40.0, 40.0, 79.0, 79.0),
    )


IMAGE = np.zeros((*HW, 3), np.uint8)


def test_a_click_that_wrecks_the_mask_is_refused_and_the_mask_stays() -> None:
    work = _work()
    wreck = _Stub(_cand(~work.mask))  # everything except the muscle
    out = pipeline.click(work, wreck, IMAGE, 60, 60, "add", GuardConfig())  # type: ignore[arg-type]
    assert out.rejected is not None and "Kept the previous mask" in out.rejected[2]
    assert result_json(_case(out))["structures"][0]["refused_click"] == out.rejected[2]
    assert out.mask is work.mask and out.clicks == () and out.stamp == work.stamp
    assert out.previous is work.previous, "a refusal is no undo step"
    # the same spot again: the user insists, SAM's answer is applied
    forced = pipeline.click(out, wreck, IMAGE, 60.2, 59.8, "add", GuardConfig())  # type: ignore[arg-type]
    assert wreck.calls == 1 and forced.rejected is None
    assert len(forced.clicks) == 1 and np.array_equal(forced.mask, ~work.mask)
    # another spot is checked afresh
    again = pipeline.click(out, wreck, IMAGE, 70, 70, "add", GuardConfig())  # type: ignore[arg-type]
    assert wreck.calls == 2 and again.rejected is not None and again.clicks == ()


def test_a_local_correction_passes_and_no_guard_means_raw_answers() -> None:
    work = _work()
    grown = _Stub(_cand(_rect(40, 80, 40, 90)))
    out = pipeline.click(work, grown, IMAGE, 85, 60, "add", GuardConfig())  # type: ignore[arg-type]
    assert out.rejected is None and len(out.clicks) == 1 and out.mask is grown.answer.mask
    wreck = _Stub(_cand(~work.mask))
    raw = pipeline.click(work, wreck, IMAGE, 60, 60, "add", None)  # type: ignore[arg-type]
    assert raw.rejected is None and raw.mask is wreck.answer.mask


def _case(work: StructureWork) -> CaseState:
    state = new_case()
    assert state.slice.shape == HW
    return CaseState(
        token=state.token,
        slice=state.slice,
        source=state.source,
        loaded_at=state.loaded_at,
        works=(work,),
        active=work.name,
    )


def test_submitting_a_sharply_changed_mask_needs_a_second_press() -> None:
    state = _case(_work())
    assert needs_confirmation(state, state.work.mask.copy()) is None
    lattice = np.zeros(HW, bool)
    lattice[::8, ::8] = True
    warned = needs_confirmation(state, lattice)
    assert warned is not None
    confirmed, message = warned
    assert "differs sharply" in message and "Dice 0.0" in message
    assert needs_confirmation(confirmed, lattice) is None, "the same mask again: store it"
    other = lattice.copy()
    other[1, 1] = True
    assert needs_confirmation(confirmed, other) is not None, "a different mask: ask again"


def test_the_rating_form_clears_and_the_guard_is_on_by_default() -> None:
    assert ReviewHandlers.clear_rating() == {
        "score": None,
        "verdict": None,
        "rubric": [],
        "comment": "",
    }
    assert StudioSettings().refine_guard is True
    assert StudioSettings.from_env({"ADASAM_REFINE_GUARD": "0"}).refine_guard is False
    with pytest.raises(Exception, match="ADASAM_REFINE_GUARD"):
        StudioSettings.from_env({"ADASAM_REFINE_GUARD": "maybe"})
