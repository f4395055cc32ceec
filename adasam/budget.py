"""A per-request time budget, checked between the steps of a request.

One request (decode an upload, run the pipeline) must not hold the single model queue for
long: the pixel budget (checked from the header) and the downscaling of large slices for the
models (:mod:`adasam.scaling`) bound every step; the :class:`Deadline` stops a request that is
over its budget before it starts its next step (a running step is never interrupted: torch
cannot be stopped half-way), so the queue moves on to the next user.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from adasam.errors import TimeBudgetError


@dataclass
class Deadline:
    """``seconds`` from now (``clock``: monotonic seconds; tests hand in a fake one), of which
    ``spent`` were used already (a step of the request that ran before, such as decoding the
    upload in an earlier event of the same request)."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    spent: float = 0.0
    start: float = field(init=False)

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"a time budget must be positive, got {self.seconds}")
        if not self.spent >= 0:
            raise ValueError(f"time already spent cannot be negative, got {self.spent}")
        self.start = self.clock() - self.spent

    @property
    def elapsed(self) -> float:
        """Seconds since the request began."""
        return self.clock() - self.start

    @property
    def expired(self) -> bool:
        """Whether the budget is spent (for a loop that stops itself, such as propagation)."""
        return self.elapsed > self.seconds

    def check(self, done: str, next_step: str) -> None:
        """Before ``next_step``: raise when the budget is spent (``done`` says what took it).

        Raises:
            TimeBudgetError: with what took the time and what to do.
        """
        elapsed = self.elapsed
        if elapsed > self.seconds:  # same test as ``expired``
            raise TimeBudgetError(
                f"This request took {elapsed:.0f} s for {done}, more than its {self.seconds:g} s "
                f"budget, so {next_step} was not started (other users are waiting for the "
                "model). Try a smaller image or fewer structures, or ask the administrator to "
                "raise ADASAM_REQUEST_SECONDS."
            )
