"""The models a user can choose from, and one shared predictor per model.

Choices are the shipped demo bundles that exist, the bundle named by ``ADASAM_BUNDLE`` and the
model version that the fine-tuning job activated in storage, if any. A predictor holds no
per-user state (see :mod:`adasam.predictor`), so every session shares one per bundle folder.

**One version counter, and no I/O on the click path.** The choices are read once and cached,
together with the predictors, until the catalog's :attr:`ModelCatalog.generation` changes. It is
raised by

- :meth:`ModelCatalog.bump`: a new model version was activated in this process (the learning
  loop calls it), or anything else that should be re-read at once;
- the poll of the active version in storage, at most once every ``poll_seconds`` (so an
  activation by another process, e.g. ``finetune --watch``, is served within one poll);
- :meth:`ModelCatalog.refresh` (page load): a bundle's ``config.json`` saved over on disk.

The next use after a change re-reads the bundles and storage and reloads a predictor whose
bundle changed: no restart is needed. A case keeps the model version it was predicted with
(:meth:`ModelCatalog.version_choice`), so a click session that started before an activation
finishes on its own version; clicks on such a case query nothing.
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
from adasam.predictor import CACHE_DTYPES, Predictor
from storage import Store, active_model_version, bundle_path, get_model_version
from storage.errors import StorageError
from studio.errors import StudioError

log = logging.getLogger("studio")

ACTIVE_VERSION_KEY = "active-version"


@dataclass(frozen=True)
class ModelChoice:
    """One model the user can pick.

    Attributes:
        key: stable identifier (``thigh-mri``, ``liver-ct``, ``custom``, ``active-version`` or
            ``version-<id>``).
        path: the bundle directory.
        name, version: from the bundle's config.
        structures: what it segments, in the model's order.
        trained: False for a placeholder bundle with random weights.
        window: the window the model was trained with (None: the file's own).
        modality: of its training slices (``CT``, ``MR``, ...), to match worklist cases.
        model_version_id: storage id when the choice is a registered model version.
        version_name: that version's name in storage (what the Models tab lists).
        trained_on: what the model saw in training (the bundle's ``domain.description``).
    """

    key: str
    path: Path
    name: str
    version: str
    structures: tuple[str, ...]
    trained: bool
    window: str | None
    modality: str = ""
    model_version_id: int | None = None
    trained_on: str = ""
    version_name: str = ""

    @property
    def label(self) -> str:
        """What the drop-down shows."""
        state = "" if self.trained else ", UNTRAINED"
        if self.model_version_id is None:
            return f"{self.name} v{self.version} ({self.key}{state})"
        # a stored version by its Models-tab name (the root one is the base bundle, not a
        # fine-tune, so the label does not say "fine-tuned")
        which = "active version" if self.key == ACTIVE_VERSION_KEY else "stored version"
        return f"{self.version_name or self.name} ({which} {self.model_version_id}{state})"

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
        modality=_modality(config),
        model_version_id=model_version_id,
        trained_on="" if config.domain is None else config.domain.description,
    )


def _modality(config: object) -> str:
    """The training modality a bundle records; else CT for a CT window, MR otherwise."""
    domain = getattr(config, "domain", None)
    if domain is not None and getattr(domain, "modality", ""):
        return str(domain.modality).upper()
    return "CT" if str(getattr(config, "window", "") or "").startswith("ct") else "MR"


def _config_stamp(path: Path) -> tuple[int, int]:
    stat = (path / CONFIG_FILE).stat()
    return stat.st_mtime_ns, stat.st_size


def _stamp_or_none(path: Path) -> tuple[int, int] | None:
    try:
        return _config_stamp(path)
    except OSError:
        return None


@dataclass(frozen=True)
class _Loaded:
    """A loaded predictor, the ``config.json`` stamp it was loaded from and the catalog
    generation it was last checked against."""

    stamp: tuple[int, int] | None
    generation: int
    predictor: Predictor


class ModelCatalog:
    """The available models and their shared predictors (thread-safe).

    Args:
        bundles: candidate bundle directories by key; those that do not exist or cannot be
            read are left out (and logged).
        default_key: the choice selected when a page opens, if available.
        device: torch device of the predictors.
        cache_size: embeddings kept per predictor.
        store: where to look for the active fine-tuned model version (optional).
        backend: builds each loaded bundle's encoder/classifier backend
            (:func:`adasam.backends.backend_factory`; default PyTorch).
        cache_bytes: bound on each predictor's cached embeddings in bytes.
        cache_dtype: how they are held, ``"float32"`` or ``"float16"``
            (:data:`adasam.predictor.CACHE_DTYPES`).
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
        cache_dtype: str = "float32",
        poll_seconds: float = 3.0,
        max_predictors: int = 4,
    ) -> None:
        self._bundles = dict(bundles)
        self._default_key = default_key
        self._device = device
        self._cache_size = cache_size
        self._backend = backend
        self._cache_bytes = cache_bytes
        if cache_dtype not in CACHE_DTYPES:
            raise ValueError(f"cache_dtype must be one of {', '.join(CACHE_DTYPES)}")
        self._cache_dtype = CACHE_DTYPES[cache_dtype]
        self._store = store
        self._poll_seconds = poll_seconds
        self._max_predictors = max(1, max_predictors)
        self._lock = threading.RLock()
        self._generation = 0
        self._cached: tuple[int, list[ModelChoice]] | None = None
        self._stamps: dict[Path, tuple[int, int] | None] = {}
        self._polled_at: float | None = None
        self._active_id: int | None = None
        self._versions: dict[int, ModelChoice] = {}
        self._predictors: OrderedDict[Path, _Loaded] = OrderedDict()
        self._zero_shot: Predictor | None = None

    # -- the version counter ------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """The catalog's one version counter: cached choices and predictors are from it."""
        return self._generation

    def bump(self) -> int:
        """Something changed (a model version was activated, a bundle was saved over): the
        next use re-reads the choices and storage. Returns the new generation."""
        with self._lock:
            self._generation += 1
            return self._generation

    def _poll(self) -> None:
        """Look the active version up (at most every ``poll_seconds``); bump when it moved."""
        if self._store is None:
            return
        now = time.monotonic()
        polled = self._polled_at
        if polled is not None and now - polled < self._poll_seconds:
            return
        try:
            active = active_model_version(self._store)
        except (StorageError, OSError) as exc:
            log.warning("the active model version cannot be looked up: %s", exc)
            return
        with self._lock:
            self._polled_at = now
            found = None if active is None else active.id
            cached = self._cached
            if found != self._active_id and cached is not None and cached[0] == self._generation:
                self._generation += 1  # (a stale cache is re-read anyway: count one change)
            self._active_id = found

    def refresh(self) -> list[ModelChoice]:
        """Bump when a bundle's ``config.json`` changed on disk, then the choices (page load)."""
        cached = self._cached
        if cached is not None and any(
            _stamp_or_none(c.path) != self._stamps.get(c.path) for c in cached[1]
        ):
            self.bump()
        return self.choices()

    # -- choices ------------------------------------------------------------------------------
    def choices(self) -> list[ModelChoice]:
        """Every model that can be loaded (cached until the generation changes; at most one
        query of the active version every ``poll_seconds``)."""
        self._poll()
        cached = self._cached
        if cached is not None and cached[0] == self._generation:
            return list(cached[1])
        with self._lock:
            generation = self._generation
            found = self._read_choices()
            self._stamps = {c.path: _stamp_or_none(c.path) for c in found}
            self._cached = (generation, found)
            return list(found)

    def _read_choices(self) -> list[ModelChoice]:
        found: list[ModelChoice] = []
        for key, path in self._bundles.items():
            try:
                found.append(_choice(key, Path(path)))
            except BundleError as exc:
                log.info("model %s not available: %s", key, exc)
        active = self._read_active()
        if active is not None:
            found.insert(0, active)
        return found

    def _read_active(self) -> ModelChoice | None:
        if self._store is None:
            return None
        try:
            active = active_model_version(self._store)
            self._active_id = None if active is None else active.id
            self._polled_at = time.monotonic()
            if active is None:
                return None
            return replace(self.version_choice(active.id), key=ACTIVE_VERSION_KEY)
        except (StorageError, StudioError, OSError) as exc:
            log.warning("the active model version cannot be used: %s", exc)
            return None

    def version_choice(self, version_id: int) -> ModelChoice:
        """The stored model version ``version_id`` (read from storage once, then cached)."""
        with self._lock:
            found = self._versions.get(version_id)
        if found is not None:
            return found
        if self._store is None:
            raise StudioError("This studio has no model versions (no storage).")
        try:
            record = get_model_version(self._store, version_id)
            path = bundle_path(self._store, version_id)
            found = replace(
                _choice(f"version-{record.id}", path, record.id), version_name=record.name
            )
        except (StorageError, BundleError, OSError) as exc:
            raise StudioError(f"Model version {version_id} cannot be loaded: {exc}") from None
        with self._lock:
            self._versions[version_id] = found
        return found

    def for_modality(self, modality: str, current_key: str | None) -> ModelChoice | None:
        """The model a case of ``modality`` (``CT``, ``MR``; others keep the current model)
        needs: the current one if it matches, else the default if it matches, else the first
        that does, else the current one."""
        choices = self.choices()
        by_key = {c.key: c for c in choices}
        wanted = (modality or "").upper()
        if wanted not in ("CT", "MR"):
            return by_key.get(current_key or "") or self.default(choices)
        preferred = [by_key.get(current_key or ""), self.default(choices)]
        for c in [*preferred, *choices]:
            if c is not None and c.modality == wanted:
                return c
        return by_key.get(current_key or "") or self.default(choices)

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

    # -- predictors ---------------------------------------------------------------------------
    def zero_shot(self) -> Predictor:
        """Plain LiteMedSAM (no adaptation), shared, loaded on first use: the model for boxes
        and clicks drawn on an image outside the chosen model's domain. It reads the slice's
        embedding from a loaded model that runs the same frozen fp32 encoder and has encoded
        that slice already (:mod:`adasam.shared_embeddings`), so the box does not wait for a
        second encoder pass; a slice it encodes itself runs on the backend the models get
        (``ADASAM_BACKEND``; ``auto``: the fastest one the accuracy guard passed for it here)."""
        with self._lock:
            if self._zero_shot is None:
                from adasam.manual import zero_shot_predictor
                from adasam.shared_embeddings import LentEmbeddings

                log.info("loading zero-shot LiteMedSAM for drawn prompts")
                predictor = zero_shot_predictor(
                    self._device, self._cache_size, backend=self._backend
                )
                predictor.embedding_store = LentEmbeddings(
                    predictor.shared_encoder(), self._loaded_predictors
                )
                self._zero_shot = predictor
            return self._zero_shot

    def _loaded_predictors(self) -> list[Predictor]:
        """The bundle predictors loaded now (no loading, no I/O)."""
        with self._lock:
            return [loaded.predictor for loaded in self._predictors.values()]

    def predictor(self, choice: ModelChoice) -> Predictor:
        """The shared predictor of ``choice``'s bundle folder, loaded on first use and, after
        the generation changed, reloaded when the bundle on disk changed since (no I/O while
        the generation stays the same)."""
        cached = self._predictors.get(choice.path)
        if cached is not None and cached.generation == self._generation:
            return cached.predictor
        with self._lock:
            generation = self._generation
            stamp = _stamp_or_none(choice.path)
            cached = self._predictors.get(choice.path)
            if cached is not None and cached.stamp == stamp:
                self._predictors[choice.path] = replace(cached, generation=generation)
                self._predictors.move_to_end(choice.path)
                return cached.predictor
            log.info("loading model %s from %s", choice.key, choice.path)
            predictor = Predictor.from_dir(
                choice.path,
                self._device,
                self._cache_size,
                backend=self._backend,
                cache_bytes=self._cache_bytes,
                cache_dtype=self._cache_dtype,
            )
            self._predictors[choice.path] = _Loaded(stamp, generation, predictor)
            while len(self._predictors) > self._max_predictors:
                self._predictors.popitem(last=False)
            return predictor
