"""The Quality tab (rating studies, agreement report, creating a study) and the LLM observer
button beside the human SegEx form. Layout calls :func:`tab` inside its ``gr.Tabs`` and
:func:`llm_components` / :func:`attach_llm` in the rating column; handlers are in
:mod:`studio.quality_handlers`.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from studio.case_handlers import CaseHandlers
from studio.quality_handlers import MY_RATINGS_HEADERS, QualityHandlers
from studio.rating import RUBRIC_ITEMS, SCORE_LABELS, VERDICT_LABELS
from studio.services import Services

PRIVATE: dict[str, Any] = {"api_visibility": "private"}


def _rating_form() -> dict[str, Any]:
    return {
        "score": gr.Radio(list(SCORE_LABELS.values()), label="Score", elem_id="q-score"),
        "verdict": gr.Radio(list(VERDICT_LABELS), label="Verdict", elem_id="q-verdict"),
        "rubric": gr.CheckboxGroup(list(RUBRIC_ITEMS), label="Criteria met", elem_id="q-rubric"),
        "comment": gr.Textbox(label="Comment (optional)", lines=2, elem_id="q-comment"),
    }


def _components() -> dict[str, Any]:
    c: dict[str, Any] = {"session": gr.State(None, time_to_live=4 * 3600)}
    with gr.Row():
        c["studies_btn"] = gr.Button("My studies", size="sm", elem_id="q-studies")
        c["study"] = gr.Dropdown(choices=[], label="Study", elem_id="q-study", scale=2)
        c["next_btn"] = gr.Button("Next study case", variant="primary", elem_id="q-next")
    c["studies_md"] = gr.Markdown(elem_id="q-studies-md")
    with gr.Row():
        with gr.Column(scale=3):
            c["case_md"] = gr.Markdown(elem_id="q-case-md")
            c["image"] = gr.Image(
                label="Mask to rate (outline)", interactive=False, format="png", elem_id="q-image"
            )
        with gr.Column(scale=2, elem_id="q-form"):
            c.update(_rating_form())
            c["submit_btn"] = gr.Button("Submit study rating", elem_id="q-submit")
    c["mine"] = gr.Dataframe(
        headers=MY_RATINGS_HEADERS, label="My ratings in this study", elem_id="q-mine"
    )
    with gr.Row():
        c["revise_pick"] = gr.Dropdown(choices=[], label="Revise one of my ratings", scale=3)
        c["revise_btn"] = gr.Button("Load for revision", size="sm", elem_id="q-revise")
    with gr.Accordion("Study report (admins; anyone when not blinded)", open=False):
        c["report_btn"] = gr.Button("Agreement report", elem_id="q-report")
        c["report_md"] = gr.Markdown(elem_id="q-report-md")
        c["report_plot"] = gr.Plot(elem_id="q-report-plot")
        c["report_files"] = gr.File(
            label="CSV for a statistician", file_count="multiple", elem_id="q-report-files"
        )
    with gr.Accordion("Create a study (admins)", open=False):
        c["new_name"] = gr.Textbox(label="Study name", elem_id="q-new-name")
        c["new_raters"] = gr.Textbox(label="Raters (comma-separated)", elem_id="q-new-raters")
        c["new_per_case"] = gr.Number(value=2, precision=0, label="Ratings per case")
        c["new_structure"] = gr.Textbox(label="Only this structure (optional)")
        c["new_blinded"] = gr.Checkbox(value=True, label="Blinded")
        c["create_btn"] = gr.Button("Create from every corrected case", elem_id="q-create")
        c["create_md"] = gr.Markdown(elem_id="q-create-md")
    return c


def tab(services: Services, cases: CaseHandlers, annotator: Any) -> None:
    """The Quality tab and its wiring (call inside the page's ``gr.Tabs``)."""
    handlers = QualityHandlers(services, cases)
    with gr.Tab("Quality", id="quality"):
        c = _components()
    form = [c["score"], c["verdict"], c["rubric"], c["comment"]]
    listing = [c["mine"], c["revise_pick"]]
    c["studies_btn"].click(handlers.studies, [annotator], [c["study"], c["studies_md"]], **PRIVATE)
    shown = [c["session"], c["image"], c["case_md"], *form]
    c["next_btn"].click(handlers.next_case, [c["study"], annotator], [*shown, *listing], **PRIVATE)
    for control in (c["score"], c["verdict"], c["rubric"]):
        control.input(handlers.count_edit, [c["session"]], [c["session"]], **PRIVATE)
    c["submit_btn"].click(
        handlers.submit,
        [c["session"], *form, annotator],
        [*shown, *listing],
        trigger_mode="once",
        api_name="quality_submit",  # the public /submit is the Annotate tab's
        **PRIVATE,
    )
    c["revise_btn"].click(
        handlers.revise, [c["revise_pick"], c["study"], annotator], shown, **PRIVATE
    )
    c["report_btn"].click(
        handlers.report,
        [c["study"], annotator],
        [c["report_md"], c["report_plot"], c["report_files"]],
        **PRIVATE,
    )
    new = [c[k] for k in ("new_name", "new_raters", "new_per_case", "new_structure")]
    c["create_btn"].click(
        handlers.create, [*new, c["new_blinded"], annotator], [c["create_md"]], **PRIVATE
    )


def llm_components(services: Services) -> tuple[Any, Any]:
    """The LLM observer's button and answer (call in the rating column)."""
    enabled = services.settings.llm_enabled
    button = gr.Button(
        "Ask the LLM observer (after you submitted)" if enabled else "LLM observer: off",
        size="sm",
        interactive=enabled,
        elem_id="llm-ask",
    )
    answer = gr.Markdown(elem_id="llm-md")
    return button, answer


def attach_llm(services: Services, cases: CaseHandlers, state: Any, parts: tuple[Any, Any]) -> None:
    """Wire the LLM observer's button (the answer appears only after the human's rating)."""
    button, answer = parts
    handlers = QualityHandlers(services, cases)
    button.click(handlers.ask_llm, [state], [answer], **PRIVATE)
