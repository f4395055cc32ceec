"""The Models tab: model versions with lineage, gate scores and training time; activate and
roll back (admins); the active version's simulated-session plot. Handlers are in
:mod:`studio.models_handlers`; the page calls :func:`tab` inside its ``gr.Tabs``."""

from __future__ import annotations

from typing import Any

import gradio as gr

from studio.case_handlers import CaseHandlers
from studio.models_handlers import VERSION_HEADERS, ModelsHandlers
from studio.page import Page
from studio.segment_handlers import SegmentHandlers
from studio.services import Services
from studio.wiring import MODEL_SLOTS

PRIVATE: dict[str, Any] = {"api_visibility": "private"}


COLUMN_WIDTHS = ["4%", "13%", "10%", "6%", "10%", "8%", "10%", "9%", "9%", "21%"]
"""Of :data:`~studio.models_handlers.VERSION_HEADERS`: the gate's reason gets the room (without
widths the narrow columns broke their headers letter by letter and the reason was cut off)."""


def _components() -> dict[str, Any]:
    c: dict[str, Any] = {}
    with gr.Row():
        c["summary"] = gr.Markdown(elem_id="models-summary")
        c["refresh"] = gr.Button(
            "Refresh", size="sm", scale=0, min_width=110, elem_id="models-refresh"
        )
    c["table"] = gr.Dataframe(
        headers=VERSION_HEADERS,
        label="Model versions (newest first; held-out scores of the version, its parent's in "
        "brackets)",
        interactive=False,
        wrap=True,
        column_widths=COLUMN_WIDTHS,
        elem_id="models-table",
    )
    with gr.Row():
        c["choice"] = gr.Dropdown(choices=[], label="Version", scale=3, elem_id="models-choice")
        c["activate"] = gr.Button("Activate (admins)", elem_id="models-activate")
        c["rollback"] = gr.Button("Roll back to the parent (admins)", elem_id="models-rollback")
    c["plot"] = gr.Image(
        label="Simulated annotation session of the active version",
        interactive=False,
        visible=False,  # shown when the active version has one
        elem_id="models-plot",
    )
    return c


def tab(services: Services, cases: CaseHandlers, page: Page) -> None:
    """The Models tab and its wiring (call inside the page's ``gr.Tabs``). After an activation
    or a rollback the page's model chooser and its description are refreshed too, so the top of
    the page names the version that now answers."""
    handlers = ModelsHandlers(services, cases)
    with gr.Tab("Models", id="models") as models_tab:
        c = _components()
    shown = [c["table"], c["choice"], c["summary"], c["plot"]]
    models_tab.select(handlers.refresh, None, shown, **PRIVATE)
    c["refresh"].click(handlers.refresh, None, shown, **PRIVATE)
    annotator = page["annotator"]
    changed = [
        c["activate"].click(handlers.activate, [c["choice"], annotator], shown, **PRIVATE),
        c["rollback"].click(handlers.rollback, [annotator], shown, **PRIVATE),
    ]
    page_models = SegmentHandlers(services).refresh_models
    for event in changed:
        page.on(event.success, page_models, outputs=MODEL_SLOTS, **PRIVATE)
