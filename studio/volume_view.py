"""The volume tab: upload a 3D study, look at it in three planes, propagate, correct, export.

``build(services, model=..., annotator=...)`` is called inside the page's ``gr.Tab`` and wires
its own events; the page passes its model drop-down and annotator field (by name). Components
have ``vol-*`` element ids for tests. Outline colours: yellow propagated (unchecked), green
accepted, cyan corrected.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from adasam.imaging import WINDOW_CHOICES
from adasam.propagate import PropagationConfig, PropagationReport
from studio.case_handlers import hub_username
from studio.errors import StudioError, user_errors
from studio.identity import resolve_annotator
from studio.picture_files import shown_picture
from studio.services import Services
from studio.volume_handlers import (
    VolumeHandlers,
    VolumeSession,
    canvas_views,
    slice_index,
    status_text,
)
from studio.wiring import model_queue

HELP = (
    "Upload **all the files of one DICOM series** (or one zip of them), a **NIfTI** volume or a "
    "multi-frame DICOM. Go to a slice where the structure is clear, **Segment slice**, refine "
    "it with clicks if needed and **Accept** it, then **Propagate**: the mask is carried up and "
    "down while SAM stays confident. Check the propagated slices (yellow), click to correct "
    "(cyan) or accept (green) them, re-propagate from a corrected slice, then **Save** and "
    "**Export**."
)
AUTO_WINDOW = "volume default"


def _need(session: VolumeSession | None) -> VolumeSession:
    if session is None:
        raise StudioError("Upload a volume first.")
    return session


def _window(name: str | None) -> str | None:
    return None if not name or name == AUTO_WINDOW else name


VIEWS_FOLDER = "volume-views"
"""Folder of the shown pictures' PNG files, in Gradio's upload cache (see
:mod:`studio.picture_files`: an unchanged picture is never rewritten while it is fetched)."""


def _screen(session: VolumeSession, k: int, window: str | None) -> tuple[Any, ...]:
    k = int(k)
    axial, coronal, sagittal = (
        shown_picture(view, VIEWS_FOLDER) for view in canvas_views(session, k, _window(window))
    )
    return session, axial, coronal, sagittal, status_text(session, k)


def build(services: Services, *, model: Any, annotator: Any) -> dict[str, Any]:
    """Create the tab's components (inside a ``gr.Tab``) and wire their events."""
    h = VolumeHandlers(services)
    private: dict[str, Any] = {"api_visibility": "private"}
    state = gr.State(None, time_to_live=4 * 3600)
    gr.Markdown(HELP)
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            files = gr.File(
                file_count="multiple",
                label="DICOM series (files or a zip), NIfTI or multi-frame DICOM",
                elem_id="vol-upload",
            )
            names = initial_structures(services)
            structure = gr.Dropdown(
                label="Structure",
                elem_id="vol-structure",
                choices=names,
                value=names[0] if names else None,
            )
            window = gr.Dropdown(
                choices=[AUTO_WINDOW, *WINDOW_CHOICES], value=AUTO_WINDOW, label="Window"
            )
            index = gr.Slider(1, 2, value=1, step=1, label="Slice", elem_id="vol-slice")  # 1-based
            status = gr.Markdown(elem_id="vol-status")
            with gr.Row():
                segment_btn = gr.Button("Segment slice", elem_id="vol-segment")
                accept_btn = gr.Button("Accept slice", elem_id="vol-accept")
            click_mode = gr.Radio(
                ["add", "remove"], value="add", label="Click on the slice to", elem_id="vol-mode"
            )
            clear_btn = gr.Button("Structure not on this slice", elem_id="vol-clear")
            with gr.Row():
                propagate_btn = gr.Button("Propagate", variant="primary", elem_id="vol-propagate")
                stop_btn = gr.Button("Stop", elem_id="vol-stop")
            with gr.Accordion("Propagation settings", open=False):
                min_score = gr.Slider(
                    0, 0.95, value=0.5, step=0.05, label="Stop below score", elem_id="vol-min-score"
                )
                margin = gr.Slider(0, 30, value=5, step=1, label="Box margin (pixels)")
                max_growth = gr.Number(
                    value=3.0,
                    label="Stop when the area grows by more than",
                    elem_id="vol-max-growth",
                )
            with gr.Row():
                save_btn = gr.Button("Save", elem_id="vol-save")
                export_btn = gr.Button("Export", elem_id="vol-export")
            downloads = gr.File(file_count="multiple", label="Downloads", elem_id="vol-download")
        with gr.Column(scale=3):
            axial = gr.Image(
                label="Slice (click to correct)",
                interactive=False,
                format="png",
                elem_id="vol-axial",
                height=512,
            )
            with gr.Row():
                coronal = gr.Image(
                    label="Rows through the middle",
                    interactive=False,
                    format="png",
                    elem_id="vol-coronal",
                    height=256,
                )
                sagittal = gr.Image(
                    label="Columns through the middle",
                    interactive=False,
                    format="png",
                    elem_id="vol-sagittal",
                    height=256,
                )
    screen = [state, axial, coronal, sagittal, status]

    @user_errors
    def on_model(model_key: str | None) -> Any:
        choice = services.catalog.choice(model_key)
        return gr.update(choices=list(choice.structures), value=choice.structures[0])

    @user_errors
    def on_upload(paths: list[str] | None, model_key: str | None, name: str | None, win: str):
        session = h.open(paths, model_key, name)
        mid = session.volume.depth // 2
        slider = gr.update(minimum=1, maximum=max(session.volume.depth, 2), value=mid + 1)
        return (*_screen(session, mid, win), slider)

    def act(fn: Any) -> Any:
        @user_errors
        def handler(session: VolumeSession | None, k: float, win: str) -> tuple[Any, ...]:
            session = _need(session)
            fn(session, slice_index(k))
            return _screen(session, slice_index(k), win)

        return handler

    @user_errors
    def on_show(session: VolumeSession | None, k: float, win: str) -> tuple[Any, ...]:
        if session is None:
            return (None, None, None, None, "")
        return _screen(session, slice_index(k), win)

    @user_errors
    def on_click(
        session: VolumeSession | None, k: float, win: str, mode: str, evt: gr.SelectData
    ) -> tuple[Any, ...]:
        session = _need(session)
        h.click_canvas(session, slice_index(k), evt.index, mode == "add")
        return _screen(session, slice_index(k), win)

    @user_errors
    def on_propagate(
        session: VolumeSession | None,
        k: float,
        win: str,
        score: float,
        box_margin: float,
        growth: float,
        progress=gr.Progress(),  # noqa: B008 - how Gradio injects a progress tracker
    ) -> tuple[Any, ...]:
        session = _need(session)
        cfg = PropagationConfig(
            box_margin=int(box_margin), min_score=float(score), max_growth=float(growth)
        )
        progress((0, 1), desc="Propagating")
        report = h.propagate(
            session,
            slice_index(k),
            cfg,
            lambda done, total: progress((done, total), desc="Propagating"),
        )
        stops = "; ".join(
            f"{'up' if d.direction > 0 else 'down'}: {len(d.propagated)} slices, stopped "
            f"({d.stop}{'' if d.stopped_at is None else f' at slice {d.stopped_at + 1}'})"
            for d in report.directions
        )
        gr.Info(f"Propagated {len(report.propagated)} slices in {report.seconds:.1f} s ({stops}).")
        if report.timed_out:
            gr.Warning(budget_message(report, services.settings.request_seconds), duration=None)
        return _screen(session, slice_index(k), win)

    @user_errors
    def on_stop(session: VolumeSession | None) -> None:
        if h.stop(session):
            gr.Info("Stopping after the current slice.")

    @user_errors
    def on_save(
        session: VolumeSession | None,
        typed: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None = None,
    ) -> str:
        session = _need(session)
        who = resolve_annotator(
            services.studio.identity,
            typed=typed,
            login_user=getattr(request, "username", None),
            hub_user=hub_username(profile),
        )
        case_id = h.save(session, who)
        counts = session.annotation.counts()
        return (
            f"**Saved** as volume case {case_id} by {who}: {counts['accepted']} accepted and "
            f"{counts['corrected']} corrected slices go to training; {counts['propagated']} "
            "propagated slices are kept but not trained on until checked."
        )

    @user_errors
    def on_export(session: VolumeSession | None) -> list[str]:
        return [str(p) for p in h.export(_need(session))]

    model.change(on_model, [model], [structure], **private)
    files.upload(on_upload, [files, model, structure, window], [*screen, index], **private)
    index.change(on_show, [state, index, window], screen, show_progress="hidden", **private)
    window.change(on_show, [state, index, window], screen, **private)
    queue = model_queue(services)  # the one model queue (ADASAM_MODEL_CONCURRENCY)
    segment_btn.click(act(h.segment), [state, index, window], screen, **private, **queue)
    accept_btn.click(act(h.accept), [state, index, window], screen, **private)
    clear_btn.click(act(h.clear), [state, index, window], screen, **private)
    axial.select(on_click, [state, index, window, click_mode], screen, **private, **queue)
    propagate_btn.click(  # one model slot for the whole propagation
        on_propagate,
        [state, index, window, min_score, margin, max_growth],
        screen,
        **private,
        **queue,
    )
    stop_btn.click(on_stop, [state], None, queue=False, **private)
    save_btn.click(on_save, [state, annotator], [status], **private)
    export_btn.click(on_export, [state], [downloads], **private)
    return {"state": state, "structure": structure, "index": index, "status": status}


def budget_message(report: PropagationReport, seconds: float) -> str:
    """What the page says when the time budget stopped a propagation."""
    return (
        f"Propagation stopped after {len(report.propagated)} slices: it used its {seconds:g} s "
        "time budget (ADASAM_REQUEST_SECONDS), so other users get the model. The slices done "
        "are kept, unchecked (yellow), and nothing is saved until you press Save: accept or "
        "correct the last one and propagate again from it to go on."
    )


def initial_structures(services: Services) -> list[str]:
    """The default model's structures (the drop-down's first choices)."""
    default = services.catalog.default()
    return [] if default is None else list(default.structures)
