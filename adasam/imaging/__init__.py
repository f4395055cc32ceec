"""Image ingestion: decode an upload by its content, window it for display, de-identify it.

Formats: PNG, JPEG, TIFF (8/16-bit grey, RGB, RGBA, palette; multi-page TIFF as a stack), DICOM
(modality LUT → HU for CT, the file's window or VOI LUT, multi-frame), NIfTI ``.nii``/``.nii.gz``
(one slice of a volume, reoriented to RAS and shown in the radiological convention) and NumPy
``.npy`` (2D, RGB or 3D, never unpickled).

Public API::

    load_slice(source, *, name=None, slice_index=None, axis=2, window=None,
               max_pixels=25_000_000, allow_burned_in=False) -> Slice
    rewindow(slice, window) -> Slice
    model_image(slice, bundle_window) -> uint8 (H, W, 3)   (the one window policy: what a
        model is given, from the pixels and the bundle's window, never the display window)
    volume_depth(source, axis=2) -> int | None
    load_volume(upload | [files], *, max_pixels=40_000_000, allow_burned_in=False) -> Volume
        (a DICOM series as several files or one zip, a multi-frame DICOM, a 3D NIfTI)
    Slice, Window, WINDOW_PRESETS, WINDOW_CHOICES, apply_window, auto_window, resolve_window

No torch here: this package only needs numpy, Pillow, pydicom and nibabel.
"""

from adasam.imaging.decoded import VOLUME_FACTOR
from adasam.imaging.deid import DICOM_ALLOWLIST
from adasam.imaging.load import load_slice, rewindow, volume_depth
from adasam.imaging.model_input import model_image, model_window, with_preferred_window
from adasam.imaging.slice import Slice
from adasam.imaging.volume import VolumeSlice, load_volume_slices
from adasam.imaging.volume3d import SeriesReference, SliceReference, Volume
from adasam.imaging.volume_load import load_volume
from adasam.imaging.windows import (
    AUTO,
    WINDOW_CHOICES,
    WINDOW_PRESETS,
    Window,
    apply_window,
    auto_window,
    resolve_window,
)

__all__ = [
    "AUTO",
    "DICOM_ALLOWLIST",
    "VOLUME_FACTOR",
    "WINDOW_CHOICES",
    "WINDOW_PRESETS",
    "SeriesReference",
    "Slice",
    "SliceReference",
    "Volume",
    "VolumeSlice",
    "Window",
    "apply_window",
    "auto_window",
    "load_slice",
    "load_volume",
    "load_volume_slices",
    "model_image",
    "model_window",
    "resolve_window",
    "rewindow",
    "volume_depth",
    "with_preferred_window",
]
