"""Stored final masks as :class:`adasam.finetune.CorrectedCase` (display image + verdict)."""

from __future__ import annotations

import numpy as np

from adasam.finetune import CorrectedCase
from storage import Store, correction_verdicts, final_masks, load_display


def corrected_cases(store: Store, after_correction_id: int | None = None) -> list[CorrectedCase]:
    """The newest final mask of each (slice, structure), newer than ``after_correction_id``,
    with the slice's display image (uint8 RGB) and the SegEx verdict of its candidate."""
    finals = final_masks(store, after_correction_id=after_correction_id)
    verdicts = correction_verdicts(store, [f.correction_id for f in finals])
    images: dict[str, np.ndarray] = {}
    out = []
    for f in finals:
        key = f.slice.content_hash
        if key not in images:
            display = load_display(store, f.slice)
            if display.ndim == 2:
                display = np.repeat(display[:, :, None], 3, axis=2)
            images[key] = np.ascontiguousarray(display[:, :, :3])
        out.append(
            CorrectedCase(
                correction_id=f.correction_id,
                case=key,
                structure=f.structure,
                image=images[key],
                mask=f.mask,
                verdict=verdicts.get(f.correction_id),
            )
        )
    return out


def _count_final_masks(
    store: Store, gate: object, *, heldout: bool, after_correction_id: int | None = None
) -> int:
    """Final masks (newest per slice and structure) on the held-out or the trainable side of
    the gate's seeded split; no pixels."""
    from adasam.gate import is_heldout

    share, seed = gate.heldout_share, gate.heldout_seed  # type: ignore[attr-defined]
    return sum(
        1
        for f in final_masks(store, after_correction_id=after_correction_id)
        if is_heldout(f.slice.content_hash, share, seed) == heldout
    )


def pending_count(store: Store, after_correction_id: int | None, gate: object) -> int:
    """How many new final masks a job would train on (held-out cases excluded); no pixels."""
    return _count_final_masks(store, gate, heldout=False, after_correction_id=after_correction_id)


def heldout_count(store: Store, gate: object) -> int:
    """How many final masks (all versions) the gate would judge a candidate on; no pixels."""
    return _count_final_masks(store, gate, heldout=True)
