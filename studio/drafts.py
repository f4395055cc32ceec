"""Unsubmitted work kept per annotator, so a page reload brings back the case on screen with
its edits, and the worklist cases each annotator was shown in this round (:class:`Walks`).
In memory only: nothing of either is written to disk, and a restart forgets it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from studio.state import CaseState

MAX_DRAFTS = 256
DRAFT_TTL_S = 4 * 3600.0


class Drafts:
    """The latest state of each annotator's case (thread-safe, bounded, expiring)."""

    def __init__(self, max_drafts: int = MAX_DRAFTS, ttl_s: float = DRAFT_TTL_S) -> None:
        self._max = max_drafts
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._drafts: OrderedDict[str, tuple[float, CaseState]] = OrderedDict()

    def keep(self, state: object) -> None:
        """Remember ``state`` for its owner (states without an owner are ignored)."""
        if not isinstance(state, CaseState) or not state.owner:
            return
        with self._lock:
            self._drafts[state.owner] = (time.monotonic(), state)
            self._drafts.move_to_end(state.owner)
            while len(self._drafts) > self._max:
                self._drafts.popitem(last=False)

    def get(self, annotator: str) -> CaseState | None:
        """The annotator's latest case, if it is recent enough."""
        with self._lock:
            entry = self._drafts.get(annotator)
            if entry is None:
                return None
            if time.monotonic() - entry[0] > self._ttl:
                del self._drafts[annotator]
                return None
            return entry[1]


class Walks:
    """The worklist cases (content hashes) each annotator was shown in their current round
    (thread-safe): :func:`storage.walk_case` passes them over, so a case another annotator
    had open is offered later rather than lost for the round."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, list[str]] = {}

    def visited(self, annotator: str) -> list[str]:
        with self._lock:
            return list(self._seen.get(annotator, ()))

    def shown(self, annotator: str, content_hash: str) -> bool:
        """Record that ``annotator`` was shown ``content_hash``; True when that starts a new
        round (they had been shown it already, so every case was)."""
        with self._lock:
            seen = self._seen.setdefault(annotator, [])
            if content_hash in seen:
                self._seen[annotator] = [content_hash]
                return True
            seen.append(content_hash)
            return False
