"""Submitting a mask that differs sharply from the candidate the user chose asks to confirm.

A wrecked refinement (a click that turned a muscle mask into a dot lattice) used to be stored
without a word. Now, when the final mask's Dice against the chosen candidate falls below
:data:`SHARP_DICE`, the first press of "Submit" only warns; pressing it again with the same
final mask stores it. Any change to the mask needs a new confirmation.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from adasam.training.metrics import dice
from studio.state import CaseState

SHARP_DICE = 0.5
"""Final masks with a Dice below this against the chosen candidate need a confirmation."""


def _digest(state: CaseState, name: str, mask: np.ndarray) -> str:
    h = hashlib.sha256(f"{state.token}:{name}:{mask.shape}".encode())
    h.update(np.packbits(mask).tobytes())
    return h.hexdigest()


def needs_confirmation(
    state: CaseState, final: np.ndarray, threshold: float = SHARP_DICE
) -> tuple[CaseState, str] | None:
    """None when ``final`` (bool, slice shape) may be stored now; otherwise the state that
    remembers the warning and the warning to show (the next submit of the same mask goes
    through)."""
    work = state.work
    if work is None or work.original is None:
        return None
    score = dice(work.original.mask, final)
    if score >= threshold:
        return None
    key = _digest(state, work.name, final)
    if state.submit_confirm == key:
        return None
    message = (
        f"The final mask of {work.name} differs sharply from the candidate you chose (Dice "
        f"{score:.2f}). Check it in the correction view; press **Submit** again to store it as "
        "it is, or undo the last edits."
    )
    return replace(state, submit_confirm=key), message
