"""Handlers of the model steps: choose a model, run the pipeline, pick a candidate, click to
refine, undo, reset. All model calls go through the shared predictor of the session's model."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import gradio as gr

from adasam.budget import Deadline
from adasam.errors import TimeBudgetError
from adasam.predictor import Predictor
from adasam.refine_guard import GuardConfig
from studio import pipeline
from studio.errors import StudioError, user_errors
from studio.page import Updates
from studio.screens import can_submit, click_screen, pipeline_screen
from studio.services import Services
from studio.state import CaseState, StructureWork
from studio.views import canvas_to_slice

NO_MODEL = (
    "**Warning: no model is installed.** Train the demo model or set ADASAM_BUNDLE to a model "
    "bundle, then reload this page."
)


def _need_case(state: CaseState | None) -> CaseState:
    if state is None:
        raise StudioError(
            "Load a case first: upload a file, pick an example or take the next case."
        )
    return state


def _need_work(state: CaseState | None) -> tuple[CaseState, StructureWork]:
    state = _need_case(state)
    work = state.work
    if work is None:
        raise StudioError("Run the pipeline first.")
    return state, work


class SegmentHandlers:
    """See the module docstring."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def _predictor(self, state: CaseState) -> Predictor:
        """The model for clicks and boxes: the model the case was predicted with (a stored
        version stays that version even after another one was activated, so the click session
        finishes on it), or plain LiteMedSAM when the slice is outside that model's domain."""
        if state.domain is not None and not state.domain.in_domain:
            return self.services.catalog.zero_shot()
        catalog = self.services.catalog
        if state.model_version_id is not None:
            return catalog.predictor(catalog.version_choice(state.model_version_id))
        return catalog.predictor(catalog.choice(state.model_key))

    # -- models -------------------------------------------------------------------------------
    @user_errors
    def refresh_models(self) -> Updates:
        """On page load: the models available now (a newly activated version appears)."""
        choices = self.services.catalog.refresh()
        default = self.services.catalog.default(choices)
        if default is None:
            return {
                "model": gr.Dropdown(choices=[], value=None),
                "model_md": NO_MODEL,
                "structures": gr.CheckboxGroup(choices=[], value=[]),
            }
        structures = list(default.structures)
        return {
            "model": gr.Dropdown(choices=[(c.label, c.key) for c in choices], value=default.key),
            "model_md": default.describe(),
            "structures": gr.CheckboxGroup(choices=structures, value=structures),
        }

    @user_errors
    def show_case_model(self, state: CaseState | None, model_key: str | None) -> Updates:
        """After a reload restored a case: select the model it ran with."""
        if state is None or state.model_key is None or state.model_key == model_key:
            return {}
        choice = self.services.catalog.choice(state.model_key)
        structures = list(choice.structures)
        return {
            "model": gr.Dropdown(value=choice.key),
            "model_md": choice.describe(),
            "structures": gr.CheckboxGroup(choices=structures, value=structures),
        }

    @user_errors
    def model_changed(self, model_key: str | None) -> Updates:
        """The user picked another model: describe it and offer its structures."""
        choice = self.services.catalog.choice(model_key)
        structures = list(choice.structures)
        return {
            "model_md": choice.describe(),
            "structures": gr.CheckboxGroup(choices=structures, value=structures),
        }

    # -- pipeline -----------------------------------------------------------------------------
    def run_state(
        self, state: CaseState | None, model_key: str | None, structures: Sequence[str] | None
    ) -> CaseState:
        """The case after the pipeline ran with ``model_key`` on ``structures``."""
        state = _need_case(state)
        choice = self.services.catalog.choice(model_key)
        predictor = self.services.catalog.predictor(choice)
        return pipeline.run_pipeline(state, predictor, choice, structures)

    @user_errors
    def run(
        self, state: CaseState | None, model_key: str | None, structures: Sequence[str] | None
    ) -> Updates:
        """Classifier → GradCAM → prompts → SAM's three candidates, for each structure."""
        new = self.run_state(state, model_key, structures)
        note = pipeline.out_of_domain_note(new, self.services.catalog.choice(model_key).trained_on)
        if note:
            gr.Warning(note, duration=None)
        return pipeline_screen(new)

    @user_errors
    def run_loaded(
        self, state: CaseState | None, model_key: str | None, structures: Sequence[str] | None
    ) -> Updates:
        """The pipeline run chained after a case was loaded: one request with the load, so
        the load's time counts against ``ADASAM_REQUEST_SECONDS`` as decoding does in the
        API's ``/predict``; over budget, the pipeline is not started (the slice stays on screen
        and **Run** starts it as a request of its own)."""
        if state is not None:
            budget = self.services.settings.request_seconds
            deadline = Deadline(budget, spent=state.load_seconds)
            try:
                deadline.check("loading the case", "the pipeline")
            except TimeBudgetError as exc:
                raise StudioError(f"{exc} Press Run to start the pipeline on its own.") from None
        return self.run(state, model_key, structures)

    @user_errors
    def rerun(
        self, state: CaseState | None, model_key: str | None, structures: Sequence[str] | None
    ) -> Updates:
        """After a model change: run the new model on the case on screen, if there is one."""
        if state is None:
            return {}
        return self.run(state, model_key, structures)

    @user_errors
    def select_structure(self, state: CaseState | None, name: str | None) -> Updates:
        """Show and edit another structure."""
        state = _need_case(state)
        if name not in {w.name for w in state.works}:
            raise StudioError("Choose one of the structures the pipeline ran on.")
        return pipeline_screen(replace(state, active=name))

    def choose_state(self, state: CaseState | None, rank: float | None) -> CaseState:
        """The case with candidate ``rank`` (0 = best) chosen for correction."""
        state, work = _need_work(state)
        if rank is None:
            raise StudioError("Choose a candidate.")
        return state.with_work(pipeline.choose_candidate(work, int(rank)))

    @user_errors
    def choose_candidate(self, state: CaseState | None, rank: float | None) -> Updates:
        """Start the correction from candidate ``rank`` (0 = best)."""
        return pipeline_screen(self.choose_state(state, rank))

    def choose_candidate_ui(self, state: CaseState | None, evt: gr.SelectData) -> Updates:
        """A click on a candidate in the gallery."""
        return self.choose_candidate(state, evt.index if isinstance(evt.index, int) else None)

    # -- clicks -------------------------------------------------------------------------------
    def refine_state(
        self, state: CaseState | None, x: float | None, y: float | None, mode: str | None
    ) -> tuple[CaseState, bool]:
        """The case after a click at ``(x, y)`` (slice pixels) in ``mode`` (``add``,
        ``remove``, ``box`` or the radio's label), and whether new candidates came of it."""
        state, work = _need_work(state)
        if x is None or y is None:
            raise StudioError("A click needs x and y pixel coordinates.")
        click_mode = pipeline.CLICK_MODES.get(mode or "", mode)
        if click_mode not in ("add", "remove", "box"):
            raise StudioError("Choose a click mode: add, remove or box.")
        had_brush = work.brushed is not None
        image = state.model_input  # the pipeline's input, not the display window
        guard = GuardConfig() if self.services.studio.refine_guard else None
        new = pipeline.click(work, self._predictor(state), image, x, y, click_mode, guard)  # type: ignore[arg-type]
        if new.rejected is not None and new.rejected is not work.rejected:
            gr.Warning(new.rejected[2])
        if had_brush and new.brushed is None and new.current is not work.current:
            gr.Info(
                "The click re-ran SAM, so the brush edits were replaced (undo brings them back)."
            )
        return state.with_work(new), new.candidates is not work.candidates

    @user_errors
    def refine(
        self, state: CaseState | None, x: float | None, y: float | None, mode: str | None
    ) -> Updates:
        """A click: refine the mask (or prompt SAM, or set a box corner); see
        :meth:`refine_state`."""
        start = time.perf_counter()
        could_submit = can_submit(state)
        new, changed = self.refine_state(state, x, y, mode)
        took = (time.perf_counter() - start) * 1000.0
        return click_screen(new, changed, took, could_submit=could_submit)

    def refine_ui(self, state: CaseState | None, mode: str | None, evt: gr.SelectData) -> Updates:
        """A click on the correction canvas (canvas pixels: the slice upscaled or shrunk, see
        :func:`~studio.views.canvas_shape`)."""
        index = evt.index if isinstance(evt.index, (list, tuple)) and len(evt.index) == 2 else None
        if index is None:
            raise gr.Error("Click on the image itself.")
        if state is None:
            return self.refine(state, float(index[0]), float(index[1]), mode)
        x, y = canvas_to_slice(float(index[0]), float(index[1]), state.slice.shape)
        return self.refine(state, x, y, mode)

    @user_errors
    def undo(self, state: CaseState | None) -> Updates:
        """Undo the last click, box corner, candidate choice or brush edit."""
        state, work = _need_work(state)
        return pipeline_screen(state.with_work(pipeline.undo(work)))

    @user_errors
    def reset(self, state: CaseState | None) -> Updates:
        """Back to what the pipeline gave (can be undone)."""
        state, work = _need_work(state)
        return pipeline_screen(state.with_work(pipeline.reset(work)))
