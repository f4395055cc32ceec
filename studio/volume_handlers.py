"""The volume tab's logic: open a 3D study, segment one slice, propagate, correct, save, export.

A :class:`VolumeSession` (in the page's session state) holds the de-identified
:class:`~adasam.imaging.Volume`, the chosen model and structure, and the
:class:`~adasam.propagate.VolumeAnnotation` with each slice's status. Nothing is stored until
the annotator saves; then every slice becomes a stored slice and the case a volume case
(:mod:`storage.volumes`), human slices as corrections the learning loop trains on.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

import storage
from adasam import scaling
from adasam.budget import Deadline
from adasam.imaging import Volume, load_volume, model_window
from adasam.imaging.export3d import label_array, write_dicom_seg, write_nifti_labels
from adasam.predictor import Click, Predictor
from adasam.propagate import (
    PropagationConfig,
    PropagationReport,
    VolumeAnnotation,
    mask_prompt_logits,
    propagate,
)
from adasam.render import contour
from studio.catalog import ModelChoice
from studio.errors import StudioError
from studio.exports import safe_stem
from studio.services import Services
from studio.shown import CANVAS_MAX_SIDE, VIEW_SIDE, Shown
from studio.uploads import discard_upload, take_upload
from studio.views import canvas_to_slice, upscale

log = logging.getLogger("studio")

STATUS_COLOURS: dict[str, tuple[int, int, int]] = {
    "propagated": (255, 200, 0),
    "accepted": (40, 210, 90),
    "corrected": (0, 200, 255),
}
SLICE_LINE = (255, 60, 60)


@dataclass
class VolumeSession:
    """One user's open volume (kept in the page's session state, never stored as such)."""

    volume: Volume
    model_key: str
    structure: str
    model_window: str | None
    annotation: VolumeAnnotation
    model_masks: dict[int, np.ndarray] = field(default_factory=dict)
    clicks: dict[int, list[Click]] = field(default_factory=dict)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    saved_case_id: int | None = None

    def model_image(self, k: int) -> np.ndarray:
        """Slice ``k`` as the model sees it (the one window policy,
        :func:`adasam.imaging.model_window`: the model's window for HU data)."""
        return self.volume.display(k, model_window(self.volume.units, self.model_window))


def _overlay(image: np.ndarray, mask: np.ndarray, status: str) -> np.ndarray:
    out = np.array(image)
    if status in STATUS_COLOURS and mask.any():
        out[contour(mask, 1)] = STATUS_COLOURS[status]
    return out


def _stretch(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize rows by ``factor`` (slices are thicker than pixels) for an undistorted view."""
    height = max(1, round(image.shape[0] * factor))
    return np.asarray(Image.fromarray(image).resize((image.shape[1], height), Image.NEAREST))


def _narrowed(plane: np.ndarray, cut: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """A ``(D, N)`` plane and its mask cut with ``N`` bounded by :data:`VIEW_SIDE` (the D rows
    are kept: slices are few), and the factor ``N`` was shrunk by."""
    d, n = cut.shape
    if n <= VIEW_SIDE:
        return plane, cut, 1.0
    shown = Shown(np.asarray(Image.fromarray(plane).resize((VIEW_SIDE, d), Image.BOX)), (d, n))
    return shown.image, shown.mask(cut), VIEW_SIDE / n


def views(session: VolumeSession, k: int, window: str | None) -> tuple[np.ndarray, ...]:
    """(axial slice ``k``, coronal, sagittal) uint8 RGB with the masks' outlines; the two
    orthogonal views cut through the middle and mark slice ``k`` with a red line. Large
    slices are drawn bounded (:mod:`studio.shown`): the axial view at most
    :data:`CANVAS_MAX_SIDE` (clicks map back in :meth:`VolumeHandlers.click_canvas`), the
    planes at most :data:`VIEW_SIDE` wide."""
    vol, ann = session.volume, session.annotation
    shown = Shown.of(vol.display(k, window), CANVAS_MAX_SIDE)
    axial = _overlay(shown.image, shown.mask(ann.masks[k]), ann.status[k])
    d, h, w = vol.shape
    out = [axial]
    for axis, index in ((1, h // 2), (2, w // 2)):
        cut = np.take(ann.masks, index, axis=axis)[::-1]
        plane, cut, shrink = _narrowed(vol.plane(axis, index, window), cut)  # D-1 on top
        plane = np.array(plane, copy=True)
        plane[contour(cut, 1)] = (255, 120, 0)
        plane[d - 1 - k] = SLICE_LINE
        ratio = vol.spacing[0] / vol.spacing[2 if axis == 1 else 1]
        out.append(_stretch(plane, ratio * shrink))
    return tuple(out)


def canvas_views(session: VolumeSession, k: int, window: str | None) -> tuple[np.ndarray, ...]:
    """:func:`views` as the page shows them: each upscaled like the Annotate tab's canvas
    (:func:`~studio.views.upscale`), so a 64² slice fills its 512 px box sharply and a click
    on the slice maps back to slice pixels exactly (:meth:`VolumeHandlers.click_canvas`)."""
    return tuple(upscale(view) for view in views(session, k, window))


def slice_index(shown: float) -> int:
    """The 0-based slice index of the 1-based number the page shows (slider, status)."""
    return int(shown) - 1


def status_text(session: VolumeSession, k: int) -> str:
    """The status line of 0-based slice ``k``, numbered from 1 like every slice on the page."""
    ann = session.annotation
    counts = ann.counts()
    score = ann.scores[k]
    extra = f", SAM score {score:.2f}" if np.isfinite(score) else ""
    area = int(ann.masks[k].sum())
    return (
        f"**Slice {k + 1} of {ann.depth}: {ann.status[k]}** ({area} px{extra}). "
        f"{session.structure} on {session.volume.source_name}, spacing "
        f"{' × '.join(f'{s:.3g}' for s in session.volume.spacing)} mm. Slices: "
        f"{counts['propagated']} propagated, {counts['accepted']} accepted, "
        f"{counts['corrected']} corrected, {counts['none']} without a mask."
    )


class VolumeHandlers:
    """Handlers of the volume tab (all return plain values; the view wires them)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    # -- opening ---------------------------------------------------------------------------
    def _choice(self, model_key: str | None) -> ModelChoice:
        return self.services.catalog.choice(model_key)

    def _predictor(self, session: VolumeSession) -> Predictor:
        return self.services.catalog.predictor(self._choice(session.model_key))

    def open(self, files: Sequence[str] | None, model_key: str | None, structure: str | None):
        """Decode the upload (several DICOM files, a zip, a NIfTI or a multi-frame DICOM)."""
        if not files:
            raise StudioError("Choose the files of a DICOM series, a zip of one, or a NIfTI.")
        root = self.services.upload_root
        try:  # every cached copy is deleted before anything else, whatever happens next
            datas = [take_upload(f, root) for f in files]
        finally:
            for f in files:
                discard_upload(Path(f), root)
        choice = self._choice(model_key)
        structure = structure or choice.structures[0]
        if structure not in choice.structures:
            raise StudioError(
                f"{choice.label} segments {', '.join(choice.structures)}, not {structure}."
            )
        settings = self.services.settings
        volume = load_volume(
            datas if len(datas) > 1 else datas[0],
            max_pixels=settings.max_pixels,
            allow_burned_in=settings.allow_burned_in,
        )
        return VolumeSession(
            volume=volume,
            model_key=choice.key,
            structure=structure,
            model_window=choice.window,
            annotation=VolumeAnnotation(volume.shape),
        )

    # -- one slice -------------------------------------------------------------------------
    def segment(self, session: VolumeSession, k: int) -> None:
        """Run the automatic pipeline (classifier, CAM prompts, SAM) on slice ``k``."""
        predictor = self._predictor(session)
        result = scaling.predict(predictor, session.model_image(k), [session.structure])
        found = result.structure(session.structure)
        if not found.found or not found.candidates:
            raise StudioError(
                f"The model did not find {session.structure} on slice {k} "
                f"(p = {found.probability:.2f}). Go to a slice where it is clearly visible."
            )
        best = found.candidates[0]
        ann = session.annotation
        ann.masks[k] = best.mask
        ann.status[k] = "propagated"  # a model's mask: unchecked until accepted or corrected
        ann.scores[k] = best.score
        ann.logits[k] = best.logits
        session.model_masks[k] = best.mask.copy()
        session.clicks.pop(k, None)

    def accept(self, session: VolumeSession, k: int) -> None:
        if not session.annotation.masks[k].any() and session.annotation.status[k] == "none":
            raise StudioError(f"Slice {k + 1} has no mask to accept yet: segment it first.")
        session.annotation.accept(k)

    def click(self, session: VolumeSession, k: int, x: float, y: float, positive: bool) -> None:
        """A refinement click on slice ``k``: SAM's decoder with all clicks of this slice and
        the previous logits; the slice becomes ``corrected``."""
        predictor = self._predictor(session)
        ann = session.annotation
        clicks = [*session.clicks.get(k, []), Click(float(x), float(y), bool(positive))]
        logits = ann.logits.get(k)
        if logits is None and ann.masks[k].any():
            logits = mask_prompt_logits(predictor, ann.masks[k])
        cand = scaling.refine(predictor, session.model_image(k), clicks, previous_logits=logits)
        session.model_masks.setdefault(k, ann.masks[k].copy())
        ann.correct(k, cand.mask)
        ann.logits[k] = cand.logits
        session.clicks[k] = clicks

    def click_canvas(
        self, session: VolumeSession, k: int, index: object, positive: bool
    ) -> tuple[int, int]:
        """A click on the shown slice (canvas pixels of :func:`canvas_views`): :meth:`click`
        at the slice pixel under it; that pixel ``(x, y)``.

        Raises:
            StudioError: the click was not on the image.
        """
        if not isinstance(index, (list, tuple)) or len(index) != 2 or None in index:
            raise StudioError("Click on the slice itself.")
        h, w = session.volume.shape[1:]
        fx, fy = canvas_to_slice(float(index[0]), float(index[1]), (h, w))  # up- or downscaled
        self.click(session, k, fx, fy, positive)
        return int(fx), int(fy)

    def clear(self, session: VolumeSession, k: int) -> None:
        """The structure is not on slice ``k``: an empty, corrected mask."""
        session.model_masks.setdefault(k, session.annotation.masks[k].copy())
        session.annotation.correct(k, np.zeros(session.volume.shape[1:], dtype=bool))
        session.clicks.pop(k, None)

    # -- propagation -----------------------------------------------------------------------
    def propagate(
        self,
        session: VolumeSession,
        k: int,
        config: PropagationConfig,
        progress: Callable[[int, int], None] | None = None,
    ) -> PropagationReport:
        ann = session.annotation
        if ann.status[k] not in ("accepted", "corrected"):
            raise StudioError(
                f"Slice {k + 1} is {ann.status[k]}: accept or correct it before propagating "
                "from it."
            )
        if not ann.masks[k].any():
            raise StudioError(f"Slice {k + 1} has an empty mask: there is nothing to carry.")
        event = threading.Event()
        with self._lock:
            self._cancel[session.token] = event
        try:
            report = propagate(
                self._predictor(session),
                session.model_image,
                ann,
                k,
                config=config,
                progress=progress,
                cancel=event.is_set,
                deadline=Deadline(self.services.settings.request_seconds),
            )
        finally:
            with self._lock:
                self._cancel.pop(session.token, None)
        for j in report.propagated:
            session.model_masks[j] = ann.masks[j].copy()
            session.clicks.pop(j, None)
        return report

    def stop(self, session: VolumeSession | None) -> bool:
        """Ask a running propagation of this session to stop (True when one was running)."""
        if session is None:
            return False
        with self._lock:
            event = self._cancel.get(session.token)
        if event is None:
            return False
        event.set()
        return True

    # -- saving and exporting ----------------------------------------------------------------
    def save(self, session: VolumeSession, annotator: str) -> int:
        """Store every slice, the case and each slice's mask and status; returns the case id."""
        store = self.services.store
        storage.ensure_annotator(store, annotator)
        vol = session.volume
        hashes = []
        for k in range(vol.depth):
            sl = vol.slice(k)
            storage.record_slice(
                store,
                content_hash=sl.content_hash,
                pixels=sl.pixels,
                display=sl.display,
                modality=sl.modality,
                units=sl.units,
                spacing=sl.spacing,
                window_level=sl.window.level if sl.window else None,
                window_width=sl.window.width if sl.window else None,
                window_name=sl.window.name if sl.window else None,
                source_format=sl.source_format,
                source_name=sl.source_name,
                metadata=sl.metadata,
            )
            hashes.append(sl.content_hash)
        case = storage.record_volume_case(
            store,
            structure=session.structure,
            modality=vol.modality,
            source_format=vol.source_format,
            shape=vol.shape,
            spacing=vol.spacing,
            affine=vol.affine,
            slice_hashes=hashes,
            annotator=annotator,
        )
        ann = session.annotation
        for k, status in enumerate(ann.status):
            if status == "none":
                continue
            human = status in ("accepted", "corrected")
            storage.record_volume_slice(
                store,
                volume_case_id=case.id,
                slice_index=k,
                status=status,
                mask=ann.masks[k],
                score=None if human else float(ann.scores[k]),
                annotator=annotator if human else None,
                original=session.model_masks.get(k, ann.masks[k]) if human else None,
            )
        session.saved_case_id = case.id
        return case.id

    def export(self, session: VolumeSession) -> list[Path]:
        """The label volume as NIfTI (always) and DICOM-SEG (DICOM series only)."""
        folder = self.services.exports.new_folder()
        stem = safe_stem(session.structure)
        labels = label_array({session.structure: session.annotation.masks}, [session.structure])
        nifti = folder / f"{stem}_labels.nii.gz"
        write_nifti_labels(nifti, labels, session.volume)
        paths = [nifti]
        if session.volume.source_format == "dicom-series":
            seg = folder / f"{stem}_seg.dcm"
            write_dicom_seg(seg, labels, session.volume, [session.structure])
            paths.append(seg)
        return paths
