"""The refinement guard on hand-made masks: local edits pass, the failures seen in the studio
(a click that inverts a mask, a dot lattice, a score collapse) are caught."""

from __future__ import annotations

import numpy as np
import pytest

from adasam.predictor import Candidate, Click
from adasam.refine_guard import GuardConfig, check_refinement, refine_checked

HW = (64, 64)


def _cand(mask: np.ndarray, score: float = 0.9) -> Candidate:
    return Candidate(mask, score, np.zeros((16, 16), np.float32))


def _rect(r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros(HW, bool)
    m[r0:r1, c0:c1] = True
    return m


def test_local_positive_and_negative_clicks_pass() -> None:
    prev = _cand(_rect(20, 40, 20, 40))
    grown = _cand(_rect(20, 40, 20, 50))  # an add click at the missed right part
    v = check_refinement(prev, grown, Click(45, 30, True))
    assert v.ok and v.reasons == () and v.metrics["kept"] == 1.0
    trimmed = _cand(_rect(20, 40, 20, 32))  # a remove click on the right part
    assert check_refinement(prev, trimmed, Click(36, 30, False)).ok
    shrunk = _cand(_rect(28, 34, 28, 34))  # a shrunken start: one click may triple it
    assert check_refinement(shrunk, _cand(_rect(26, 38, 26, 38)), Click(36, 36, True)).ok


def test_a_click_that_inverts_the_mask_is_rejected() -> None:
    muscle = _rect(20, 40, 20, 40)
    v = check_refinement(_cand(muscle), _cand(~muscle), Click(30, 30, True))
    assert not v.ok
    assert any("not inside" in r for r in v.reasons)
    assert any("dropped 100%" in r for r in v.reasons)


def test_a_dot_lattice_is_rejected() -> None:
    liver = _rect(10, 50, 10, 50)
    lattice = np.zeros(HW, bool)
    lattice[::6, ::6] = True
    lattice[30, 30] = False
    v = check_refinement(_cand(liver), _cand(lattice), Click(2, 2, False))
    assert not v.ok and any("pieces" in r for r in v.reasons)


def test_remove_click_that_adds_elsewhere_and_explosive_growth_are_rejected() -> None:
    prev = _cand(_rect(20, 30, 20, 30))
    moved = _cand(_rect(40, 60, 40, 60))
    assert not check_refinement(prev, moved, Click(25, 25, False)).ok
    everything = _cand(np.ones(HW, bool))
    v = check_refinement(prev, everything, Click(25, 25, True))
    assert not v.ok and any("grew" in r for r in v.reasons)


def test_score_collapse_is_rejected_only_after_a_real_drop() -> None:
    prev = _cand(_rect(20, 40, 20, 40), score=0.9)
    same_shape_low_score = _cand(_rect(20, 40, 20, 44), score=0.1)
    v = check_refinement(prev, same_shape_low_score, Click(42, 30, True))
    assert not v.ok and any("score" in r for r in v.reasons)
    low_before = _cand(_rect(20, 40, 20, 40), score=0.2)
    assert check_refinement(low_before, same_shape_low_score, Click(42, 30, True)).ok


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        GuardConfig(min_kept=1.5)
    with pytest.raises(ValueError):
        GuardConfig(max_growth=0.5)


class _Fixed:
    def __init__(self, out: Candidate) -> None:
        self.out, self.calls = out, []

    def refine(self, image, clicks, previous_logits=None, box=None) -> Candidate:
        self.calls.append((tuple(clicks), previous_logits, box))
        return self.out


def test_refine_checked_keeps_the_previous_mask_when_rejected() -> None:
    prev = _cand(_rect(20, 40, 20, 40))
    image = np.zeros((*HW, 3), np.uint8)
    bad = _Fixed(_cand(~prev.mask))
    out = refine_checked(bad, image, [Click(30, 30)], prev, box=(20, 20, 39, 39))  # type: ignore[arg-type]
    assert not out.accepted and out.candidate is prev and out.refined is bad.out
    assert bad.calls[0][1] is prev.logits and bad.calls[0][2] == (20, 20, 39, 39)
    good = _Fixed(_cand(_rect(20, 40, 20, 46)))
    out = refine_checked(good, image, [Click(43, 30)], prev)  # type: ignore[arg-type]
    assert out.accepted and out.candidate is good.out
    with pytest.raises(ValueError):
        refine_checked(good, image, [], prev)  # type: ignore[arg-type]
