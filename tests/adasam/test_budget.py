"""The per-request time budget: time already spent by an earlier step counts, and a loop can
ask whether the budget is spent without raising."""

from __future__ import annotations

import pytest

from adasam.budget import Deadline
from adasam.errors import TimeBudgetError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_time_spent_before_counts_against_the_budget() -> None:
    clock = FakeClock()
    deadline = Deadline(10, clock=clock, spent=7)
    assert deadline.elapsed == 7 and not deadline.expired
    deadline.check("loading the case", "the pipeline")
    clock.now += 3.5
    assert deadline.expired
    with pytest.raises(TimeBudgetError, match=r"took 10 s for loading the case.*pipeline"):
        deadline.check("loading the case", "the pipeline")


def test_a_fresh_budget_is_not_spent_and_bad_values_are_refused() -> None:
    clock = FakeClock()
    deadline = Deadline(10, clock=clock)
    clock.now += 10
    assert not deadline.expired, "exactly the budget is still within it"
    clock.now += 0.01
    assert deadline.expired
    with pytest.raises(ValueError, match="negative"):
        Deadline(10, spent=-1)
