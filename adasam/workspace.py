"""Intermediate buffers follow the model in use: one backend at a time keeps its workspace.

An OpenVINO compiled model keeps the intermediate tensors of its last inference (its workspace)
for as long as it lives: on the Intel Xeon of the bench, 144 MiB for LiteMedSAM's fp32 encoder
at 256², 72 MiB in bf16. A studio holding both demo models would hold both workspaces, though a
clinician works on one model at a time. :data:`ACTIVE` remembers which exported backend ran
last; when another one starts (built or called), the previous one's OpenVINO workspaces are
released (``CompiledModel.release_memory``). Switching models then costs one re-allocation on
the next slice (about 35 ms fp32, 15 ms bf16 there); staying on a model costs nothing.

A workspace is released only while no inference runs on it (:class:`Releasable`), so a
concurrent call on the other model is never disturbed; it is then released on the next switch.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Protocol


class Releasable(Protocol):
    def release_memory(self) -> int:
        """Release what can be released now; returns how many workspaces were released."""
        ...


class ActiveBackend:
    """The exported backend that ran last; :meth:`use` releases the previous one's workspaces."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: weakref.ref[Releasable] | None = None

    def use(self, backend: Releasable) -> int:
        """Make ``backend`` the active one; returns how many workspaces of the previous active
        backend were released (0 when ``backend`` was already active or there was none)."""
        with self._lock:
            previous = None if self._current is None else self._current()
            if previous is backend:
                return 0
            self._current = weakref.ref(backend)
        return 0 if previous is None else previous.release_memory()

    def current(self) -> Releasable | None:
        with self._lock:
            return None if self._current is None else self._current()


ACTIVE = ActiveBackend()
"""The process's one record of the backend in use (each exported backend reports to it)."""


class BusyCount:
    """How many inferences run on one compiled model now, and its release under the same lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = 0
        self.releases = 0
        """How many times the workspace was released (for tests and the bench)."""

    def __enter__(self) -> BusyCount:
        with self._lock:
            self._busy += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._busy -= 1

    def release_if_idle(self, release: Callable[[], None]) -> bool:
        """Call ``release()`` unless an inference is running; whether it was called."""
        with self._lock:
            if self._busy:
                return False
            release()
            self.releases += 1
            return True


__all__ = ["ACTIVE", "ActiveBackend", "BusyCount", "Releasable"]
