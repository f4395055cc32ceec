"""Handlers of the review steps: brush editor, SegEx submission, downloads, statistics."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from storage import stats
from studio import auxol_view, pipeline
from studio.case_handlers import CaseHandlers
from studio.editor import apply_strokes, editor_value
from studio.errors import StudioError, user_errors
from studio.rating import parse_rating
from studio.screens import pipeline_screen
from studio.services import Services
from studio.state import CaseState, Receipt
from studio.stats_view import stats_figure, stats_markdown
from studio.submission import submit
from studio.submit_check import needs_confirmation
from studio.views import correction_status, correction_view, result_json

BRUSH_HINT = (
    "Paint with the **blue** brush to add to the mask and the **red** brush to remove from it "
    "(the palette button switches colour; the eraser takes strokes back), then press **Apply "
    "brush edits**, or submit directly: unapplied strokes count."
)


def final_mask(state: CaseState, editor: dict[str, Any] | None) -> np.ndarray:
    """The mask to submit: the current mask with the brush editor's strokes when the editor
    shows the current mask (so unapplied strokes count). Always bool at the slice's shape.

    Raises:
        StudioError: there is no mask yet.
    """
    work = state.work
    if work is None or work.mask is None:
        raise StudioError(
            "There is no mask to submit yet: run the pipeline and choose a candidate."
        )
    if state.editor_version == (work.name, work.stamp):
        return apply_strokes(work.mask, editor)
    return np.array(work.mask, dtype=bool, copy=True)


class ReviewHandlers:
    """See the module docstring."""

    def __init__(self, services: Services, cases: CaseHandlers) -> None:
        self.services = services
        self.cases = cases

    # -- brush --------------------------------------------------------------------------------
    @user_errors
    def open_editor(self, state: CaseState | None) -> tuple[Any, ...]:
        """Load the current mask into the brush editor (when its tab is opened)."""
        work = None if state is None else state.work
        if state is None or work is None or work.mask is None:
            return state, None, "Choose a candidate first; its mask then opens here."
        value = editor_value(np.asarray(state.slice.display), work.mask)
        return replace(state, editor_version=(work.name, work.stamp)), value, BRUSH_HINT

    @user_errors
    def apply_brush(
        self, state: CaseState | None, editor: dict[str, Any] | None
    ) -> tuple[Any, ...]:
        """Apply the strokes to the mask; the editor is left as it is, so it stays usable at
        once and keeps the strokes (its old mask with the strokes on top looks exactly like the
        new mask, and applying the same strokes again to the new mask changes nothing).
        Reloading the editor from this event left it on Gradio's processing overlay and lost
        the strokes drawn meanwhile."""
        work = None if state is None else state.work
        if state is None or work is None or work.mask is None:
            raise StudioError("Run the pipeline and choose a candidate first.")
        if state.editor_version != (work.name, work.stamp):
            raise StudioError(
                "The editor shows an older mask (it changed since). Open the 'Brush' tab again "
                "to load the current one."
            )
        new_work = pipeline.apply_brush(work, apply_strokes(work.mask, editor))
        new = replace(state.with_work(new_work), editor_version=(new_work.name, new_work.stamp))
        display = np.asarray(state.slice.display)
        return (
            new,
            correction_view(new_work, display),
            correction_status(new_work),
            result_json(new),
            "Brush edits applied. Keep painting, apply again, or submit.",
        )

    # -- submission ---------------------------------------------------------------------------
    def submit_state(
        self,
        state: CaseState | None,
        *,
        typed_name: str | None,
        score: object,
        verdict: str | None,
        rubric: list[str] | None,
        comment: str | None,
        editor: dict[str, Any] | None,
        request: gr.Request | None,
        profile: gr.OAuthProfile | None,
    ) -> tuple[CaseState, Receipt, list[str]]:
        """Store prediction, original and final mask, rating and annotator (once); returns the
        new state, the receipt and the download files of the final mask."""
        if state is None or state.work is None:
            raise StudioError("There is nothing to submit yet: load a case and run the pipeline.")
        rating = parse_rating(score, verdict, rubric, comment)
        annotator = self.cases.annotator(typed_name, request, profile)
        mask = final_mask(state, editor)
        work = state.work
        if work.mask is not None and not np.array_equal(mask, work.mask):
            state = state.with_work(pipeline.apply_brush(work, mask))
        new, receipt, repeated = submit(
            self.services.store,
            self.services.ledger,
            state,
            annotator=annotator,
            rating=rating,
            final_mask=mask,
        )
        if repeated:
            gr.Warning("This structure was already submitted; nothing was stored twice.")
        elif self.services.specialists is not None:
            parent = auxol_view.parent_version(self.services.catalog, state)
            self.services.specialists.learn(state, mask, parent)
        files = self.services.exports.write(new.slice, receipt.structure, mask)
        return new, receipt, [str(f) for f in files]

    @user_errors
    def submit(
        self,
        state: CaseState | None,
        typed_name: str | None,
        score: str | None,
        verdict: str | None,
        rubric: list[str] | None,
        comment: str | None,
        editor: dict[str, Any] | None,
        browser: dict[str, Any] | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ) -> tuple[Any, ...]:
        """The submit button: store, confirm, offer the downloads and the next case. A final
        mask far from the chosen candidate is stored only when submitted a second time."""
        if state is not None and state.work is not None and state.receipt(state.work.name) is None:
            parse_rating(score, verdict, rubric, comment)  # a missing score first
            warned = needs_confirmation(state, final_mask(state, editor))
            if warned is not None:
                gr.Warning(warned[1])
                screen = pipeline_screen(warned[0], confirmation=warned[1])
                return (*screen[:-1], gr.skip(), gr.skip())
        new, receipt, files = self.submit_state(
            state,
            typed_name=typed_name,
            score=score,
            verdict=verdict,
            rubric=rubric,
            comment=comment,
            editor=editor,
            request=request,
            profile=profile,
        )
        remembered = dict(browser or {})
        remembered.update({"receipt": receipt.message(), "annotator": receipt.annotator})
        message = receipt.message() + " Take the **next case** when you are ready."
        screen = pipeline_screen(new, confirmation=message)
        return (*screen[:-1], files, remembered)

    # -- outputs ------------------------------------------------------------------------------
    @user_errors
    def downloads(self, state: CaseState | None, editor: dict[str, Any] | None) -> list[str]:
        """The final mask (PNG, NIfTI) and an overlay image, for download."""
        if state is None or state.work is None:
            raise StudioError("There is no mask to download yet.")
        mask = final_mask(state, editor)
        files: list[Path] = self.services.exports.write(state.slice, state.work.name, mask)
        return [str(f) for f in files]

    @staticmethod
    def clear_rating() -> tuple[Any, ...]:
        """An empty rating form (score, verdict, criteria, comment): another structure or case
        is on screen, and one structure's rating must never be stored with another's mask."""
        return None, None, [], ""

    @user_errors
    def statistics(self) -> tuple[str, Any]:
        """Cases done, ratings per verdict, mean Dice original → final, with a plot."""
        s = stats(self.services.store)
        return stats_markdown(s), stats_figure(s)

    def restore(self, browser: dict[str, Any] | None, typed_name: str | None) -> tuple[Any, ...]:
        """On page load: the last confirmation and the annotator name this browser kept (the
        name only when the field is still empty, so a name typed meanwhile is never
        overwritten)."""
        remembered = browser or {}
        receipt = remembered.get("receipt")
        message = f"Before the page was reloaded: {receipt}" if receipt else gr.skip()
        name = remembered.get("annotator")
        return message, name if name and not (typed_name or "").strip() else gr.skip()
