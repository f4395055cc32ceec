"""The models a user can choose from, and one shared predictor per model.

Choices are the shipped demo bundles that exist, the bundle named by ``ADASAM_BUNDLE`` and the
model version that the fine-tuning job activated in storage, if any. A predictor holds no
per-user state (see :mod:`adasam.predictor`), so every session shares one per model. A
bundle whose ``config.json`` changed on disk (a new training run saved over it) is reloaded
on its next use, and a newly activated model version is served without a restart.

Hot reload without a database query per click: the active version is looked up at most once
every ``poll_seconds`` (and at once after :meth:`ModelCatalog.bump`, which an in-process
activation calls); ``generation`` counts the changes. A case keeps the model version it was
predicted with (:meth:`ModelCatalog.version_choice`), so a click session that started before an
activation finishes on its own version, and predictors are kept per bundle folder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from adasam.backends import Backend
from adasam.bundle import CONFIG_FILE, ModelBundle, read_config
from adasam.errors import BundleError
from adasam.predictor import Predictor
from storage import Store, active_model_version, bundle_path, get_model_version
from storage.errors import StorageError
from studio.errors import StudioError

log = logging.getLogger("studio")

ACTIVE_VERSION_KEY = "active-version"


@dataclass(frozen=True)
class ModelChoice:
    """One model the user can pick.

    Attributes:
        key: stable identifier (``thigh-mri``, ``liver-ct``, ``custom`` or ``active-version``).
        path: the bundle directory.
        name, version: from the bundle's config.
        structures: what it segments, in the model's order.
        trained: False for a placeholder bundle with random weights.
        window: the display window the model was trained with (None: the file's own).
        model_version_id: storage id when the choice is a registered model version.
        trained_on: what the model saw in training (the bundle's ``domain.description``).
    """

    key: str
    path: Path
    name: str
    version: str
    structures: tuple[str, ...]
    trained: bool
    window: str | None
    model_version_id: int | None = None
    trained_on: str = ""

    @property
    def label(self) -> str:
        """What the drop-down shows."""
        state = "" if self.trained else ", UNTRAINED"
        source = "fine-tuned, active" if self.model_version_id is not None else self.key
        return f"{self.name} v{self.version} ({source}{state})"

    def describe(self) -> str:
        """A Markdown line for the page: what the model segments and whether it is trained."""
        structures = ", ".join(self.structures)
        seen = f" Trained on {self.trained_on}." if self.trained_on else ""
        if self.trained:
            return f"**Model** {self.label}: segments {structures}.{seen}"
        return (
            f"**Model** {self.label}: segments {structures}. **Warning: this model is untrained** "
            "(random weights, a placeholder until the demo model is trained): its heatmaps and "
            "masks mean nothing."
        )


def _choice(key: str, path: Path, model_version_id: int | None = None) -> ModelChoice:
    config = read_config(path)
    return ModelChoice(
        key=key,
        path=path,
        name=config.name,
        version=config.version,
        structures=tuple(config.structures),
        trained=config.trained,
        window=config.window,
        model_version_id=model_version_id,
        trained_on="" if config.domain is None else config.domain.description,
    )


def _config_stamp(path: Path) -> tuple[int, int]:
    stat = (path / CONFIG_FILE).stat()
    return stat.st_mtime_ns, stat.st_size


class ModelCatalog:
    """The available models and their shared predictors (thread-safe).

    Args:
        bundles: candidate bundle directories by key; those that do not exist or cannot be
            read are left out (and logged).
        default_key: the choice selected when a page opens, if available.
        device: torch device of the predictors.
        cache_size: embeddings kept per predictor.
        backend: builds each loaded bundle's encoder/classifier backend
            (:func:`adasam.backends.backend_factory`; default PyTorch).
        cache_bytes: bound on each predictor's cached embeddings in bytes.
        store: where to look for the active fine-tuned model version (optional).
        poll_seconds: how long a lookup of the active version is trusted.
        max_predictors: loaded models kept (least recently used dropped first).
    """

    def __init__(
        self,
        bundles: Mapping[str, Path],
        *,
        default_key: str | None,
        device: str,
        cache_size: int,
        store: Store | None = None,
        backend: Callable[[ModelBundle], Backend] | None = None,
        cache_bytes: int | None = None,
        poll_seconds: float = 3.0,
        max_predictors: int = 4,
    ) -> None:
        self._bundles = dict(bundles)
        self._default_key = default_key
        self._device = device
        self._cache_size = cache_size
        self._backend = backend
        self._cache_bytes = cache_bytes
        self._store = store
        self._poll_seconds = poll_seconds
        self._max_predictors = max(1, max_predictors)
        self._lock = threading.Lock()
        self._predictors: OrderedDict[Path, tuple[tuple[int, int], Predictor]] = OrderedDict()
        self._active: tuple[float, ModelChoice | None] | None = None
        self._versions: dict[int, ModelChoice] = {}
        self._zero_shot: Predictor | None = None
        self.generation = 0

    def bump(self) -> None:
        """Forget the cached active version (call after activating one in this process)."""
        with self._lock:
            self._active = None

    def _active_choice(self) -> ModelChoice | None:
        """The active stored version, looked up at most every ``poll_seconds``."""
        if self._store is None:
            return None
        now = time.monotonic()
        with self._lock:
            if self._active is not None and now - self._active[0] < self._poll_seconds:
                return self._active[1]
            previous = None if self._active is None else self._active[1]
        choice = None
        try:
            active = active_model_version(self._store)
            if active is not None:
                choice = self.version_choice(active.id)
                choice = replace(choice, key=ACTIVE_VERSION_KEY)
        except (StorageError, BundleError, OSError) as exc:
            log.warning("the active model version cannot be used: %s", exc)
        with self._lock:
            old_id = None if previous is None else previous.model_version_id
            if (None if choice is None else choice.model_version_id) != old_id:
                self.generation += 1
            self._active = (now, choice)
        return choice

    def version_choice(self, version_id: int) -> ModelChoice:
        """The stored model version ``version_id`` (its bundle materialised once)."""
        with self._lock:
            found = self._versions.get(version_id)
        if found is not None:
            return found
        if self._store is None:
            raise StudioError("This studio has no model versions (no storage).")
        try:
            record = get_model_version(self._store, version_id)
            path = bundle_path(self._store, version_id)
            found = _choice(f"version-{record.id}", path, record.id)
        except (StorageError, BundleError, OSError) as exc:
            raise StudioError(f"Model version {version_id} cannot be loaded: {exc}") from None
        with self._lock:
            self._versions[version_id] = found
        return found

    def choices(self) -> list[ModelChoice]:
        """Every model that can be loaded now (bundles re-read from disk; the active version
        from storage at most every ``poll_seconds``)."""
        found: list[ModelChoice] = []
        for key, path in self._bundles.items():
            try:
                found.append(_choice(key, Path(path)))
            except BundleError as exc:
                log.info("model %s not available: %s", key, exc)
        active = self._active_choice()
        if active is not None:
            found.insert(0, active)
        return found

    def default(self, choices: list[ModelChoice] | None = None) -> ModelChoice | None:
        """The choice a new page starts with: the active fine-tuned version, else the
        configured default, else the first available."""
        choices = self.choices() if choices is None else choices
        if not choices:
            return None
        by_key = {c.key: c for c in choices}
        for key in (ACTIVE_VERSION_KEY, self._default_key):
            if key in by_key:
                return by_key[key]
        return choices[0]

    def choice(self, key: str | None) -> ModelChoice:
        """The available choice ``key``.

        Raises:
            StudioError: no model is available, or ``key`` is not one of them.
        """
        choices = self.choices()
        if not choices:
            raise StudioError(
                "No model is installed. Ask the administrator to train the demo model or to set "
                "ADASAM_BUNDLE to a model bundle."
            )
        for c in choices:
            if c.key == key:
                return c
        names = ", ".join(c.label for c in choices)
        raise StudioError(f"Choose a model from the list ({names}).")

    def zero_shot(self) -> Predictor:
        """Plain LiteMedSAM (no adaptation), shared, loaded on first use: the model for boxes
        and clicks drawn on an image outside the chosen model's domain."""
        with self._lock:
            if self._zero_shot is None:
                from adasam.manual import zero_shot_predictor

                log.info("loading zero-shot LiteMedSAM for drawn prompts")
                self._zero_shot = zero_shot_predictor(self._device, self._cache_size)
            return self._zero_shot

    def predictor(self, choice: ModelChoice) -> Predictor:
        """The shared predictor of ``choice``, loaded on first use and reloaded when the
        bundle on disk changed since."""
        stamp = _config_stamp(choice.path)
        with self._lock:
            cached = self._predictors.get(choice.path)
            if cached is not None and cached[0] == stamp:
                self._predictors.move_to_end(choice.path)
                return cached[1]
            log.info("loading model %s from %s", choice.key, choice.path)
            predictor = Predictor.from_dir(
                choice.path,
                self._device,
                self._cache_size,
                backend=self._backend,
                cache_bytes=self._cache_bytes,
            )
            self._predictors[choice.path] = (stamp, predictor)
            while len(self._predictors) > self._max_predictors:
                self._predictors.popitem(last=False)
            return predictor
