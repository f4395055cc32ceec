"""The ``gradio_client`` API: the main steps with plain inputs and compact outputs.

The page's own events send and receive whole screens; these endpoints take plain values
(a file, names, numbers) and return the result JSON and the key images, so a script reads
``client.predict(...)[0]``. Each ``Client`` is one session: its case stays between calls.
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from adasam.budget import Deadline
from studio import pipeline, views
from studio.case_handlers import CaseHandlers
from studio.errors import StudioError, user_errors
from studio.page import Updates
from studio.review_handlers import ReviewHandlers
from studio.segment_handlers import SegmentHandlers
from studio.shown import VIEW_SIDE, Shown
from studio.state import CaseState


def split_names(text: str | None) -> list[str]:
    """``"a, b"`` → ``["a", "b"]`` (empty entries dropped)."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _edited(state: CaseState) -> Updates:
    """What the edit endpoints return: the state, the result JSON and the mask image."""
    image = views.correction_view(state.work, np.asarray(state.slice.display))
    return {"state": state, "api_json": views.result_json(state), "api_image": image}


class ApiHandlers:
    """See the module docstring."""

    def __init__(
        self, cases: CaseHandlers, segment: SegmentHandlers, review: ReviewHandlers
    ) -> None:
        self.cases = cases
        self.segment = segment
        self.review = review

    @user_errors
    def predict(
        self,
        file: str | None,
        model: str | None,
        structures: str | None,
        slice_index: float | None,
        window: str | None,
    ) -> Updates:
        """Decode ``file`` and run the pipeline.

        Args:
            file: PNG/JPEG/TIFF, DICOM, NIfTI or .npy.
            model: model key (``thigh-mri``, ``liver-ct``, ``custom``); empty = the default.
            structures: comma-separated names; empty = all of the model's.
            slice_index: slice of a volume; -1 or empty = the middle one.
            window: display window of the returned images (``ct-liver``…, ``auto``); empty = the
                model's or the file's. The model always sees the slice through its own window.

        Returns:
            (result JSON, heatmap, prompts, candidates) of the first structure.
        """
        catalog = self.cases.services.catalog
        choice = catalog.choice(model) if model else catalog.default()
        if choice is None:
            raise StudioError("No model is installed.")
        deadline = Deadline(self.cases.services.settings.request_seconds)
        state = self.cases.open_upload(
            file,
            slice_index=None if slice_index is None or slice_index < 0 else int(slice_index),
            window=window or None,
            model_key=choice.key,
        )
        names = split_names(structures) or list(choice.structures)
        deadline.check("decoding the upload", "the pipeline")
        state = self.segment.run_state(state, choice.key, names)
        work = state.work
        assert work is not None  # the pipeline ran on at least one structure
        display = Shown.of(np.asarray(state.slice.display), VIEW_SIDE)  # bounded pictures
        captions = [f"#{i + 1} · score {c.score:.2f}" for i, c in enumerate(work.candidates)]
        return {
            "state": state,
            "api_json": views.result_json(state),
            "api_heatmap": views.heatmap_view(work, display),
            "api_prompts": views.prompts_view(work, display),
            "api_candidates": list(zip(views.candidate_gallery(work, display), captions)),
        }

    @user_errors
    def choose_candidate(self, state: CaseState | None, rank: float | None) -> Updates:
        """Start the correction from candidate ``rank`` (0 = best); returns (result JSON,
        correction image)."""
        new = self.segment.choose_state(state, rank)
        return _edited(new)

    @user_errors
    def refine(
        self, state: CaseState | None, x: float | None, y: float | None, mode: str | None
    ) -> Updates:
        """A click at ``(x, y)`` in slice pixels, ``mode`` ``add`` / ``remove`` / ``box``;
        returns (result JSON, correction image)."""
        new, _ = self.segment.refine_state(state, x, y, mode or "add")
        return _edited(new)

    @user_errors
    def submit(
        self,
        state: CaseState | None,
        annotator: str | None,
        score: float | None,
        verdict: str | None,
        rubric: str | None,
        comment: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ) -> Updates:
        """Store the correction and the SegEx rating of the active structure.

        Args:
            annotator: the annotator's name (name mode; ignored when users log in).
            score: 1–5.
            verdict: ``accept``, ``minor_edits``, ``major_edits`` or ``reject``.
            rubric: comma-separated criteria met (``boundary_accuracy``, ``completeness``,
                ``false_positives``, ``anatomical_plausibility``).
            comment: optional text.

        Returns:
            (receipt JSON, download files).
        """
        new, receipt, files = self.review.submit_state(
            state,
            typed_name=annotator,
            score=score,
            verdict=verdict,
            rubric=split_names(rubric),
            comment=comment,
            editor=None,
            request=request,
            profile=profile,
        )
        info = {
            "structure": receipt.structure,
            "prediction_id": receipt.prediction_id,
            "correction_id": receipt.correction_id,
            "rating_id": receipt.rating_id,
            "dice_original_to_final": round(receipt.dice, 4),
            "annotator": receipt.annotator,
        }
        return {"state": new, "api_json": info, "api_files": files}

    @user_errors
    def download(self, state: CaseState | None) -> Updates:
        """The final mask of the active structure (no inputs: this session's case).

        Returns:
            files: mask PNG, mask NIfTI, overlay PNG.
        """
        return {"api_files": self.review.download_files(state)}

    @user_errors
    def undo(self, state: CaseState | None) -> Updates:
        """Undo the last edit; returns (result JSON, mask image)."""
        new = self._undo_or_reset(state, reset=False)
        return _edited(new)

    @user_errors
    def reset(self, state: CaseState | None) -> Updates:
        """Back to the pipeline's result; returns (result JSON, mask image)."""
        new = self._undo_or_reset(state, reset=True)
        return _edited(new)

    @staticmethod
    def _undo_or_reset(state: CaseState | None, *, reset: bool) -> CaseState:
        if state is None or state.work is None:
            raise StudioError("Run /predict first.")
        work = pipeline.reset(state.work) if reset else pipeline.undo(state.work)
        return state.with_work(work)
