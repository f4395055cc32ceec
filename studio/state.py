"""Per-session state: the case on screen and the work done on each structure.

Everything here is immutable: a handler returns a new :class:`CaseState` and Gradio keeps it in
the session's ``gr.State`` (one per browser tab; nothing is shared between sessions). Each
edit of a structure makes a new :class:`StructureWork` that links to the one before it, so
"undo" is a step back along that chain and "reset" returns to its start.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from adasam.imaging import Slice, model_image
from adasam.predictor import Candidate, Click, DomainVerdict
from adasam.prompts import Prompts

SourceKind = Literal["upload", "example", "worklist"]
PromptSource = Literal["cam", "user"]


@dataclass(frozen=True)
class CaseSource:
    """Where the slice came from.

    Attributes:
        kind: an upload, a shipped example or a worklist case.
        path: the file on the server (shipped examples), to load another slice of a volume;
            None for uploads (deleted from the upload cache once read) and worklist cases
            (their pixels come from storage).
        name: what the uploader called the file, shown to them in their own session only;
            never stored, logged or written (records and downloads use the slice's neutral
            ``source_name``).
        worklist_hash: the storage hash of a worklist case (to skip it or release it).
        data: an uploaded volume's bytes, kept in this session's memory (never on disk) so
            another slice can be shown; None for single images.
    """

    kind: SourceKind
    path: Path | None
    name: str
    worklist_hash: str | None = None
    data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class StructureWork:
    """The pipeline's result for one structure and the user's edits so far.

    Attributes:
        name: the structure.
        probability: the classifier's probability that it is present.
        found: whether the pipeline found it (prompts and candidates generated automatically).
        heatmap: GradCAM map, float32 (H, W) in [0, 1].
        prompts: the automatic prompts (None when not found).
        prompt_mask: where the dense mask prompt is positive, bool (H, W), for drawing.
        candidates: SAM's candidates (best first); empty until prompted.
        prompt_source: ``"cam"`` (automatic) or ``"user"`` (a drawn box or clicks).
        user_box: the box the user drew (XYXY, slice pixels).
        prompt_clicks: clicks that produced user-prompted candidates.
        chosen: index of the chosen candidate.
        clicks: refinement clicks on the chosen candidate, in order.
        refined: SAM's refined mask after each refinement click.
        corner: the first corner of a box being drawn.
        brushed: the mask after brush/eraser edits (replaces the refined mask).
        rejected: the last refinement click the guard refused (the click, SAM's mask for it,
            the message shown): the mask stayed as it was; the same click again applies it.
        previous: the state before the last edit (None at the start).
        stamp: unique per edit state (the brush editor uses it to know which mask it shows).
    """

    name: str
    probability: float
    found: bool
    heatmap: np.ndarray
    prompts: Prompts | None = None
    prompt_mask: np.ndarray | None = None
    candidates: tuple[Candidate, ...] = ()
    prompt_source: PromptSource | None = None
    user_box: tuple[float, float, float, float] | None = None
    prompt_clicks: tuple[Click, ...] = ()
    chosen: int = 0
    clicks: tuple[Click, ...] = ()
    refined: tuple[Candidate, ...] = ()
    corner: tuple[float, float] | None = None
    brushed: np.ndarray | None = None
    rejected: tuple[Click, Candidate, str] | None = field(default=None, repr=False)
    previous: StructureWork | None = field(default=None, repr=False)
    stamp: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        """The box prompt in use: the user's, else the automatic one."""
        if self.user_box is not None:
            return self.user_box
        if self.prompts is not None and self.prompt_source == "cam":
            x0, y0, x1, y1 = (float(v) for v in self.prompts.box)
            return x0, y0, x1, y1
        return None

    @property
    def original(self) -> Candidate | None:
        """The chosen candidate as SAM gave it (what a correction starts from)."""
        return self.candidates[self.chosen] if self.candidates else None

    @property
    def current(self) -> Candidate | None:
        """The latest SAM result: the last refinement, else the chosen candidate."""
        return self.refined[-1] if self.refined else self.original

    @property
    def mask(self) -> np.ndarray | None:
        """The final mask so far (bool, slice shape), or None before any candidate exists."""
        if self.brushed is not None:
            return self.brushed
        current = self.current
        return None if current is None else current.mask

    @property
    def all_clicks(self) -> tuple[Click, ...]:
        """Every click SAM sees: the prompting clicks, then the refinement clicks."""
        return self.prompt_clicks + self.clicks

    def then(self, **changes: object) -> StructureWork:
        """This work after one more edit (the current one becomes ``previous``)."""
        changes.setdefault("rejected", None)
        return replace(self, previous=self, stamp=uuid.uuid4().hex, **changes)  # type: ignore[arg-type]

    def start(self) -> StructureWork:
        """The work as the pipeline left it, before any edit."""
        work = self
        while work.previous is not None:
            work = work.previous
        return work


@dataclass(frozen=True)
class Receipt:
    """What one submission stored."""

    structure: str
    prediction_id: int
    correction_id: int
    rating_id: int
    dice: float
    annotator: str

    def message(self) -> str:
        """The confirmation shown on the page."""
        return (
            f"**Saved** {self.structure}: correction #{self.correction_id} "
            f"(Dice original → final {self.dice:.3f}) and rating #{self.rating_id}, "
            f"by {self.annotator}."
        )


@dataclass(frozen=True)
class CaseState:
    """The case one browser session works on.

    Attributes:
        token: unique per loaded case (guards against submitting the same work twice).
        slice: the slice on screen (windowed display + pixels).
        source: where it came from.
        loaded_at: wall-clock time (seconds since the epoch) the case was loaded.
        model_key: the model that made ``works`` (None before the pipeline ran).
        model_name, model_version, model_version_id: that model's identity.
        prompt_threshold: the CAM threshold the model's prompts used.
        timings_ms: the pipeline's per-stage times.
        works: one entry per structure the pipeline ran on.
        active: the structure shown and edited.
        editor_version: ``(structure, stamp)`` of the work whose mask the brush editor shows.
        receipts: what was already submitted, per structure.
        domain: the model's out-of-domain verdict on this slice (None: no domain model).
        submit_confirm: the final mask the user was warned about at submission (a digest);
            submitting that same mask again stores it.
        owner: the annotator the case was opened for (their draft survives a page reload;
            None when the annotator was not known yet).
        input_window: the window of the model's input (the bundle's window the pipeline ran
            with; see :func:`model_input`).
        load_seconds: how long loading the case took (decoding the upload, reading the
            worklist slice): charged to the time budget of the pipeline run chained after the
            load (:meth:`studio.segment_handlers.SegmentHandlers.run_loaded`), as the API's
            ``/predict`` charges its decoding.
    """

    token: str
    slice: Slice
    source: CaseSource
    loaded_at: float
    model_key: str | None = None
    model_name: str = ""
    model_version: str = ""
    model_version_id: int | None = None
    prompt_threshold: float | None = None
    timings_ms: tuple[tuple[str, float], ...] = ()
    works: tuple[StructureWork, ...] = ()
    active: str | None = None
    editor_version: tuple[str, str] | None = None
    receipts: tuple[Receipt, ...] = ()
    domain: DomainVerdict | None = None
    submit_confirm: str | None = None
    owner: str | None = None
    input_window: str | None = None
    load_seconds: float = 0.0

    @staticmethod
    def new(
        slice_: Slice,
        source: CaseSource,
        now: float,
        owner: str | None = None,
        load_seconds: float = 0.0,
    ) -> CaseState:
        """A freshly loaded case (no pipeline result yet)."""
        return CaseState(
            token=uuid.uuid4().hex,
            slice=slice_,
            source=source,
            loaded_at=now,
            owner=owner,
            load_seconds=load_seconds,
        )

    @property
    def model_input(self) -> np.ndarray:
        """uint8 ``(H, W, 3)``: what the model is given for this slice, from its pixels and
        ``input_window`` (:func:`adasam.imaging.model_image`), whatever window the slice is
        displayed through."""
        return model_image(self.slice, self.input_window)

    @property
    def work(self) -> StructureWork | None:
        """The active structure's work."""
        for w in self.works:
            if w.name == self.active:
                return w
        return None

    def with_work(self, work: StructureWork) -> CaseState:
        """This state with ``work`` replacing the entry of the same structure."""
        works = tuple(work if w.name == work.name else w for w in self.works)
        return replace(self, works=works)

    def receipt(self, structure: str) -> Receipt | None:
        """The submission of ``structure``, if it was submitted."""
        for r in self.receipts:
            if r.structure == structure:
                return r
        return None
