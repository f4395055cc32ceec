"""Which handler each event calls, wired by slot name (see :mod:`studio.page`).

The API listeners are wired first, so they get the plain names (stable, plain inputs, compact
outputs); the page's own listeners are private (``api_visibility="private"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio import auxol_view, quality_view
from studio.api_handlers import ApiHandlers
from studio.case_handlers import CaseHandlers
from studio.page import Page, Updates
from studio.review_handlers import ReviewHandlers
from studio.screens import CASE_SCREEN_SLOTS, CLICK_SLOTS, PIPELINE_SLOTS
from studio.segment_handlers import SegmentHandlers
from studio.services import Services

MODEL_QUEUE = "model"
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
MODEL_SLOTS = ("model", "model_md", "structures")
RUN_INPUTS = ("state", "model", "structures")
RATING_SLOTS = ("score", "verdict", "rubric", "comment")


@dataclass(frozen=True)
class Handlers:
    """The handler objects of one page (feature modules may add their own beside)."""

    services: Services
    cases: CaseHandlers
    segment: SegmentHandlers
    review: ReviewHandlers
    api: ApiHandlers

    @property
    def model_queue(self) -> dict[str, Any]:
        """:func:`model_queue` of these services."""
        return model_queue(self.services)


def model_queue(services: Services) -> dict[str, Any]:
    """Options of every event that calls a model (any tab's): one queue,
    ``ADASAM_MODEL_CONCURRENCY`` calls at a time across all users and tabs (the only
    serialisation of model calls; the predictors themselves take no lock)."""
    return {
        "concurrency_id": MODEL_QUEUE,
        "concurrency_limit": services.studio.model_concurrency,
    }


def _empty() -> Updates:
    """Clears the upload box (after each upload)."""
    return {"upload": None}


def wire_api(page: Page, services: Services) -> Handlers:
    """Create the handlers and wire the ``gradio_client`` endpoints."""
    cases = CaseHandlers(services)
    segment = SegmentHandlers(services)
    review = ReviewHandlers(services, cases)
    api = ApiHandlers(cases, segment, review)
    h = Handlers(services, cases, segment, review, api)
    edit_out = ("state", "api_json", "api_image")
    page.on(
        page["api_predict_button"].click,
        api.predict,
        inputs=["api_file", "api_model", "api_structures", "api_slice", "api_window"],
        outputs=["state", "api_json", "api_heatmap", "api_prompts", "api_candidates"],
        api_name="predict",
        **h.model_queue,
    )
    page.on(
        page["api_choose_button"].click,
        api.choose_candidate,
        inputs=["state", "api_rank"],
        outputs=edit_out,
        api_name="choose_candidate",
    )
    page.on(
        page["api_refine_button"].click,
        api.refine,
        inputs=["state", "api_x", "api_y", "api_mode"],
        outputs=edit_out,
        api_name="refine",
        **h.model_queue,
    )
    for name in ("undo", "reset"):
        page.on(
            page[f"api_{name}_button"].click,
            getattr(api, name),
            inputs=["state"],
            outputs=edit_out,
            api_name=name,
        )
    page.on(
        page["api_submit_button"].click,
        api.submit,
        inputs=["state", "api_annotator", "api_score", "api_verdict", "api_rubric", "api_comment"],
        outputs=["state", "api_json", "api_files"],
        api_name="submit",
    )
    page.on(
        page["api_download_button"].click,
        api.download,
        inputs=["state"],
        outputs=["api_files"],
        api_name="download",
    )
    page.on(
        page["stats_refresh"].click,
        review.statistics,
        outputs=["stats_md", "stats_plot"],
        api_name="statistics",
    )
    return h


def _clear_rating(page: Page, h: Handlers, event: Any) -> Any:
    """After a new pipeline result or another structure: an empty rating form (one
    structure's rating is never stored with another's mask). Returns ``event``."""
    page.on(event.success, h.review.clear_rating, outputs=RATING_SLOTS, **PRIVATE)
    return event


def _chain_run(page: Page, h: Handlers, event: Any) -> Any:
    """After a case is on screen: run the pipeline on it (the run's dependency)."""
    ran = page.on(
        event.success,
        h.segment.run_loaded,  # the load's time counts against the request's budget
        inputs=RUN_INPUTS,
        outputs=PIPELINE_SLOTS,
        show_progress_on=[page["gallery"]],
        **PRIVATE,
        **h.model_queue,
    )
    return _clear_rating(page, h, ran)


def _wire_cases(page: Page, h: Handlers) -> list[Any]:
    """Case loaders, each chained to a pipeline run; the runs' dependencies."""
    on_slice: dict[str, Any] = {**PRIVATE, "show_progress_on": [page["correction"]]}
    uploaded = page.on(
        page["upload"].upload,
        h.cases.load_upload,
        inputs=["upload", "axis", "model", "annotator"],
        outputs=CASE_SCREEN_SLOTS,
        **on_slice,
    )
    # Empty the upload box for the next file, after success and after failure alike.
    page.on(uploaded.success, _empty, outputs=["upload"], **PRIVATE)
    page.on(uploaded.failure, _empty, outputs=["upload"], **PRIVATE)
    ran = [_chain_run(page, h, uploaded)]
    case_and_model = (*CASE_SCREEN_SLOTS, *MODEL_SLOTS)
    for trigger, handler, inputs, outputs in (
        (page["examples"].select, h.cases.load_example, ["model", "annotator"], case_and_model),
        (
            page["next_case"].click,
            h.cases.next_case,
            ["annotator", "model", "state"],
            (*case_and_model, "worklist_md"),
        ),
        (page["slice_slider"].release, h.cases.go_to_slice, ["state", "slice_slider"], None),
        (page["slice_number"].submit, h.cases.go_to_slice, ["state", "slice_number"], None),
        (page["slice_prev"].click, h.cases.previous_slice, ["state"], None),
        (page["slice_next"].click, h.cases.next_slice, ["state"], None),
        (page["axis"].input, h.cases.change_axis, ["state", "axis"], None),
    ):
        event = page.on(
            trigger, handler, inputs=inputs, outputs=outputs or CASE_SCREEN_SLOTS, **on_slice
        )
        ran.append(_chain_run(page, h, event))
    # the display window only: the pipeline's result and the edits stay (no new run)
    window_inputs = ["state", "window", "level", "width"]
    page.on(
        page["window"].input,
        h.cases.change_window,
        inputs=window_inputs,
        outputs=CASE_SCREEN_SLOTS,
        **on_slice,
    )
    page.on(
        page["apply_window"].click,
        h.cases.change_window_custom,
        inputs=["state", "level", "width"],
        outputs=CASE_SCREEN_SLOTS,
        **on_slice,
    )
    page.on(
        page["batch_add"].click,
        h.cases.import_batch,
        inputs=["batch_files"],
        outputs=["batch_md"],
        **PRIVATE,
    )
    page.on(page["batch_examples"].click, h.cases.import_examples, outputs=["batch_md"], **PRIVATE)
    return ran


def _wire_segment(page: Page, h: Handlers) -> list[Any]:
    """Model steps; the dependencies after which the chosen mask changed (run, choice)."""
    on_mask: dict[str, Any] = {**PRIVATE, "show_progress_on": [page["correction"]]}
    changed = page.on(
        page["model"].input,
        h.segment.model_changed,
        inputs=["model"],
        outputs=["model_md", "structures"],
        **PRIVATE,
    )
    rerun = page.on(
        changed.success,
        h.segment.rerun,
        inputs=RUN_INPUTS,
        outputs=PIPELINE_SLOTS,
        **PRIVATE,
        **h.model_queue,
    )
    _clear_rating(page, h, rerun)
    run = page.on(
        page["run"].click,
        h.segment.run,
        inputs=RUN_INPUTS,
        outputs=PIPELINE_SLOTS,
        show_progress_on=[page["gallery"]],
        **PRIVATE,
        **h.model_queue,
    )
    _clear_rating(page, h, run)
    selected = page.on(
        page["structure_radio"].input,
        h.segment.select_structure,
        inputs=["state", "structure_radio"],
        outputs=PIPELINE_SLOTS,
        **PRIVATE,
    )
    _clear_rating(page, h, selected)
    chosen = page.on(
        page["gallery"].select,
        h.segment.choose_candidate_ui,
        inputs=["state"],
        outputs=PIPELINE_SLOTS,
        **on_mask,
    )
    page.on(
        page["correction"].select,
        h.segment.refine_ui,
        inputs=["state", "click_mode"],
        outputs=CLICK_SLOTS,
        trigger_mode="multiple",
        show_progress="hidden",
        **PRIVATE,
        **h.model_queue,
    )
    for name in ("undo", "reset"):
        page.on(
            page[name].click,
            getattr(h.segment, name),
            inputs=["state"],
            outputs=PIPELINE_SLOTS,
            **on_mask,
        )
    return [run, chosen]


def _wire_review(page: Page, h: Handlers) -> Any:
    """Brush, submission, downloads, statistics; the submission's dependency."""
    page.on(
        page["brush_tab"].expand,
        h.review.open_editor,
        inputs=["state"],
        outputs=["state", "editor", "brush_md"],
        **PRIVATE,
    )
    page.on(  # the editor is no output: it stays usable, strokes and all
        page["apply_brush"].click,
        h.review.apply_brush,
        inputs=["state", "editor"],
        outputs=["state", "correction", "correction_status", "result_json", "brush_md"],
        **PRIVATE,
        show_progress_on=[page["correction"]],
    )
    submitted = page.on(
        page["submit_button"].click,
        h.review.submit,
        inputs=["state", "annotator", "score", "verdict", "rubric", "comment", "editor", "browser"],
        outputs=[*PIPELINE_SLOTS, "browser"],
        trigger_mode="once",
        show_progress_on=[page["confirmation"]],
        **PRIVATE,
    )
    page.on(
        page["download"].click,
        h.review.downloads,
        inputs=["state", "editor"],
        outputs=["downloads"],
        **PRIVATE,
    )
    page.on(
        page["stats_tab"].select, h.review.statistics, outputs=["stats_md", "stats_plot"], **PRIVATE
    )
    return submitted


def _chain_restored_model(page: Page, h: Handlers, restored: Any) -> None:
    """After a restore, the model drop-down shows the model the restored case ran with."""
    page.on(
        restored.success,
        h.segment.show_case_model,
        inputs=["state", "model"],
        outputs=MODEL_SLOTS,
        **PRIVATE,
    )


def wire_page(page: Page, demo: gr.Blocks, h: Handlers) -> None:
    """The page's own events (not part of the API)."""
    loaded = page.on(demo.load, h.segment.refresh_models, outputs=MODEL_SLOTS, **PRIVATE)
    page.state_hook = h.services.drafts.keep  # every new state of an annotator's case
    restored = page.on(
        loaded.then,
        h.review.restore,
        inputs=["browser", "annotator", "state"],
        outputs=[*CASE_SCREEN_SLOTS, "annotator"],
        **PRIVATE,
    )
    _chain_restored_model(page, h, restored)
    page.on(
        page["annotator"].blur,
        h.review.remember_name,
        inputs=["browser", "annotator"],
        outputs=["browser"],
        **PRIVATE,
    )
    ran = _wire_cases(page, h)
    changed = _wire_segment(page, h)
    submitted = _wire_review(page, h)
    auxol_view.attach(
        h.services,
        [*ran, *changed, submitted],
        page["state"],
        (page["auxol_image"], page["auxol_md"]),
    )
    quality_view.attach_llm(h.services, h.cases, page["state"], (page["llm_ask"], page["llm_md"]))
