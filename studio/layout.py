"""The page: components, their arrangement, and which handler each event calls.

``build_ui(services)`` returns the ``gr.Blocks``; ``launch_options(services)`` the arguments of
``launch()`` (theme and CSS go there in Gradio 6). Stable API names (for ``gradio_client``):

- ``/predict`` (file, model, structures, slice_index, window): decode and run the pipeline;
- ``/choose_candidate`` (rank), ``/refine`` (x, y, mode), ``/undo``, ``/reset``;
- ``/submit`` (annotator, score, verdict, rubric, comment): store correction and rating;
- ``/download``, ``/statistics``.

The page's own events are private (``api_visibility="private"``); see :mod:`.api_handlers`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from adasam.imaging import WINDOW_CHOICES
from adasam.settings import ASSETS_DIR
from studio import auxol_view, models_view, quality_view, volume_view
from studio.api_handlers import ApiHandlers
from studio.case_handlers import CaseHandlers
from studio.editor import ADD_HEX, BRUSH_OPACITY, REMOVE_HEX
from studio.pipeline import CLICK_MODES
from studio.rating import RUBRIC_ITEMS, SCORE_LABELS, VERDICT_LABELS
from studio.review_handlers import ReviewHandlers
from studio.screens import CUSTOM_WINDOW, FILE_WINDOW
from studio.segment_handlers import SegmentHandlers
from studio.services import Services
from studio.texts import API_HELP, INTRO

CSS_PATH = ASSETS_DIR / "studio.css"
MODEL_QUEUE = "model"


def _empty() -> None:
    """Clears a component (the upload box after each upload)."""
    return None


def _window_choices() -> list[str]:
    return [FILE_WINDOW, *WINDOW_CHOICES, CUSTOM_WINDOW]


def build_ui(services: Services) -> gr.Blocks:
    """The studio's ``gr.Blocks`` (not launched)."""
    cases = CaseHandlers(services)
    segment = SegmentHandlers(services)
    review = ReviewHandlers(services, cases)
    api = ApiHandlers(cases, segment, review)
    private: dict[str, Any] = {"api_visibility": "private"}
    studio = services.studio
    model_queue: dict[str, Any] = {
        "concurrency_id": MODEL_QUEUE,
        "concurrency_limit": studio.model_concurrency,
    }
    choices = services.catalog.choices()
    default = services.catalog.default(choices)

    with gr.Blocks(
        title="ADA-SAM Studio", analytics_enabled=False, delete_cache=(1800, 7200)
    ) as demo:
        state = gr.State(None, time_to_live=4 * 3600)
        browser = gr.BrowserState({}, storage_key="adasam-studio")

        # -- header ---------------------------------------------------------------------------
        with gr.Row(elem_id="header"):
            with gr.Column(scale=3):
                gr.Markdown(INTRO)
            with gr.Column(scale=2):
                if studio.identity == "oauth":
                    gr.LoginButton()
                annotator = gr.Textbox(
                    label="Annotator",
                    placeholder="your name (stored with every correction and rating)",
                    value=studio.default_annotator,
                    visible=studio.identity == "name",
                    elem_id="annotator",
                    max_lines=1,
                )
                model = gr.Dropdown(
                    choices=[(c.label, c.key) for c in choices],
                    value=None if default is None else default.key,
                    label="Model",
                    elem_id="model",
                )
                model_md = gr.Markdown(
                    default.describe() if default is not None else "", elem_id="model-md"
                )

        with gr.Tabs():
            with gr.Tab("Annotate", id="annotate"):
                with gr.Row():
                    # -- case input -----------------------------------------------------------
                    with gr.Column(scale=1, min_width=260, elem_id="case-column"):
                        upload = gr.File(
                            label="Upload a slice: PNG/JPEG/TIFF, DICOM, NIfTI, .npy",
                            file_count="single",
                            type="filepath",
                            elem_id="upload",
                        )
                        examples = gr.Gallery(
                            value=[(e.thumbnail, e.title) for e in services.examples],
                            label="Examples (click one)",
                            columns=3,
                            height=200,
                            allow_preview=False,
                            interactive=False,
                            elem_id="examples",
                        )
                        with gr.Row():
                            next_btn = gr.Button("Next case (worklist)", elem_id="next-case")
                        worklist_md = gr.Markdown(elem_id="worklist-md")
                        structures = gr.CheckboxGroup(
                            choices=[] if default is None else list(default.structures),
                            value=[] if default is None else list(default.structures),
                            label="Structures to segment",
                            elem_id="structures",
                        )
                        run_btn = gr.Button("Run the pipeline", variant="primary", elem_id="run")
                        with gr.Accordion("Display window and slice", open=False):
                            window = gr.Dropdown(
                                choices=_window_choices(),
                                value=FILE_WINDOW,
                                label="Window preset",
                                elem_id="window",
                            )
                            with gr.Row():
                                level = gr.Number(label="Level", elem_id="level")
                                width = gr.Number(label="Width", elem_id="width")
                            apply_window = gr.Button("Apply level/width", size="sm")
                            slice_slider = gr.Slider(
                                0, 1, value=0, step=1, label="Slice", visible=False, elem_id="slice"
                            )
                            axis = gr.Radio(
                                [("sagittal", 0), ("coronal", 1), ("axial", 2)],
                                value=2,
                                label="Volume axis",
                                visible=False,
                                elem_id="axis",
                            )
                    # -- the pipeline ---------------------------------------------------------
                    with gr.Column(scale=3, elem_id="pipeline-column"):
                        case_md = gr.Markdown(elem_id="case-md")
                        with gr.Row(equal_height=True):
                            slice_img = gr.Image(
                                label="Slice (windowed)",
                                interactive=False,
                                format="png",
                                elem_id="slice-img",
                                buttons=["fullscreen"],
                            )
                            heat_img = gr.Image(
                                label="GradCAM heatmap",
                                interactive=False,
                                format="png",
                                elem_id="heatmap-img",
                                buttons=["fullscreen"],
                            )
                            prompts_img = gr.Image(
                                label="Prompts",
                                interactive=False,
                                format="png",
                                elem_id="prompts-img",
                                buttons=["fullscreen"],
                            )
                        structure_radio = gr.Radio(
                            choices=[], label="Structure shown", visible=False, elem_id="structure"
                        )
                        structures_md = gr.Markdown(elem_id="structures-md")
                        gallery = gr.Gallery(
                            label="SAM's three candidates",
                            columns=3,
                            height=260,
                            allow_preview=False,
                            interactive=False,
                            format="png",
                            elem_id="candidates",
                        )
                        timings_md = gr.Markdown(elem_id="timings", elem_classes=["timings"])
                        auxol_out = auxol_view.components()
                with gr.Row():
                    # -- correction -----------------------------------------------------------
                    with gr.Column(scale=3, elem_id="correct-column"), gr.Tabs():
                        with gr.Tab("Click to refine", id="clicks"):
                            mode = gr.Radio(
                                list(CLICK_MODES),
                                value="Add (+)",
                                label="Click mode",
                                elem_id="click-mode",
                            )
                            correct_img = gr.Image(
                                label="Final mask: click on the image to refine it",
                                interactive=False,
                                format="png",
                                elem_id="correct-img",
                                buttons=["fullscreen"],
                            )
                            with gr.Row():
                                undo_btn = gr.Button("Undo", size="sm", elem_id="undo")
                                reset_btn = gr.Button("Reset", size="sm", elem_id="reset")
                            correct_md = gr.Markdown(elem_id="correct-md")
                        with gr.Tab("Brush", id="brush") as brush_tab:
                            editor = gr.ImageEditor(
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
                            )
                            apply_brush = gr.Button("Apply brush edits", elem_id="apply-brush")
                            brush_md = gr.Markdown(elem_id="brush-md")
                    # -- rating ---------------------------------------------------------------
                    with gr.Column(scale=2, elem_id="rating-column"):
                        gr.Markdown("### SegEx rating of the model's mask")
                        score = gr.Radio(
                            list(SCORE_LABELS.values()), label="Score", elem_id="score"
                        )
                        verdict = gr.Radio(list(VERDICT_LABELS), label="Verdict", elem_id="verdict")
                        rubric = gr.CheckboxGroup(
                            list(RUBRIC_ITEMS), label="Criteria met", elem_id="rubric"
                        )
                        comment = gr.Textbox(
                            label="Comment (optional)", lines=2, max_lines=6, elem_id="comment"
                        )
                        submit_btn = gr.Button(
                            "Submit correction and rating",
                            variant="primary",
                            interactive=False,
                            elem_id="submit",
                        )
                        confirm_md = gr.Markdown(elem_id="confirmation")
                        llm_parts = quality_view.llm_components(services)
                        download_btn = gr.Button("Prepare downloads", size="sm", elem_id="download")
                        downloads = gr.File(
                            label="Downloads: mask PNG, mask NIfTI, overlay",
                            file_count="multiple",
                            interactive=False,
                            elem_id="downloads",
                        )
                with gr.Accordion("Result (JSON)", open=False):
                    result_json = gr.JSON(elem_id="result-json")
                # Inputs of the API-only endpoints (the page uses its own controls).
                with gr.Row(visible=False):
                    api_file = gr.File(type="filepath", label="file")
                    api_model = gr.Textbox(value="", label="model")
                    api_structures = gr.Textbox(value="", label="structures")
                    api_slice = gr.Number(value=-1, precision=0, label="slice_index")
                    api_window = gr.Textbox(value="", label="window")
                    api_rank = gr.Number(value=0, precision=0, label="rank")
                    api_x = gr.Number(value=None, label="x")
                    api_y = gr.Number(value=None, label="y")
                    api_mode = gr.Textbox(value="add", label="mode")
                    api_annotator = gr.Textbox(value="", label="annotator")
                    api_score = gr.Number(value=None, precision=0, label="score")
                    api_verdict = gr.Textbox(value="", label="verdict")
                    api_rubric = gr.Textbox(value="", label="rubric")
                    api_comment = gr.Textbox(value="", label="comment")
                    api_json = gr.JSON(label="result")
                    api_image = gr.Image(format="png", label="image")
                    api_heatmap = gr.Image(format="png", label="heatmap")
                    api_prompts = gr.Image(format="png", label="prompts")
                    api_candidates = gr.Gallery(format="png", label="candidates")
                    api_files = gr.File(file_count="multiple", label="files")
                    api_buttons = {
                        name: gr.Button(name)
                        for name in ("predict", "choose", "refine", "undo", "reset", "submit")
                    }

            with gr.Tab("Volume", id="volume"):
                volume_view.build(services, model=model, annotator=annotator)
            with gr.Tab("Statistics", id="stats") as stats_tab:
                stats_btn = gr.Button("Refresh", size="sm", elem_id="stats-refresh")
                stats_md = gr.Markdown(elem_id="stats-md")
                stats_plot = gr.Plot(elem_id="stats-plot")

            quality_view.tab(services, cases, annotator)
            models_view.tab(services, cases, annotator)

            with gr.Tab("Worklist", id="worklist"):
                gr.Markdown(
                    "Add slices to the shared worklist: each file becomes one case that "
                    "**Next case** hands to one annotator at a time."
                )
                batch_files = gr.File(
                    label="Files to add", file_count="multiple", type="filepath", elem_id="batch"
                )
                batch_btn = gr.Button("Add to the worklist", elem_id="batch-add")
                examples_btn = gr.Button("Add the example cases", size="sm")
                batch_md = gr.Markdown(elem_id="batch-md")

            with gr.Tab("API", id="api"):
                gr.Markdown(API_HELP)

        # -- wiring ---------------------------------------------------------------------------
        pipeline_out = [
            state,
            heat_img,
            prompts_img,
            gallery,
            correct_img,
            correct_md,
            structures_md,
            timings_md,
            result_json,
            structure_radio,
            submit_btn,
            confirm_md,
            downloads,
        ]
        case_out = [
            state,
            slice_img,
            case_md,
            slice_slider,
            axis,
            window,
            level,
            width,
            *pipeline_out[1:],
        ]
        click_out = [state, correct_img, correct_md, gallery, prompts_img, result_json, submit_btn]
        run_inputs = [state, model, structures]

        rating_form = [score, verdict, rubric, comment]

        def clear_rating(event: Any) -> None:
            """A new pipeline result or another structure: an empty rating form."""
            event.success(review.clear_rating, None, rating_form, **private)

        def chain_run(event: Any) -> None:
            ran = event.success(
                segment.run,
                run_inputs,
                pipeline_out,
                show_progress_on=[gallery],
                **private,
                **model_queue,
            )
            auxol_view.attach(services, [ran], state, auxol_out)
            clear_rating(ran)

        # -- the API first, so its listeners get the plain names (stable, plain inputs, compact
        # outputs); the page's own listeners are private.
        edit_out = [state, api_json, api_image]
        api_buttons["predict"].click(
            api.predict,
            [api_file, api_model, api_structures, api_slice, api_window],
            [state, api_json, api_heatmap, api_prompts, api_candidates],
            api_name="predict",
            **model_queue,
        )
        api_buttons["choose"].click(
            api.choose_candidate, [state, api_rank], edit_out, api_name="choose_candidate"
        )
        api_buttons["refine"].click(
            api.refine, [state, api_x, api_y, api_mode], edit_out, api_name="refine", **model_queue
        )
        api_buttons["undo"].click(api.undo, [state], edit_out, api_name="undo")
        api_buttons["reset"].click(api.reset, [state], edit_out, api_name="reset")
        api_buttons["submit"].click(
            api.submit,
            [state, api_annotator, api_score, api_verdict, api_rubric, api_comment],
            [state, api_json, api_files],
            api_name="submit",
        )
        download_btn.click(review.downloads, [state, editor], [downloads], api_name="download")
        stats_btn.click(review.statistics, None, [stats_md, stats_plot], api_name="statistics")

        # -- page events (not part of the API) ------------------------------------------------
        demo.load(segment.refresh_models, None, [model, model_md, structures], **private)
        demo.load(review.restore, [browser, annotator], [confirm_md, annotator], **private)
        # Progress and error badges only where they help: the slice for loaders, the candidates
        # for the pipeline, the mask for edits; clicks show none (they are fast).
        on_slice: dict[str, Any] = {**private, "show_progress_on": [slice_img]}
        on_mask: dict[str, Any] = {**private, "show_progress_on": [correct_img]}
        uploaded = upload.upload(cases.load_upload, [upload, axis, model], case_out, **on_slice)
        # Empty the upload box for the next file, after success and after failure alike
        # (Gradio 6.31 does not run `.then` listeners after an error).
        uploaded.success(_empty, None, [upload], **private)
        uploaded.failure(_empty, None, [upload], **private)
        chain_run(uploaded)
        chain_run(
            examples.select(
                cases.load_example, [model], [*case_out, model, model_md, structures], **on_slice
            )
        )
        chain_run(
            next_btn.click(
                cases.next_case, [annotator, model, state], [*case_out, worklist_md], **on_slice
            )
        )
        slice_inputs = [state, slice_slider, axis]
        chain_run(slice_slider.release(cases.change_slice, slice_inputs, case_out, **on_slice))
        chain_run(axis.input(cases.change_slice, slice_inputs, case_out, **on_slice))
        window_inputs = [state, window, level, width]
        chain_run(window.input(cases.change_window, window_inputs, case_out, **on_slice))
        chain_run(
            apply_window.click(
                cases.change_window_custom, [state, level, width], case_out, **on_slice
            )
        )
        model.input(segment.model_changed, [model], [model_md, structures], **private).success(
            segment.rerun, run_inputs, pipeline_out, **private, **model_queue
        )
        ran = run_btn.click(
            segment.run,
            run_inputs,
            pipeline_out,
            show_progress_on=[gallery],
            **private,
            **model_queue,
        )
        clear_rating(ran)
        clear_rating(
            structure_radio.input(
                segment.select_structure, [state, structure_radio], pipeline_out, **private
            )
        )
        chosen = gallery.select(segment.choose_candidate_ui, [state], pipeline_out, **on_mask)
        correct_img.select(
            segment.refine_ui,
            [state, mode],
            click_out,
            trigger_mode="multiple",
            show_progress="hidden",
            **private,
            **model_queue,
        )
        undo_btn.click(segment.undo, [state], pipeline_out, **on_mask)
        reset_btn.click(segment.reset, [state], pipeline_out, **on_mask)
        brush_tab.select(review.open_editor, [state], [state, editor, brush_md], **private)
        apply_brush.click(  # the editor is no output: it stays usable, strokes and all
            review.apply_brush,
            [state, editor],
            [state, correct_img, correct_md, result_json, brush_md],
            **on_mask,
        )
        submitted = submit_btn.click(
            review.submit,
            [state, annotator, score, verdict, rubric, comment, editor, browser],
            [*pipeline_out, browser],
            trigger_mode="once",
            show_progress_on=[confirm_md],
            **private,
        )
        auxol_view.attach(services, [ran, chosen, submitted], state, auxol_out)
        quality_view.attach_llm(services, cases, state, llm_parts)
        stats_tab.select(review.statistics, None, [stats_md, stats_plot], **private)
        batch_btn.click(cases.import_batch, [batch_files], [batch_md], **private)
        examples_btn.click(cases.import_examples, None, [batch_md], **private)

    return demo


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
        "theme": gr.themes.Soft(primary_hue="sky"),
        "ssr_mode": False,
    }
    if studio.identity == "password":
        options["auth"] = list(studio.users)
        options["auth_message"] = "ADA-SAM Studio: log in with the name your team gave you."
    return options
