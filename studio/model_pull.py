"""The studio pulls model versions that a fine-tuning job elsewhere published (set-up (b)).

With ``ADASAM_MODEL_REPO`` set (a Hub model repository or a folder standing in), a daemon
thread looks at the repository's ``active.json`` every ``ADASAM_MODEL_PULL_SECONDS``. When it
names another version than last time, the versions this studio lacks are registered in its
store (bundle, lineage, gate scores), the named one is activated, and the catalog is bumped: the
next prediction uses it, with no restart (see :mod:`studio.catalog`). An activation made here
(Models tab, ``models activate``) stands until the repository's marker changes again.
Failures (network, offline mode, a conflict) are logged and kept in :attr:`ModelPuller.error`
for the Models tab; the studio keeps serving what it has.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from storage import Store
from storage.errors import StorageError
from storage.model_hub import PullReport, pull, remote_active
from storage.remotes import Remote

log = logging.getLogger("studio")


class ModelPuller:
    """Polls ``remote`` every ``seconds`` (after :meth:`start`); :meth:`poll_once` does one
    look and is what the thread calls."""

    def __init__(self, store: Store, remote: Remote, bump: Any, seconds: float) -> None:
        self.store = store
        self.remote = remote
        self.seconds = float(seconds)
        self.error: str | None = None
        self.last: PullReport | None = None
        self._bump = bump
        self._applied: dict[str, Any] | None = None
        self._stop = threading.Event()
        self.first_poll = threading.Event()  # set once the thread's first look is done
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        """One line for the Models tab."""
        state = f"; last error: {self.error}" if self.error else ""
        seen = "" if self._applied is None else f"; its active version: {self._applied['name']}"
        return f"pulls from {self.remote.describe()} every {self.seconds:g} s{seen}{state}"

    def poll_once(self) -> PullReport | None:
        """Pull when the remote's active marker changed since the last pull; the report, or
        None when nothing changed or the look failed (then :attr:`error` says why)."""
        with self._lock:
            try:
                marker = remote_active(self.remote)
                if marker is None or marker == self._applied:
                    self.error = None
                    return None
                report = pull(self.store, self.remote)
            except StorageError as exc:  # BackupError (network, offline) is one
                self.error = str(exc)
                log.warning(
                    "model repository %s: %s (on a Space set HF_HUB_OFFLINE=0 to reach the Hub)",
                    self.remote.describe(),
                    exc,
                )
                return None
            self.error = None
            self._applied = report.marker
            self.last = report
        if report.registered or report.activated:
            self._bump()
            log.info(
                "model repository %s: registered %s, activated %s",
                self.remote.describe(),
                ", ".join(report.registered) or "nothing new",
                report.activated or "nothing (already active)",
            )
        return report

    def _run(self) -> None:
        while True:
            self.poll_once()
            self.first_poll.set()
            if self._stop.wait(self.seconds):
                return

    def start(self) -> ModelPuller:
        """Poll now and then every ``seconds`` on a daemon thread."""
        self._thread = threading.Thread(target=self._run, daemon=True, name="model-pull")
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread (waits for a pull in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
