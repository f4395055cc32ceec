"""The gate's non-inferiority rule on hand-made scores: the bound, and what it lets in."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest

from adasam.errors import ConfigError
from adasam.gate import CaseScore, GateConfig, judge, upper_bound


def _scores(dice: list[float] | np.ndarray, noc: list[int] | np.ndarray) -> list[CaseScore]:
    return [
        CaseScore(i, float(d), int(n), int(n), ())
        for i, (d, n) in enumerate(zip(dice, noc, strict=True))
    ]


def _pair(n: int, dice_change: list[float], noc_change: list[int]) -> tuple[list, list]:
    """(candidate, active) on ``n`` cases: the active's Dice 0.5..0.8 and NoC@90 4..8, the
    candidate's changed by the given per-case amounts (cycled)."""
    act_dice = np.linspace(0.5, 0.8, n)
    act_noc = 4 + np.arange(n) % 5
    d = np.resize(np.asarray(dice_change, float), n)
    k = np.resize(np.asarray(noc_change, int), n)
    return _scores(act_dice + d, act_noc + k), _scores(act_dice, act_noc)


def test_the_bound_on_hand_made_numbers():
    # mean 0.01, sd = sqrt(0.001 / 3) = 0.018257, se = sd / 2; t(0.95, 3 df) = 2.353363
    b = upper_bound([0.02, -0.01, 0.03, 0.0], 0.95)
    assert b.n == 4 and b.mean == pytest.approx(0.01)
    assert b.se == pytest.approx(0.0091287, abs=1e-6)
    assert b.upper == pytest.approx(0.01 + 2.353363 * 0.0091287, abs=1e-5)  # 0.031483
    assert upper_bound([0.02, -0.01, 0.03, 0.0], 0.5).upper == pytest.approx(0.01)  # t = 0
    assert upper_bound(np.full(5, 0.25), 0.95).upper == pytest.approx(0.25)  # no spread
    # the small-sample t quantile, not the normal 1.645: two cases have t(0.95, 1) = 6.3138
    assert upper_bound([0.0, 0.1], 0.95).upper == pytest.approx(0.05 + 6.3138 * 0.05, abs=1e-4)
    for bad in ([0.1], [[0.1, 0.2]], [0.1, float("nan")]):
        with pytest.raises(ValueError):
            upper_bound(bad, 0.95)
    with pytest.raises(ValueError, match="confidence"):
        upper_bound([0.1, 0.2], 1.0)


def test_a_candidate_equal_to_the_active_on_few_cases_is_refused_for_lack_of_evidence():
    cand, act = _pair(3, [0.0], [0])
    few = judge(cand, act, GateConfig())
    assert not few.activate and few.reason.startswith("only 3 held-out correction(s), 8 needed")
    assert few.dice_bound is None
    # equal on average on 8 cases, but noisy (±0.05): the bound is far above the tolerance
    cand, act = _pair(8, [0.05, -0.05], [0])
    noisy = judge(cand, act, GateConfig())
    assert noisy.delta_dice == pytest.approx(0.0, abs=1e-9) and not noisy.activate
    assert noisy.dice_bound == pytest.approx(1.894579 * 0.05 / np.sqrt(8 * 7 / 8), abs=1e-4)
    assert noisy.reason == (
        f"proposal Dice may be worse by up to {noisy.dice_bound:.3f} (95 % bound) ≥ tolerance "
        "0.01 (mean change +0.000); 8 held-out corrections"
    )


def test_a_clearly_better_candidate_on_enough_cases_is_accepted_by_the_defaults():
    cand, act = _pair(10, [0.10, 0.02, 0.06, 0.0, 0.08], [-2, 0, -1, 1, -3])
    v = judge(cand, act, GateConfig())
    assert v.activate and v.reason.startswith("not worse: proposal Dice loss at most -0.0")
    assert v.delta_dice == pytest.approx(0.052) and v.delta_noc90 == pytest.approx(-1.0)
    assert v.dice_bound < 0 and v.noc_bound < 0.5 and v.confidence == 0.95
    assert "10 held-out corrections" in v.reason


def test_a_slightly_worse_candidate_within_tolerance_on_many_cases_is_accepted():
    cand, act = _pair(40, [-0.023, 0.017], [0, 1, 0, -1])  # mean Dice −0.003, sd 0.02
    v = judge(cand, act, GateConfig())
    assert v.delta_dice == pytest.approx(-0.003) and v.activate
    assert 0.003 < v.dice_bound < 0.01
    # the same loss and spread on 8 cases is not enough evidence
    cand, act = _pair(8, [-0.023, 0.017], [0])
    few = judge(cand, act, GateConfig())
    assert not few.activate and few.dice_bound > 0.01
    assert few.reason.startswith("proposal Dice may be worse by up to 0.017 (95 % bound)")


def test_a_worse_candidate_is_refused_with_the_failed_bound_in_the_reason():
    cand, act = _pair(12, [-0.03, -0.01, -0.02], [0])
    v = judge(cand, act, GateConfig())
    assert not v.activate and v.delta_dice == pytest.approx(-0.02)
    assert v.reason.startswith(
        f"proposal Dice may be worse by up to {v.dice_bound:.3f} (95 % bound) ≥ tolerance 0.01"
    )
    assert "NoC@90" not in v.reason and v.reason.endswith("; 12 held-out corrections")
    cand, act = _pair(12, [0.01], [1, 2, 1])  # better proposals, more clicks
    clicks = judge(cand, act, GateConfig())
    assert not clicks.activate and clicks.noc_bound > 0.5
    assert clicks.reason.startswith(
        f"NoC@90 may be worse by up to {clicks.noc_bound:.2f} clicks (95 % bound) ≥ tolerance 0.5"
    )
    cand, act = _pair(12, [-0.05], [2])  # both
    both = judge(cand, act, GateConfig())
    assert not both.activate and "proposal Dice may be" in both.reason
    assert "; NoC@90 may be worse by up to 2.00 clicks" in both.reason


def test_a_stricter_confidence_widens_the_bound():
    cand, act = _pair(10, [0.03, -0.01, 0.0], [0])
    loose = judge(cand, act, GateConfig(confidence=0.8))
    strict = judge(cand, act, GateConfig(confidence=0.99))
    assert loose.dice_bound < strict.dice_bound and loose.delta_dice == strict.delta_dice


def test_the_verdict_keeps_the_stored_keys_and_is_json():
    cand, act = _pair(8, [0.02], [0])
    stored = json.loads(json.dumps(judge(cand, act, GateConfig()).to_dict()))
    # what the Models tab, `models list` and `simulate`'s goal read from stored verdicts
    assert {"activate", "reason", "candidate", "active", "delta_dice", "delta_noc90"} <= set(stored)
    assert stored["candidate"]["cases"] == 8 and stored["activate"] is True


def test_the_config_is_validated_and_documented():
    assert all(f.metadata.get("help") for f in fields(GateConfig))
    assert GateConfig().min_cases == 8
    for bad in ({"min_cases": 1}, {"confidence": 1.0}, {"confidence": 0.4},
                {"dice_tolerance": -0.1}, {"heldout_share": 1.0}, {"clicks": 0}):  # fmt: skip
        with pytest.raises(ConfigError):
            GateConfig(**bad)  # type: ignore[arg-type]
