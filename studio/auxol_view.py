"""The AuxOL online specialist in the studio: learn after each submission, show the fused mask.

One :class:`OnlineSpecialists` per server keeps an :class:`adasam.auxol.AuxOL` per model
(name + version). After a correction is stored, :meth:`OnlineSpecialists.learn` takes its one
online step on a single background worker (the submission returns at once; steps run one at a
time, in submission order) and saves the state to ``DATA_DIR/auxol/<model>-v<version>.pt``, so
learning survives a restart. A version without a saved state starts from its parent version's
specialist (:meth:`AuxOL.inherit`: same weights and FIFO, α history cleared). The page shows,
beside SAM's chosen mask, the fused one (:func:`fused_view`). ``ADASAM_AUXOL=0`` switches it off.
"""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from adasam.auxol import AuxOL, AuxOLConfig, UpdateReport, sam_logits_at_original
from adasam.bundle import read_config
from adasam.errors import BundleError, ConfigError
from adasam.frame import ModelFrame
from adasam.render import contour
from studio.errors import StudioError
from studio.shown import VIEW_SIDE, Shown
from studio.state import CaseState, StructureWork

log = logging.getLogger("studio")

SAM_COLOUR = (255, 170, 0)
FUSED_COLOUR = (0, 220, 255)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:120] or "model"


def case_inputs(state: CaseState, work: StructureWork) -> tuple[np.ndarray, tuple, np.ndarray]:
    """(image, XYXY box, SAM logits at the slice size) of the chosen candidate of ``work``.

    The box is the prompt box, else the box around SAM's mask.
    """
    original = work.original
    if original is None:
        raise ValueError("no candidate chosen yet")
    image = state.model_input  # what SAM saw
    mask_size = int(original.logits.shape[-1])  # SAM's low-res masks are input_size / 4
    frame = ModelFrame(image.shape[:2], 4 * mask_size, mask_size)
    logits = sam_logits_at_original(original.logits, frame)
    box = work.box
    if box is None:
        ys, xs = np.nonzero(original.mask)
        if len(xs) == 0:
            raise ValueError("SAM's mask is empty and there is no box")
        box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    return image, tuple(box), logits


class OnlineSpecialists:
    """The AuxOL specialist of every model the studio serves (thread-safe)."""

    def __init__(self, directory: Path, *, enabled: bool = True, cfg: AuxOLConfig | None = None):
        self.directory = Path(directory)
        self.enabled = enabled
        self.cfg = cfg or AuxOLConfig()
        self._models: dict[str, AuxOL] = {}
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auxol")

    def path(self, model: str, version: str) -> Path:
        """Where the specialist of ``model`` version ``version`` is saved."""
        return self.directory / f"{_safe(model)}-v{_safe(version)}.pt"

    def get(self, model: str, version: str, parent_version: str | None = None) -> AuxOL:
        """The specialist of this model version: loaded, inherited from the parent, or new."""
        key = f"{model}\x00{version}"
        with self._lock:
            found = self._models.get(key)
            if found is not None:
                return found
            own = self.path(model, version)
            parent = None if parent_version is None else self.path(model, parent_version)
            try:
                if own.is_file():
                    found = AuxOL.load(own)
                elif parent is not None and parent.is_file():
                    found = AuxOL.load(parent).inherit()
            except ConfigError as exc:
                log.warning("AuxOL state unusable, starting afresh: %s", exc)
            if found is None:
                found = AuxOL(self.cfg)
            self._models[key] = found
            return found

    def learn(
        self, state: CaseState, final_mask: np.ndarray, parent_version: str | None = None
    ) -> Future[UpdateReport] | None:
        """Schedule the online step for the submitted structure of ``state`` (None when off or
        when the case has no candidate)."""
        work = state.work
        if not self.enabled or work is None or work.original is None:
            return None
        try:
            image, box, logits = case_inputs(state, work)
        except ValueError as exc:
            log.info("AuxOL skips this case: %s", exc)
            return None
        model, version = state.model_name, state.model_version
        mask = np.asarray(final_mask, bool).copy()

        def step() -> UpdateReport:
            aux = self.get(model, version, parent_version)
            report = aux.update(image, box, logits, mask)
            aux.save(self.path(model, version))
            return report

        future = self._worker.submit(step)
        future.add_done_callback(_log_failure)
        return future

    def fuse(self, state: CaseState, parent_version: str | None = None) -> Any:
        """The :class:`adasam.auxol.Fusion` of the shown structure's chosen candidate, or None."""
        work = state.work
        if not self.enabled or work is None or work.original is None:
            return None
        try:
            image, box, logits = case_inputs(state, work)
        except ValueError:
            return None
        aux = self.get(state.model_name, state.model_version, parent_version)
        return aux.fuse(image, box, logits)

    def close(self) -> None:
        """Finish the pending steps and stop the worker."""
        self._worker.shutdown(wait=True)


def _log_failure(future: Future[UpdateReport]) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("AuxOL online step failed: %s", exc)


def parent_version(catalog: Any, state: CaseState) -> str | None:
    """The version the case's model was fine-tuned from (its bundle's ``parent_version``)."""
    if state.model_key is None:
        return None
    try:
        return read_config(catalog.choice(state.model_key).path).parent_version
    except (StudioError, BundleError, OSError):
        return None


def fused_view(services: Any, state: CaseState | None) -> tuple[Any, str]:
    """(overlay image or None, Markdown): SAM's chosen mask (orange) and the fused mask (cyan)."""
    specialists: OnlineSpecialists | None = services.specialists
    if specialists is None or not specialists.enabled:
        return None, "The online specialist (AuxOL) is switched off (`ADASAM_AUXOL=0`)."
    if state is None or state.work is None:
        return None, ""
    fusion = specialists.fuse(state, parent_version(services.catalog, state))
    if fusion is None:
        return None, "AuxOL: choose a candidate to see the fused mask."
    work = state.work
    assert work.original is not None
    shown = Shown.of(np.asarray(state.slice.display), VIEW_SIDE)  # a bounded picture
    image = np.array(shown.image, copy=True)
    image[contour(shown.mask(work.original.mask), 1)] = SAM_COLOUR
    image[contour(shown.mask(fusion.mask), 1)] = FUSED_COLOUR
    aux = specialists.get(state.model_name, state.model_version)
    if fusion.sam_only:
        text = (
            f"**AuxOL** learned from {aux.cases} corrected case(s); SAM alone until "
            f"{aux.cfg.alpha_cases} exist (orange: SAM, cyan: fused = SAM)."
        )
    else:
        sam_area, fused_area = int(work.original.mask.sum()), int(fusion.mask.sum())
        text = (
            f"**AuxOL** fused σ(α·SAM + (1−α)·specialist), α = {fusion.alpha:.2f}, learned from "
            f"{aux.cases} corrected cases. Orange: SAM ({sam_area} px), cyan: fused "
            f"({fused_area} px)."
        )
    return image, text


def components() -> tuple[Any, Any]:
    """The page's AuxOL panel (call inside the Blocks): the overlay image and its caption."""
    import gradio as gr

    with gr.Accordion("Online specialist (AuxOL): SAM vs fused", open=False, elem_id="auxol"):
        image = gr.Image(
            label="SAM (orange) and fused (cyan)",
            interactive=False,
            format="png",
            elem_id="auxol-img",
        )
        text = gr.Markdown(elem_id="auxol-md")
    return image, text


def attach(services: Any, events: list[Any], state: Any, outputs: tuple[Any, Any]) -> None:
    """Refresh the AuxOL panel after each of ``events`` (pipeline run, choice, submit)."""

    def refresh(case: CaseState | None) -> tuple[Any, str]:
        try:
            return fused_view(services, case)
        except (ValueError, RuntimeError) as exc:  # never break the page over the side panel
            log.warning("AuxOL view failed: %s", exc)
            return None, f"AuxOL is unavailable for this case: {exc}"

    for event in events:
        event.then(refresh, [state], list(outputs), api_visibility="private")
