"""Handlers that put a case on screen: upload, example, worklist, slice, window, batch import.

Each returns :func:`~studio.screens.case_screen`'s tuple (the pipeline is cleared; the
layout chains a pipeline run after it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from adasam.imaging import Slice, Window, load_slice, rewindow
from storage import ensure_annotator, next_case, release_case
from studio.batch import import_files
from studio.catalog import ModelChoice
from studio.errors import StudioError, user_errors
from studio.identity import resolve_annotator
from studio.screens import (
    CASE_SLOTS,
    CUSTOM_WINDOW,
    FILE_WINDOW,
    PIPELINE_SLOTS,
    case_screen,
)
from studio.services import Services
from studio.state import CaseSource, CaseState
from studio.stored_slices import slice_from_record


def _model_window(slice_: Slice, choice: ModelChoice | None) -> Slice:
    """Show a slice with physical units through the window the model was trained with (8-bit
    images are shown as they are)."""
    if choice is None or not choice.window or slice_.default_window is None:
        return slice_
    return rewindow(slice_, choice.window)


def hub_username(profile: gr.OAuthProfile | None) -> str | None:
    """The Hugging Face user name of a signed-in user."""
    if profile is None:
        return None
    return str(profile.get("preferred_username") or profile.get("name") or "") or None


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
        self, path: Path, name: str, *, slice_index: int | None = None, axis: int = 2
    ) -> Slice:
        if not path.is_file():
            raise StudioError(f"{name} is no longer on the server; upload it again.")
        return load_slice(
            path,
            name=name,
            slice_index=slice_index,
            axis=axis,
            max_pixels=self.services.settings.max_pixels,
        )

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

    def open_upload(
        self,
        file: str | None,
        *,
        axis: int | None = None,
        slice_index: int | None = None,
        window: str | None = None,
        model_key: str | None = None,
    ) -> CaseState:
        """A new case from an uploaded file: the middle slice of a volume unless
        ``slice_index``; the model's window for data with physical units unless ``window``."""
        if not file:
            raise StudioError("Choose a file to upload.")
        path = Path(file)
        slice_ = self._read(
            path, path.name, slice_index=slice_index, axis=int(axis) if axis is not None else 2
        )
        if window:
            slice_ = rewindow(slice_, None if window == FILE_WINDOW else window)
        else:
            slice_ = _model_window(slice_, self._choice(model_key))
        return CaseState.new(slice_, CaseSource("upload", path, path.name), time.time())

    # -- handlers -----------------------------------------------------------------------------
    @user_errors
    def load_upload(
        self, file: str | None, axis: int | None, model_key: str | None
    ) -> tuple[Any, ...]:
        """A file the user uploaded (any supported format; the middle slice of a volume)."""
        return case_screen(self.open_upload(file, axis=axis, model_key=model_key))

    @user_errors
    def load_example(self, model_key: str | None, evt: gr.SelectData) -> tuple[Any, ...]:
        """The example clicked in the gallery; switches to the model it suits when available."""
        examples = self.services.examples
        index = evt.index if isinstance(evt.index, int) else None
        if index is None or not 0 <= index < len(examples):
            raise StudioError("Choose one of the example images.")
        example = examples[index]
        available = {c.key: c for c in self.services.catalog.choices()}
        key = example.model if example.model in available else model_key
        choice = available.get(key) if key else None
        slice_ = _model_window(self._read(example.path, example.path.name), choice)
        state = CaseState.new(
            slice_, CaseSource("example", example.path, example.path.name), time.time()
        )
        model_updates: tuple[Any, ...] = (gr.skip(), gr.skip(), gr.skip())
        if choice is not None and key != model_key:
            model_updates = (
                gr.Dropdown(value=choice.key),
                choice.describe(),
                gr.CheckboxGroup(choices=list(choice.structures), value=list(choice.structures)),
            )
        return (*case_screen(state), *model_updates)

    @user_errors
    def next_case(
        self,
        typed_name: str | None,
        model_key: str | None,
        state: CaseState | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ) -> tuple[Any, ...]:
        """The next worklist case for this annotator (leased to them, so colleagues get other
        cases); skips the current worklist case if it was not submitted."""
        annotator = self.annotator(typed_name, request, profile)
        store = self.services.store
        ensure_annotator(store, annotator)
        skip: list[str] = []
        if state is not None and state.source.worklist_hash and not state.receipts:
            skip.append(state.source.worklist_hash)
        record = next_case(store, annotator, skip=skip)
        if record is None:
            if skip:
                release_case(store, annotator, skip[0])
            gr.Info(
                "The worklist is empty: every case has a correction. Add cases in the Worklist tab."
            )
            return (
                *(gr.skip() for _ in range(len(case_screen_slots()))),
                "Worklist: no case left.",
            )
        slice_ = _model_window(slice_from_record(store, record), self._choice(model_key))
        source = CaseSource(
            "worklist", None, record.source_name or f"case {record.id}", record.content_hash
        )
        new = CaseState.new(slice_, source, time.time())
        return (
            *case_screen(new),
            f"Worklist: case #{record.id} is reserved for {annotator} for 30 minutes.",
        )

    @user_errors
    def change_slice(
        self, state: CaseState | None, slice_index: float | None, axis: int | None
    ) -> tuple[Any, ...]:
        """Another slice (or axis) of the uploaded volume."""
        if state is None:
            raise StudioError("Upload a volume first.")
        if state.source.path is None:
            raise StudioError("Worklist cases have a single slice.")
        index = None if slice_index is None else int(slice_index)
        new_axis = int(axis) if axis is not None else (state.slice.axis or 2)
        if new_axis != state.slice.axis:
            index = None  # the middle slice along the new axis
        slice_ = self._read(state.source.path, state.source.name, slice_index=index, axis=new_axis)
        if state.slice.window is not None and slice_.default_window is not None:
            slice_ = rewindow(slice_, state.slice.window)
        return case_screen(CaseState.new(slice_, state.source, time.time()))

    @user_errors
    def change_window(
        self, state: CaseState | None, choice: str | None, level: float | None, width: float | None
    ) -> tuple[Any, ...]:
        """Show the slice through another window (a preset, the file's own, or level/width)."""
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
        slice_ = rewindow(state.slice, window)
        return case_screen(CaseState.new(slice_, state.source, state.loaded_at))

    def change_window_custom(
        self, state: CaseState | None, level: float | None, width: float | None
    ) -> tuple[Any, ...]:
        """The level/width typed by the user."""
        return self.change_window(state, CUSTOM_WINDOW, level, width)

    @user_errors
    def import_batch(self, files: Sequence[str] | None) -> str:
        """Add uploaded files to the worklist (each file one case)."""
        if not files:
            raise StudioError("Choose one or more files to add to the worklist.")
        paths = [Path(f) for f in files]
        report = import_files(
            self.services.store, paths, max_pixels=self.services.settings.max_pixels
        )
        return report.message()

    @user_errors
    def import_examples(self) -> str:
        """Add the shipped example cases to the worklist."""
        examples = self.services.examples
        if not examples:
            raise StudioError("No example cases are installed.")
        report = import_files(
            self.services.store,
            [e.path for e in examples],
            max_pixels=self.services.settings.max_pixels,
        )
        return report.message()


def case_screen_slots() -> tuple[str, ...]:
    """Names of the outputs :func:`case_screen` fills (case slots, then pipeline slots)."""
    return CASE_SLOTS + PIPELINE_SLOTS[1:]
