r"""The page: components by name (:class:`~studio.page.Page`), their arrangement, and which
handler each event calls (wired by slot name, see :mod:`studio.wiring`).

``build_ui(services)`` returns the ``gr.Blocks``; ``launch_options(services)`` the arguments of
``launch()`` (theme, CSS and the shortcut script go there in Gradio 6). Stable API names (for
``gradio_client``): ``/predict``, ``/choose_candidate``, ``/refine``, ``/undo``, ``/reset``,
``/submit``, ``/download``, ``/statistics`` (see :mod:`.api_handlers` and the API tab).

Layout of the Annotate tab (fits 1366×768 down to the candidates' scores): a case column on
the left, the large correction canvas in the middle with the slice navigation above it, and
the candidates with their scores, the click mode and the SegEx rating on the right; the
pipeline's intermediate images (slice, GradCAM, prompts) sit in a row below.

**Adding a tab** (the pattern the Volume and Quality tabs follow):

1. write ``studio/<feature>_view.py`` with a function ``tab(page, services)`` that opens
   ``with gr.Tab("Feature", id="feature"):``, builds its components (``page.add(name, ...)``
   for any the rest of the page needs; unique ``elem_id``\ s for the browser tests), and wires
   its events: ``page.on(page["feature_button"].click, handlers.do, inputs=[...],
   outputs=[...], api_visibility="private")``, where each handler returns
   :data:`~studio.page.Updates` (only the slots it changes). Handlers go in
   ``studio/<feature>_handlers.py`` (no layout there, so they are unit-tested without a page);
   a model call adds ``**model_queue(services)`` (see :mod:`studio.wiring`);
2. add that function to :data:`SIDE_TABS` below, in the position the tab should appear.

Components of the Annotate tab are read by name (``page["state"]``, ``page["annotator"]``,
``page["model"]``); never by position.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from adasam.imaging import WINDOW_CHOICES
from adasam.settings import ASSETS_DIR
from studio import auxol_view, models_view, quality_view, volume_view
from studio.case_handlers import CaseHandlers
from studio.editor import ADD_HEX, BRUSH_OPACITY, REMOVE_HEX
from studio.identity import ClientAddress, LoginGuard
from studio.page import Page
from studio.pipeline import CLICK_MODES
from studio.rating import RUBRIC_ITEMS, SCORE_LABELS, VERDICT_LABELS
from studio.screens import CUSTOM_WINDOW, FILE_WINDOW
from studio.services import Services
from studio.texts import API_HELP, INTRO, SHORTCUTS_HELP
from studio.views import SCORE_NOTE
from studio.wiring import wire_api, wire_page

CSS_PATH = ASSETS_DIR / "studio.css"
HEAD_PATH = ASSETS_DIR / "studio_head.html"  # the keyboard shortcuts and the canvas zoom


def _image(page: Page, name: str, elem_id: str, **options: Any) -> gr.Image:
    """A read-only PNG image without the label badge on it (captions go beside)."""
    return page.add(
        name,
        gr.Image(
            interactive=False,
            format="png",
            show_label=False,
            elem_id=elem_id,
            buttons=["fullscreen"],
            **options,
        ),
    )


def _header(page: Page, services: Services) -> None:
    """One compact row (the workbench must start high at 1366×768): the title and a line of
    introduction with the model's description under it, then the annotator and the model."""
    studio = services.studio
    choices = services.catalog.choices()
    default = services.catalog.default(choices)
    with gr.Row(elem_id="header", equal_height=False):
        with gr.Column(scale=5, min_width=320):
            gr.Markdown(INTRO, elem_id="intro")
            page.add(
                "model_md",
                gr.Markdown(default.describe() if default else "", elem_id="model-md"),
            )
        with gr.Column(scale=2, min_width=200):
            if studio.identity == "oauth":
                gr.LoginButton()
            page.add(
                "annotator",
                gr.Textbox(
                    label="Annotator",
                    placeholder="your name (stored with every correction and rating)",
                    value=studio.default_annotator,
                    visible=studio.identity == "name",
                    elem_id="annotator",
                    max_lines=1,
                ),
            )
        with gr.Column(scale=2, min_width=200):
            page.add(
                "model",
                gr.Dropdown(
                    choices=[(c.label, c.key) for c in choices],
                    value=None if default is None else default.key,
                    label="Model",
                    elem_id="model",
                ),
            )


def _case_column(page: Page, services: Services) -> None:
    default = services.catalog.default()
    structures = [] if default is None else list(default.structures)
    page.add("next_case", gr.Button("Next case (N)", variant="primary", elem_id="next-case"))
    page.add("worklist_md", gr.Markdown(elem_id="worklist-md"))
    page.add(
        "upload",
        gr.File(
            label="Or upload a slice: PNG/JPEG/TIFF, DICOM, NIfTI, .npy",
            file_count="single",
            type="filepath",
            elem_id="upload",
            height=112,
        ),
    )
    page.add(
        "examples",
        gr.Gallery(
            value=[(e.thumbnail, e.title) for e in services.examples],
            label="Examples (click one)",
            columns=3,
            height=150,
            allow_preview=False,
            interactive=False,
            elem_id="examples",
        ),
    )
    page.add(
        "structures",
        gr.CheckboxGroup(
            choices=structures, value=structures, label="Structures", elem_id="structures"
        ),
    )
    page.add("run", gr.Button("Run the pipeline", elem_id="run"))
    _window_controls(page)


def _window_controls(page: Page) -> None:
    with gr.Accordion("Display window", open=False):
        page.add(
            "window",
            gr.Dropdown(
                choices=[FILE_WINDOW, *WINDOW_CHOICES, CUSTOM_WINDOW],
                value=FILE_WINDOW,
                label="Window preset (display only: the model sees its own)",
                elem_id="window",
            ),
        )
        with gr.Row():
            page.add("level", gr.Number(label="Level", elem_id="level"))
            page.add("width", gr.Number(label="Width", elem_id="width"))
        page.add("apply_window", gr.Button("Apply level/width", size="sm"))
        page.add(
            "axis",
            gr.Radio(
                [("sagittal", 0), ("coronal", 1), ("axial", 2)],
                value=2,
                label="Volume axis",
                visible=False,
                elem_id="axis",
            ),
        )


def _slice_navigation(page: Page) -> None:
    """Previous/next buttons (← →), a slider and a typed number, 1-based; the slider shows
    only for a case of more than one slice (see :func:`studio.screens.slice_controls`)."""
    with gr.Row(elem_id="slice-nav"):
        page.add(
            "slice_prev",
            gr.Button("◀", size="sm", elem_id="slice-prev", scale=0, min_width=44),
        )
        page.add(
            "slice_slider",
            gr.Slider(
                1,
                2,  # Gradio needs minimum < maximum; hidden until a volume is loaded
                value=1,
                step=1,
                label="Slice 1 of 1",
                interactive=False,
                visible=False,
                elem_id="slice",
                scale=4,
            ),
        )
        page.add(
            "slice_number",
            gr.Number(
                value=1,
                precision=0,
                label="Go to slice",
                interactive=False,
                elem_id="slice-number",
                scale=1,
                min_width=90,
            ),
        )
        page.add(
            "slice_next",
            gr.Button("▶", size="sm", elem_id="slice-next", scale=0, min_width=44),
        )


def _canvas_column(page: Page) -> None:
    page.add("case_md", gr.Markdown(elem_id="case-md"))
    _slice_navigation(page)
    with gr.Row(elem_id="canvas-tools"):
        for name, text in (("zoom_out", "−"), ("zoom_fit", "fit"), ("zoom_in", "+")):
            gr.Button(text, size="sm", elem_id=f"zoom-{name[5:]}", scale=0, min_width=40)
        page.add("correction_status", gr.Markdown(elem_id="correct-md"))
    with gr.Column(elem_id="canvas-box"):
        _image(page, "correction", "correct-img", height=None)


def _review_column(page: Page, services: Services) -> None:
    # the thumbnails, then their scores under them at the column's full width
    page.add(
        "gallery",
        gr.Gallery(
            columns=3,
            height=112,
            allow_preview=False,
            interactive=False,
            format="png",
            show_label=False,
            elem_id="candidates",
        ),
    )
    page.add("candidates_md", gr.Markdown(elem_id="candidates-md"))
    gr.Markdown(SCORE_NOTE, elem_id="score-note", elem_classes=["small"])
    page.add(
        "structure_radio",
        gr.Radio(choices=[], label="Structure shown", visible=False, elem_id="structure"),
    )
    page.add(
        "click_mode",
        gr.Radio(list(CLICK_MODES), value="Add (+)", label="Click mode", elem_id="click-mode"),
    )
    with gr.Row():
        page.add("undo", gr.Button("Undo (U)", size="sm", elem_id="undo"))
        page.add("reset", gr.Button("Reset", size="sm", elem_id="reset"))
    _rating(page, services)


def _rating(page: Page, services: Services) -> None:
    gr.Markdown("**SegEx rating of the model's mask**")
    page.add("score", gr.Radio(list(SCORE_LABELS.values()), label="Score", elem_id="score"))
    page.add("verdict", gr.Radio(list(VERDICT_LABELS), label="Verdict", elem_id="verdict"))
    page.add("rubric", gr.CheckboxGroup(list(RUBRIC_ITEMS), label="Criteria met", elem_id="rubric"))
    page.add(
        "comment",
        gr.Textbox(label="Comment (optional)", lines=1, max_lines=6, elem_id="comment"),
    )
    page.add(
        "submit_button",
        gr.Button(
            "Submit correction and rating (S)",
            variant="primary",
            interactive=False,
            elem_id="submit",
        ),
    )
    page.add("confirmation", gr.Markdown(elem_id="confirmation"))
    llm_ask, llm_md = quality_view.llm_components(services)
    page.add("llm_ask", llm_ask)
    page.add("llm_md", llm_md)
    page.add("download", gr.Button("Prepare downloads", size="sm", elem_id="download"))
    page.add(
        "downloads",
        gr.File(
            label="Downloads: mask PNG, mask NIfTI, overlay",
            file_count="multiple",
            interactive=False,
            elem_id="downloads",
        ),
    )


def _pipeline_row(page: Page) -> None:
    """The intermediate images, captions beside (not on) them."""
    with gr.Row(elem_id="pipeline-row"):
        with gr.Column(scale=1, min_width=200):
            page.add("structures_md", gr.Markdown(elem_id="structures-md"))
            page.add("steps_md", gr.Markdown(elem_id="steps-md"))
            page.add("timings_md", gr.Markdown(elem_id="timings", elem_classes=["timings"]))
            auxol_image, auxol_md = auxol_view.components()
            page.add("auxol_image", auxol_image)
            page.add("auxol_md", auxol_md)
        for name, elem_id in (
            ("slice_image", "slice-img"),
            ("heatmap", "heatmap-img"),
            ("prompts", "prompts-img"),
        ):
            with gr.Column(scale=1, min_width=160):
                gr.Markdown(
                    {"slice_image": "Slice", "heatmap": "GradCAM", "prompts": "Prompts"}[name],
                    elem_classes=["caption"],
                )
                _image(page, name, elem_id, height=200)


def _brush(page: Page) -> None:
    with gr.Accordion("Brush (paint the mask by hand)", open=False) as brush:
        page.add("brush_tab", brush)
        page.add(
            "editor",
            gr.ImageEditor(
                type="numpy",
                image_mode="RGBA",
                format="png",
                sources=(),
                transforms=(),
                brush=gr.Brush(
                    colors=[(ADD_HEX, BRUSH_OPACITY), (REMOVE_HEX, BRUSH_OPACITY)],
                    default_color=(ADD_HEX, BRUSH_OPACITY),
                    color_mode="fixed",
                    default_size=6,
                ),
                eraser=gr.Eraser(default_size=6),
                layers=False,
                label="Blue brush adds, red brush removes",
                elem_id="editor",
            ),
        )
        page.add("apply_brush", gr.Button("Apply brush edits", elem_id="apply-brush"))
        page.add("brush_md", gr.Markdown(elem_id="brush-md"))


def _annotate_tab(page: Page, services: Services) -> None:
    with gr.Row(elem_id="workbench"):
        with gr.Column(scale=2, min_width=230, elem_id="case-column"):
            _case_column(page, services)
        with gr.Column(scale=5, elem_id="canvas-column"):
            _canvas_column(page)
        with gr.Column(scale=3, min_width=300, elem_id="review-column"):
            _review_column(page, services)
    gr.Markdown(SHORTCUTS_HELP, elem_id="shortcuts")
    _pipeline_row(page)
    _brush(page)
    with gr.Accordion("Result (JSON)", open=False):
        page.add("result_json", gr.JSON(elem_id="result-json"))
    _api_row(page)


API_INPUTS: dict[str, Any] = {
    "api_file": lambda: gr.File(type="filepath", label="file"),
    "api_model": lambda: gr.Textbox(value="", label="model"),
    "api_structures": lambda: gr.Textbox(value="", label="structures"),
    "api_slice": lambda: gr.Number(value=-1, precision=0, label="slice_index"),
    "api_window": lambda: gr.Textbox(value="", label="window"),
    "api_rank": lambda: gr.Number(value=0, precision=0, label="rank"),
    "api_x": lambda: gr.Number(value=None, label="x"),
    "api_y": lambda: gr.Number(value=None, label="y"),
    "api_mode": lambda: gr.Textbox(value="add", label="mode"),
    "api_annotator": lambda: gr.Textbox(value="", label="annotator"),
    "api_score": lambda: gr.Number(value=None, precision=0, label="score"),
    "api_verdict": lambda: gr.Textbox(value="", label="verdict"),
    "api_rubric": lambda: gr.Textbox(value="", label="rubric"),
    "api_comment": lambda: gr.Textbox(value="", label="comment"),
    "api_json": lambda: gr.JSON(label="result"),
    "api_image": lambda: gr.Image(format="png", label="image"),
    "api_heatmap": lambda: gr.Image(format="png", label="heatmap"),
    "api_prompts": lambda: gr.Image(format="png", label="prompts"),
    "api_candidates": lambda: gr.Gallery(format="png", label="candidates"),
    "api_files": lambda: gr.File(file_count="multiple", label="files"),
}
API_BUTTONS = ("predict", "choose", "refine", "undo", "reset", "submit", "download")


def _api_row(page: Page) -> None:
    """Inputs and outputs of the API-only endpoints (the page uses its own controls)."""
    with gr.Row(visible=False):
        for name, make in API_INPUTS.items():
            page.add(name, make())
        for name in API_BUTTONS:
            page.add(f"api_{name}_button", gr.Button(name))


def _volume_tab(page: Page, services: Services) -> None:
    with gr.Tab("Volume", id="volume"):
        volume_view.build(services, model=page["model"], annotator=page["annotator"])


def _statistics_tab(page: Page, services: Services) -> None:
    with gr.Tab("Statistics", id="stats") as stats_tab:
        page.add("stats_tab", stats_tab)
        page.add("stats_refresh", gr.Button("Refresh", size="sm", elem_id="stats-refresh"))
        page.add("stats_md", gr.Markdown(elem_id="stats-md"))
        page.add("stats_plot", gr.Plot(elem_id="stats-plot"))


def _quality_tab(page: Page, services: Services) -> None:
    quality_view.tab(services, CaseHandlers(services), page["annotator"])


def _models_tab(page: Page, services: Services) -> None:
    models_view.tab(services, CaseHandlers(services), page)


def _worklist_tab(page: Page, services: Services) -> None:
    with gr.Tab("Worklist", id="worklist"):
        gr.Markdown(
            "Add slices to the shared worklist: each file becomes one case. **Next case** walks "
            "every annotator through every case once, each in their own order, and never hands "
            "one case to two annotators at the same time."
        )
        page.add(
            "batch_files",
            gr.File(label="Files to add", file_count="multiple", type="filepath", elem_id="batch"),
        )
        page.add("batch_add", gr.Button("Add to the worklist", elem_id="batch-add"))
        page.add("batch_examples", gr.Button("Add the example cases", size="sm"))
        page.add("batch_md", gr.Markdown(elem_id="batch-md"))


def _api_tab(page: Page, services: Services) -> None:
    with gr.Tab("API", id="api"):
        gr.Markdown(API_HELP)


SIDE_TABS: tuple[Callable[[Page, Services], None], ...] = (
    _volume_tab,
    _statistics_tab,
    _quality_tab,
    _models_tab,
    _worklist_tab,
    _api_tab,
)
"""The tabs after Annotate, in order. A new tab is one function ``(page, services) -> None``
added here (see the module docstring)."""


def build_page(services: Services) -> tuple[gr.Blocks, Page]:
    """The studio's ``gr.Blocks`` (not launched) and its named components."""
    page = Page()
    with gr.Blocks(
        title="ADA-SAM Studio",
        analytics_enabled=False,
        delete_cache=(1800, 7200),
        fill_width=True,  # the workbench uses the whole width of a 1366 px screen
    ) as demo:
        page.add("state", gr.State(None, time_to_live=4 * 3600))
        page.add("browser", gr.BrowserState({}, storage_key="adasam-studio"))
        _header(page, services)
        with gr.Tabs():
            with gr.Tab("Annotate", id="annotate"):
                _annotate_tab(page, services)
            for side_tab in SIDE_TABS:
                side_tab(page, services)
        handlers = wire_api(page, services)
        wire_page(page, demo, handlers)
    return demo, page


def build_ui(services: Services) -> gr.Blocks:
    """The studio's ``gr.Blocks`` (not launched)."""
    return build_page(services)[0]


def launch_options(services: Services) -> dict[str, Any]:
    """Keyword arguments of ``demo.launch()`` for these settings."""
    studio = services.studio
    options: dict[str, Any] = {
        "server_name": studio.host,
        "server_port": studio.port,
        "max_file_size": f"{studio.max_upload_mb}mb",
        "show_error": False,
        "footer_links": ["api", "settings"],
        "css_paths": [CSS_PATH] if Path(CSS_PATH).is_file() else None,
        "head_paths": [HEAD_PATH] if Path(HEAD_PATH).is_file() else None,
        "theme": gr.themes.Soft(primary_hue="sky"),
        "ssr_mode": False,
    }
    if studio.identity == "password":
        options["auth"] = LoginGuard(studio.users)  # rate-limited per name and address, logged
        middleware = Middleware(ClientAddress, trusted_proxies=studio.trusted_proxies)
        options["app_kwargs"] = {"middleware": [middleware]}  # the client address
        options["auth_message"] = "ADA-SAM Studio: log in with the name your team gave you."
    return options
