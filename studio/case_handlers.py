"""Handlers that put a case on screen: upload, example, worklist, slice, window, batch import.

Each returns :func:`~studio.screens.case_screen`'s updates (the pipeline is cleared; the page
chains a pipeline run after it). Slice numbers from the page are 1-based.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import gradio as gr

from adasam.imaging import Slice, Window, load_slice, rewindow, with_preferred_window
from storage import ensure_annotator, lease_holders, release_case, walk_case, walk_left
from studio.batch import import_files
from studio.catalog import ModelChoice
from studio.errors import StudioError, user_errors
from studio.identity import request_address, resolve_annotator
from studio.page import Updates
from studio.screens import CUSTOM_WINDOW, FILE_WINDOW, case_screen
from studio.services import Services
from studio.state import CaseSource, CaseState
from studio.stored_slices import slice_from_record
from studio.uploads import discard_upload, take_upload


def _model_window(slice_: Slice, choice: ModelChoice | None) -> Slice:
    """First show a slice as the model sees it (:mod:`adasam.imaging.model_input`: a CT slice
    in HU through the model's window, anything else in its own default display). Only the
    display: the model's input never follows the window the user picks."""
    return slice_ if choice is None else with_preferred_window(slice_, choice.window)


def hub_username(profile: gr.OAuthProfile | None) -> str | None:
    """The Hugging Face user name of a signed-in user."""
    if profile is None:
        return None
    return str(profile.get("preferred_username") or profile.get("name") or "") or None


def model_updates(choice: ModelChoice | None, current_key: str | None) -> Updates:
    """The model drop-down, its description and the structures, when ``choice`` differs."""
    if choice is None or choice.key == current_key:
        return {}
    structures = list(choice.structures)
    return {
        "model": gr.Dropdown(value=choice.key),
        "model_md": choice.describe(),
        "structures": gr.CheckboxGroup(choices=structures, value=structures),
    }


class CaseHandlers:
    """Loading cases; see the module docstring."""

    def __init__(self, services: Services) -> None:
        self.services = services

    # -- helpers ------------------------------------------------------------------------------
    def _choice(self, model_key: str | None) -> ModelChoice | None:
        try:
            return self.services.catalog.choice(model_key)
        except StudioError:
            return None

    def _read(
        self,
        source: Path | bytes,
        name: str,
        *,
        slice_index: int | None = None,
        axis: int = 2,
    ) -> Slice:
        if isinstance(source, Path) and not source.is_file():
            raise StudioError(f"{name} is no longer on the server; upload it again.")
        settings = self.services.settings
        return load_slice(
            source,
            name=name,
            slice_index=slice_index,
            axis=axis,
            max_pixels=settings.max_pixels,
            allow_burned_in=settings.allow_burned_in,
        )

    def _model_for(
        self, content_hash: str, modality: str, current: str | None
    ) -> ModelChoice | None:
        """The model a worklist case needs: an example's own model, else one trained on the
        case's modality (CT or MR), else the current one."""
        catalog = self.services.catalog
        for example in self.services.examples:
            if example.content_hash == content_hash and example.model:
                found = {c.key: c for c in catalog.choices()}.get(example.model)
                if found is not None:
                    return found
        return catalog.for_modality(modality, current)

    def annotator(
        self, typed: str | None, request: gr.Request | None, profile: gr.OAuthProfile | None
    ) -> str:
        """The annotator of this request (see :mod:`studio.identity`)."""
        login = getattr(request, "username", None) if request is not None else None
        return resolve_annotator(
            self.services.studio.identity,
            typed=typed,
            login_user=login,
            hub_user=hub_username(profile),
        )

    def known_annotator(
        self, typed: str | None, request: gr.Request | None, profile: gr.OAuthProfile | None
    ) -> str | None:
        """The annotator when one is known (a name typed or logged in), else None."""
        try:
            return self.annotator(typed, request, profile)
        except StudioError:
            return None

    def open_upload(
        self,
        file: str | None,
        *,
        axis: int | None = None,
        slice_index: int | None = None,
        window: str | None = None,
        model_key: str | None = None,
        owner: str | None = None,
    ) -> CaseState:
        """A new case from an uploaded file: the middle slice of a volume unless
        ``slice_index`` (0-based); the model's window for data with physical units unless
        ``window``."""
        if not file:
            raise StudioError("Choose a file to upload.")
        started = time.monotonic()
        name = Path(file).name
        data = take_upload(file, self.services.upload_root)  # the cached copy is gone now
        slice_ = self._read(
            data, name, slice_index=slice_index, axis=int(axis) if axis is not None else 2
        )
        if window:
            slice_ = rewindow(slice_, None if window == FILE_WINDOW else window)
        else:
            slice_ = _model_window(slice_, self._choice(model_key))
        keep = data if slice_.num_slices is not None else None  # to show another slice
        source = CaseSource("upload", None, name, data=keep)
        return CaseState.new(slice_, source, time.time(), owner, time.monotonic() - started)

    # -- handlers -----------------------------------------------------------------------------
    @user_errors
    def load_upload(
        self,
        file: str | None,
        axis: int | None,
        model_key: str | None,
        typed_name: str | None = None,
        request: gr.Request | None = None,
        profile: gr.OAuthProfile | None = None,
    ) -> Updates:
        """A file the user uploaded (any supported format; the middle slice of a volume)."""
        owner = self.known_annotator(typed_name, request, profile)
        return case_screen(self.open_upload(file, axis=axis, model_key=model_key, owner=owner))

    @user_errors
    def load_example(
        self,
        model_key: str | None,
        typed_name: str | None,
        evt: gr.SelectData,
        request: gr.Request | None = None,
        profile: gr.OAuthProfile | None = None,
    ) -> Updates:
        """The example clicked in the gallery; switches to the model it suits when available.
        The case belongs to the annotator when one is known, so a reload restores it."""
        examples = self.services.examples
        index = evt.index if isinstance(evt.index, int) else None
        if index is None or not 0 <= index < len(examples):
            raise StudioError("Choose one of the example images.")
        example = examples[index]
        started = time.monotonic()
        available = {c.key: c for c in self.services.catalog.choices()}
        key = example.model if example.model in available else model_key
        choice = available.get(key) if key else None
        slice_ = _model_window(self._read(example.path, example.path.name), choice)
        owner = self.known_annotator(typed_name, request, profile)
        source = CaseSource("example", example.path, example.path.name)
        state = CaseState.new(slice_, source, time.time(), owner, time.monotonic() - started)
        return {**case_screen(state), **model_updates(choice, model_key)}

    @user_errors
    def next_case(
        self,
        typed_name: str | None,
        model_key: str | None,
        state: CaseState | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ) -> Updates:
        """The annotator's next worklist case: every case once per annotator, in an order of
        their own, never one a colleague has open; with the model the case needs."""
        annotator = self.annotator(typed_name, request, profile)
        store = self.services.store
        current = state.source.worklist_hash if state is not None else None
        walks = self.services.walks
        settings = self.services.studio
        address = request_address(request, settings.trusted_proxies)
        with self.services.address_leases.reserve(
            address, annotator, settings.lease_limit, lambda names: lease_holders(store, names)
        ):  # made-up names: a bounded number of cases per client address
            ensure_annotator(store, annotator)
            visited = walks.visited(annotator)
            record = walk_case(store, annotator, after=current, visited=visited)
        if record is None:
            return self._no_case(annotator, current)
        if walks.shown(annotator, record.content_hash):
            gr.Info("You have seen every case of the worklist once: a new round starts.")
        choice = self._model_for(record.content_hash, record.modality, model_key)
        started = time.monotonic()
        slice_ = _model_window(slice_from_record(store, record), choice)
        source = CaseSource(
            "worklist", None, record.source_name or f"case {record.id}", record.content_hash
        )
        new = CaseState.new(slice_, source, time.time(), annotator, time.monotonic() - started)
        return {
            **case_screen(new),
            **model_updates(choice, model_key),
            "worklist_md": f"Worklist: case #{record.id}, reserved for {annotator} for 30 minutes.",
        }

    def _no_case(self, annotator: str, current: str | None) -> Updates:
        """No free case: the ones not yet shown are open by colleagues, or none is left."""
        store = self.services.store
        if walk_left(store, annotator) == 0:  # they corrected every case
            if current:
                release_case(store, annotator, current)
            gr.Info("You have been through every case of the worklist. Add cases in its tab.")
            return {"worklist_md": "Worklist: no case left for you."}
        gr.Info("The cases you have not seen yet are open by colleagues: try again shortly.")
        return {"worklist_md": "Worklist: the cases left for you are open by colleagues."}

    def _reload(self, state: CaseState | None, index: int | None, axis: int | None) -> Updates:
        if state is None:
            raise StudioError("Upload a volume first.")
        source: Path | bytes | None = state.source.path or state.source.data
        if source is None:
            raise StudioError("This case has a single slice.")
        started = time.monotonic()
        new_axis = int(axis) if axis is not None else (state.slice.axis or 2)
        if new_axis != state.slice.axis:
            index = None  # the middle slice along the new axis
        slice_ = self._read(source, state.source.name, slice_index=index, axis=new_axis)
        if state.slice.window is not None and slice_.default_window is not None:
            slice_ = rewindow(slice_, state.slice.window)
        spent = time.monotonic() - started
        return case_screen(CaseState.new(slice_, state.source, time.time(), state.owner, spent))

    @user_errors
    def go_to_slice(self, state: CaseState | None, number: float | None) -> Updates:
        """Slice ``number`` (1-based) of the uploaded volume."""
        if state is None or number is None:
            raise StudioError("Upload a volume first.")
        depth = state.slice.num_slices or 1
        if not 1 <= int(number) <= depth:
            raise StudioError(f"Choose a slice from 1 to {depth}.")
        return self._reload(state, int(number) - 1, state.slice.axis)

    def _step(self, state: CaseState | None, delta: int) -> Updates:
        if state is None:
            raise StudioError("Upload a volume first.")
        depth = state.slice.num_slices or 1
        index = min(max((state.slice.slice_index or 0) + delta, 0), depth - 1)
        return self._reload(state, index, state.slice.axis)

    @user_errors
    def previous_slice(self, state: CaseState | None) -> Updates:
        """The slice before (← key)."""
        return self._step(state, -1)

    @user_errors
    def next_slice(self, state: CaseState | None) -> Updates:
        """The slice after (→ key)."""
        return self._step(state, +1)

    @user_errors
    def change_axis(self, state: CaseState | None, axis: int | None) -> Updates:
        """The middle slice along another axis of the uploaded volume."""
        return self._reload(state, None, axis)

    @user_errors
    def change_window(
        self, state: CaseState | None, choice: str | None, level: float | None, width: float | None
    ) -> Updates:
        """Show the slice through another window (a preset, the file's own, or level/width).
        Display only: the model's input does not depend on it (:mod:`adasam.imaging.model_input`),
        so the pipeline's result and every edit stay as they are."""
        if state is None:
            raise StudioError("Load a case first.")
        if choice == CUSTOM_WINDOW:
            if level is None or width is None:
                raise StudioError("Type a window level and width first.")
            window: str | Window | None = Window(float(level), float(width), "custom")
        elif choice in (None, "", FILE_WINDOW):
            window = None
        else:
            window = choice
        return case_screen(replace(state, slice=rewindow(state.slice, window)))

    def change_window_custom(
        self, state: CaseState | None, level: float | None, width: float | None
    ) -> Updates:
        """The level/width typed by the user."""
        return self.change_window(state, CUSTOM_WINDOW, level, width)

    def require_user(self, request: gr.Request | None, profile: gr.OAuthProfile | None) -> None:
        """Refuse a request without a signed-in user when the studio has an identity provider
        (hidden events are callable by anyone who reaches the server)."""
        if self.services.studio.identity != "name":
            self.annotator(None, request, profile)

    @user_errors
    def import_batch(
        self,
        files: Sequence[str] | None,
        request: gr.Request = None,  # type: ignore[assignment]
        profile: gr.OAuthProfile | None = None,
    ) -> Updates:
        """Add uploaded files to the worklist (each file one case)."""
        try:
            self.require_user(request, profile)
        except StudioError:
            for f in files or ():
                discard_upload(Path(f), self.services.upload_root)
            raise
        if not files:
            raise StudioError("Choose one or more files to add to the worklist.")
        names = [Path(f).name for f in files]
        datas = [take_upload(f, self.services.upload_root) for f in files]
        report = import_files(
            self.services.store,
            datas,
            names=names,
            max_pixels=self.services.settings.max_pixels,
            allow_burned_in=self.services.settings.allow_burned_in,
        )
        return {"batch_md": report.message()}

    @user_errors
    def import_examples(
        self,
        request: gr.Request = None,  # type: ignore[assignment]
        profile: gr.OAuthProfile | None = None,
    ) -> Updates:
        """Add the shipped example cases to the worklist."""
        self.require_user(request, profile)
        examples = self.services.examples
        if not examples:
            raise StudioError("No example cases are installed.")
        report = import_files(
            self.services.store,
            [e.path for e in examples],
            max_pixels=self.services.settings.max_pixels,
        )
        return {"batch_md": report.message()}
