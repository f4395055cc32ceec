"""Worklist leases bounded per client address, against made-up names (issue 13).

With the typed-name identity anyone can type a new name, and each name holds one worklist
lease (:func:`storage.walk_case` moves it on), so one client typing six names reserved all six
cases in 2.1 s. :class:`AddressLeases` remembers which names took a case from each client
address (:func:`studio.identity.request_address`, the same address as the log-in lockout) and
refuses a further name once ``limit`` of them hold a live lease in storage
(:func:`storage.lease_holders`: a finished, released or expired case no longer counts). A name
that already took a case from the address keeps walking.

In memory, per process: addresses are not stored (no schema change, nothing identifying on
disk), so a restart forgets them (the leases themselves stay in storage) and several server
processes on one database each keep their own bound. Requests without a client address (no
HTTP request) are not bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager

from storage.worklist import DEFAULT_LEASE
from studio.errors import StudioError

LEASE_MINUTES = round(DEFAULT_LEASE.total_seconds() / 60)
Holders = Callable[[Collection[str]], Collection[str]]
"""Which of the given names hold a live lease now (:func:`storage.lease_holders`)."""


class AddressLeases:
    """The names that took worklist cases from each client address (thread-safe).

    Args:
        remember_s: how long a name stays attributed to an address after its last case (the
            lease's length: after it, that walk's lease has expired anyway).
        clock: seconds, monotonic (a test hands in a fake one).
    """

    MAX_TRACKED = 4096
    """Addresses kept before the stale ones are pruned (bounds memory under a spray)."""

    def __init__(
        self,
        remember_s: float = DEFAULT_LEASE.total_seconds(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.remember_s = remember_s
        self._clock = clock
        self._names: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> dict[str, float]:
        names = self._names.get(address, {})
        return {n: t for n, t in names.items() if t > now - self.remember_s}

    def _prune(self, now: float) -> None:
        if len(self._names) <= self.MAX_TRACKED:
            return
        for address in list(self._names):
            if not self._recent(address, now):
                del self._names[address]

    @contextmanager
    def reserve(
        self, address: str | None, name: str, limit: int | None, holders: Holders
    ) -> Iterator[None]:
        """Let ``name`` take a worklist case from ``address`` inside the ``with`` block.

        Checks and records under one lock, so parallel requests from one address cannot all
        pass the check. ``limit`` None (or no address): no bound.

        Raises:
            StudioError: ``limit`` other names hold live leases taken from ``address``.
        """
        if address is None or limit is None:
            yield
            return
        with self._lock:
            now = self._clock()
            others = set(self._recent(address, now)) - {name}
            if others and len(set(holders(others))) >= limit:
                raise StudioError(
                    f"This address already holds worklist cases under {limit} other names, "
                    "the most one address may hold (ADASAM_LEASES_PER_ADDRESS): finish one "
                    f"of those cases, or wait until its reservation expires ({LEASE_MINUTES} "
                    "minutes)."
                )
            yield
            recent = self._recent(address, now)
            recent[name] = now
            self._names[address] = recent
            self._prune(now)
