"""The one window policy: what a model is given for a slice, and how it is first shown.

A model bundle records the window its training slices were shown through
(``BundleConfig.window``, e.g. ``ct-abdomen``; None for models trained on display images).
The model's input is computed from the slice's **pixels** and that window, never from the
display window the user picked to look at the slice (``Slice.display``):

============================================  =============================================
slice                                         model input (uint8 (H, W, 3))
============================================  =============================================
CT in Hounsfield units (DICOM, NIfTI, .npy),  ``pixels`` through the bundle's window
bundle with a window
any other slice: MR and other arbitrary       the slice's own default display: the file's
units, CT with a window-less bundle, 8-bit    window or VOI LUT, else ``auto`` (a.u.) or
PNG/JPEG (already a window)                   ``ct-abdomen`` (HU); 8-bit images as they are
============================================  =============================================

This is the rule training uses (:func:`with_preferred_window` on slices loaded with their
default window), so the studio, ``adasam predict`` and the training data agree. The studio and
the CLI call :func:`model_image`; volumes (:class:`~adasam.imaging.Volume`) use
:func:`model_window` with their units.
"""

from __future__ import annotations

import numpy as np

from adasam.imaging.load import rewindow
from adasam.imaging.slice import Slice
from adasam.imaging.windows import Window


def model_window(units: str, bundle_window: str | Window | None) -> str | Window | None:
    """The window a model sees data in ``units`` through: ``bundle_window`` for ``"HU"``,
    else None (the data's own default display)."""
    if bundle_window and units == "HU":
        return bundle_window
    return None


def model_image(s: Slice, bundle_window: str | Window | None) -> np.ndarray:
    """The model's input for slice ``s``: uint8 ``(H, W, 3)``, from ``s.pixels`` (and the
    file's own window or colours), whatever window ``s.display`` is shown through.

    Args:
        s: a slice from :func:`~adasam.imaging.load_slice` (any display window).
        bundle_window: the model's window (``BundleConfig.window``), a preset name, a
            :class:`Window` or None.
    """
    window = model_window(s.units, bundle_window)
    if window is None and s.default_display is not None:
        return np.asarray(s.default_display)  # 8-bit image, or the file's VOI LUT
    return np.asarray(rewindow(s, window).display)


def with_preferred_window(s: Slice, window: str | Window | None) -> Slice:
    """``s`` shown through :func:`model_window` (display == model input for a slice loaded
    with its default window): the model's window for slices in Hounsfield units; other
    slices keep their display (8-bit PNG/JPEG grey levels are already a window)."""
    chosen = model_window(s.units, window)
    return s if chosen is None else rewindow(s, chosen)
