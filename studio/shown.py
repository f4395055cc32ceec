"""The studio's picture bounds: a 5000-pixel slice is drawn for the page at most ``max_side``.

Drawing the overlays (heatmap, prompts, candidates, the correction canvas, the brush editor's
background) at a 4900 × 4900 slice's own size and Gradio's PNG encoding of each held the single
model queue for about 3 s per picture (profiled in issue 13). The page shows them at most a
few hundred pixels wide (the canvas can be zoomed), so each is drawn at most these sizes. The
geometry (:class:`Shown`, :func:`bounded_shape`, :func:`picture_to_slice`) is
:mod:`adasam.shown`'s, shared with the CLI's ``predict``; masks, heatmaps and clicks stay at the
slice's size in the session.
"""

from __future__ import annotations

from adasam.shown import Shown, bounded_shape, picture_to_slice

__all__ = ["CANVAS_MAX_SIDE", "VIEW_SIDE", "Shown", "bounded_shape", "picture_to_slice"]

VIEW_SIDE = 1024
"""Longest side of the pipeline's pictures (slice, heatmap, prompts, candidates, AuxOL), which
the page shows 200 px high (full screen on demand)."""
CANVAS_MAX_SIDE = 2048
"""Longest side of the correction canvas and of the brush editor's background."""
