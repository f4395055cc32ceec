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
from studio.editor import apply_strokes, editor_value, has_strokes
from studio.errors import StudioError, user_errors
from studio.page import Updates
from studio.rating import parse_rating
from studio.screens import canvas_picture, case_screen, pipeline_screen
from studio.services import Services
from studio.state import CaseState, Receipt
from studio.stats_view import stats_figure, stats_markdown
from studio.submission import submit
from studio.submit_check import needs_confirmation
from studio.views import correction_status, result_json

BRUSH_HINT = (
    "Paint with the **blue** brush to add to the mask and the **red** brush to remove from it "
    "(the palette button switches colour; the eraser takes strokes back), then press **Apply "
    "brush edits**, or submit directly: unapplied strokes count."
)


STALE_STROKES = (
    "The brush editor holds strokes painted on an earlier mask of {name} (it changed since: a "
    "click, undo, reset or another candidate), so they were not used. Close and reopen the "
    "'Brush' panel to load the current mask, paint again, then submit."
)


def final_mask(state: CaseState, editor: dict[str, Any] | None) -> np.ndarray:
    """The mask to submit: the current mask with the brush editor's strokes when the editor
    shows the current mask (so unapplied strokes count). Always bool at the slice's shape.
    Strokes on another structure's mask are not this structure's and are left out.

    Raises:
        StudioError: there is no mask yet, or the editor holds strokes painted on an earlier
            mask of this structure (they are neither applied nor dropped silently).
    """
    work = state.work
    if work is None or work.mask is None:
        raise StudioError(
            "There is no mask to submit yet: run the pipeline and choose a candidate."
        )
    version = state.editor_version
    if version == (work.name, work.stamp):
        return apply_strokes(work.mask, editor)
    if version is not None and version[0] == work.name and has_strokes(editor):
        raise StudioError(STALE_STROKES.format(name=work.name))
    return np.array(work.mask, dtype=bool, copy=True)


class ReviewHandlers:
    """See the module docstring."""

    def __init__(self, services: Services, cases: CaseHandlers) -> None:
        self.services = services
        self.cases = cases

    # -- brush --------------------------------------------------------------------------------
    @user_errors
    def open_editor(self, state: CaseState | None) -> Updates:
        """Load the current mask into the brush editor (when its panel is opened)."""
        work = None if state is None else state.work
        if state is None or work is None or work.mask is None:
            return {"editor": None, "brush_md": "Choose a candidate first; its mask opens here."}
        value = editor_value(np.asarray(state.slice.display), work.mask)
        return {
            "state": replace(state, editor_version=(work.name, work.stamp)),
            "editor": value,
            "brush_md": BRUSH_HINT,
        }

    @user_errors
    def apply_brush(self, state: CaseState | None, editor: dict[str, Any] | None) -> Updates:
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
        return {
            "state": new,
            "correction": canvas_picture(new_work, display),
            "correction_status": correction_status(new_work),
            "result_json": result_json(new),
            "brush_md": "Brush edits applied. Keep painting, apply again, or submit.",
        }

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
            brushed = pipeline.apply_brush(work, mask)  # the editor shows this mask now
            state = replace(state.with_work(brushed), editor_version=(brushed.name, brushed.stamp))
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
    ) -> Updates:
        """The submit button: store, confirm, offer the downloads and the next case. A final
        mask far from the chosen candidate is stored only when submitted a second time."""
        if state is not None and state.work is not None and state.receipt(state.work.name) is None:
            parse_rating(score, verdict, rubric, comment)  # a missing score first
            warned = needs_confirmation(state, final_mask(state, editor))
            if warned is not None:
                gr.Warning(warned[1])
                screen = pipeline_screen(warned[0], confirmation=warned[1])
                del screen["downloads"]  # the downloads and the browser's memory stay as they are
                return screen
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
        return {
            **pipeline_screen(new, confirmation=message),
            "downloads": files,
            "browser": remembered,
        }

    # -- outputs ------------------------------------------------------------------------------
    @user_errors
    def download_files(
        self, state: CaseState | None, editor: dict[str, Any] | None = None
    ) -> list[str]:
        """The final mask (PNG, NIfTI) and an overlay image, for download."""
        if state is None or state.work is None:
            raise StudioError("There is no mask to download yet.")
        mask = final_mask(state, editor)
        files: list[Path] = self.services.exports.write(state.slice, state.work.name, mask)
        return [str(f) for f in files]

    @staticmethod
    def clear_rating() -> Updates:
        """An empty rating form (score, verdict, criteria, comment): another structure or case
        is on screen, and one structure's rating must never be stored with another's mask."""
        return {"score": None, "verdict": None, "rubric": [], "comment": ""}

    @user_errors
    def downloads(self, state: CaseState | None, editor: dict[str, Any] | None) -> Updates:
        """The "Prepare downloads" button."""
        return {"downloads": self.download_files(state, editor)}

    @user_errors
    def statistics(
        self,
        request: gr.Request = None,  # type: ignore[assignment]
        profile: gr.OAuthProfile | None = None,
    ) -> Updates:
        """Cases done, ratings per verdict, mean Dice original → final, with a plot. The list
        of corrections per annotator only for the admin role (see ``ADASAM_ADMINS``)."""
        studio = self.services.studio
        viewer = None
        if studio.identity != "name":
            viewer = self.cases.annotator(None, request, profile)  # refuses the unidentified
        s = stats(self.services.store)
        text = stats_markdown(s, per_annotator_visible=studio.is_admin(viewer), viewer=viewer)
        return {"stats_md": text, "stats_plot": stats_figure(s)}

    def remember_name(self, browser: dict[str, Any] | None, typed_name: str | None) -> Updates:
        """The annotator typed their name: this browser keeps it (for a reload)."""
        name = (typed_name or "").strip()
        remembered = dict(browser or {})
        if not name or remembered.get("annotator") == name:
            return {}
        remembered["annotator"] = name
        return {"browser": remembered}

    def restore(
        self,
        browser: dict[str, Any] | None,
        typed_name: str | None,
        shown: CaseState | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ) -> Updates:
        """On page load: the annotator name this browser kept (only into an empty field, so a
        name typed meanwhile is never overwritten), that annotator's unsubmitted case with its
        edits (see :mod:`studio.drafts`), and the last confirmation.

        ``shown`` is the page's case when this runs: a case the user opened in the moment
        after the page appeared (an example, an upload) is newer than any draft and is never
        replaced by it; the confirmation says the draft was not restored."""
        remembered = browser or {}
        out: Updates = {}
        name = remembered.get("annotator")
        if name and not (typed_name or "").strip():
            out["annotator"] = name
        who = self.cases.known_annotator((typed_name or "").strip() or name, request, profile)
        draft = self.services.drafts.get(who) if who else None
        if draft is not None and isinstance(shown, CaseState):
            if draft.token != shown.token:
                out["confirmation"] = (
                    "Your unsubmitted case from before the reload "
                    f"({draft.slice.source_name}) was not restored: the case you opened "
                    "replaces it."
                )
            return out
        if draft is not None:
            out.update(case_screen(draft))  # the slice, the pipeline's result and the edits
        receipt = remembered.get("receipt")
        if receipt and draft is None:
            out["confirmation"] = f"Before the page was reloaded: {receipt}"
        return out
