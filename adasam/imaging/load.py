"""Entry points: :func:`load_slice`, :func:`rewindow`, :func:`volume_depth`.

Policies (shared by every format):

* **Format by content.** The bytes decide (:func:`adasam.imaging.sniff.detect_format`); the file
  name never does.
* **Size bounds before decoding.** ``max_pixels`` bounds the decoded slice (H × W); a volume or
  multi-frame file may hold at most ``VOLUME_FACTOR × max_pixels`` voxels in all. Both are read
  from headers before any pixel data is decoded.
* **Non-finite values.** A slice whose values are all NaN/inf is refused. Otherwise NaN and -inf
  become the smallest finite value of the slice and +inf the largest, and
  ``metadata["NonFinitePixelsReplaced"]`` records how many pixels were replaced (NaN backgrounds
  are common in processed MR volumes; refusing them would refuse valid files).
* **Windows.** ``window=None``: the file's own window (DICOM VOI LUT or Window Center/Width), else
  ``ct-abdomen`` for HU, else ``auto``; 8-bit display inputs are shown as they are
  (``Slice.window`` None). An explicit window on an 8-bit input is applied to its 0..255 values,
  channel by channel (colour kept).
* **Errors.** Every failure is an :class:`~adasam.errors.IngestError` (a ``ValueError``) with a
  message for the person who uploaded the file; no pydicom/Pillow/nibabel exception escapes.
"""

from __future__ import annotations

import os

import numpy as np

from adasam.errors import IngestError
from adasam.imaging.decoded import Decoded
from adasam.imaging.deid import case_name
from adasam.imaging.dicom import decode_dicom, dicom_depth
from adasam.imaging.nifti import decode_nifti, nifti_depth
from adasam.imaging.npy import decode_npy, npy_depth
from adasam.imaging.raster import decode_raster, raster_depth
from adasam.imaging.slice import Slice, pixels_hash
from adasam.imaging.sniff import Source, detect_format, open_source
from adasam.imaging.windows import (
    WINDOW_PRESETS,
    Window,
    apply_window,
    auto_window,
    gray_to_rgb,
    resolve_window,
)

_LABEL = {
    "png": "PNG",
    "jpeg": "JPEG",
    "tiff": "TIFF",
    "dicom": "DICOM",
    "nifti": "NIfTI",
    "npy": "NumPy",
}


def _check_axis(axis: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis not in (0, 1, 2):
        raise IngestError(
            f"The slice axis must be 0 (sagittal), 1 (coronal) or 2 (axial), got {axis!r}."
        )
    return int(axis)


def _check_max_pixels(max_pixels: int) -> int:
    if (
        isinstance(max_pixels, bool)
        or not isinstance(max_pixels, (int, np.integer))
        or max_pixels < 1
    ):
        raise IngestError(f"max_pixels must be a whole number ≥ 1, got {max_pixels!r}.")
    return int(max_pixels)


def _decode(
    src: Source,
    fmt: str,
    slice_index: int | None,
    axis: int,
    max_pixels: int,
    allow_burned_in: bool = False,
) -> Decoded:
    try:
        if fmt in ("png", "jpeg", "tiff"):
            return decode_raster(src, fmt, slice_index=slice_index, max_pixels=max_pixels)
        if fmt == "dicom":
            return decode_dicom(
                src,
                slice_index=slice_index,
                max_pixels=max_pixels,
                allow_burned_in=allow_burned_in,
            )
        if fmt == "nifti":
            return decode_nifti(src, slice_index=slice_index, axis=axis, max_pixels=max_pixels)
        if fmt == "npy":
            return decode_npy(src, slice_index=slice_index, axis=axis, max_pixels=max_pixels)
    except IngestError:
        raise
    except MemoryError as exc:
        raise IngestError(
            f"The {_LABEL[fmt]} image is too large to load in memory. Downsample it or crop it "
            "first."
        ) from exc
    except Exception as exc:  # a parser's own error: never show it raw
        raise IngestError(
            f"The {_LABEL[fmt]} file could not be read: it is damaged or uses a variant the "
            "studio does not support. Export it again."
        ) from exc
    raise IngestError(f"Unsupported format {fmt!r}.")  # pragma: no cover - detect_format guards


def _make_finite(values: np.ndarray) -> tuple[np.ndarray, int]:
    """float32 (H, W) with NaN/-inf → min and +inf → max of the finite values; (array, count)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(values, dtype=np.float32)
    finite = np.isfinite(out)
    bad = int(finite.size - np.count_nonzero(finite))
    if bad == 0:
        return out, 0
    if bad == out.size:
        raise IngestError(
            f"This image holds no usable values: all {out.size:,} pixels are NaN or infinite "
            "(not a number). Choose another slice or export the image again."
        )
    lo = out[finite].min()
    hi = out[finite].max()
    out = out.copy()  # never write into the decoder's (possibly shared) array
    out[np.isnan(out) | np.isneginf(out)] = lo
    out[np.isposinf(out)] = hi
    return out, bad


def _default_window(units: str, values: np.ndarray, file_window: Window | None) -> Window:
    if file_window is not None:
        return file_window
    if units == "HU":
        return WINDOW_PRESETS["ct-abdomen"]
    return auto_window(values)


def _render(values: np.ndarray, window: Window, invert: bool) -> np.ndarray:
    gray = apply_window(values, window)
    if invert:
        gray = 255 - gray
    return gray_to_rgb(gray)


def _defaults(decoded: Decoded, values: np.ndarray) -> tuple[Window | None, np.ndarray | None]:
    """The default window and, where it is not computed from ``values``, the default display
    (an 8-bit image itself; the file's VOI LUT)."""
    if decoded.rgb is not None:
        return None, np.ascontiguousarray(decoded.rgb, dtype=np.uint8)
    if decoded.voi_display is not None:
        gray = 255 - decoded.voi_display if decoded.invert else decoded.voi_display
        return decoded.file_window, gray_to_rgb(gray)
    return _default_window(decoded.units, values, decoded.file_window), None


def _shown(
    decoded: Decoded,
    values: np.ndarray,
    window: str | Window | None,
    default_window: Window | None,
    default_display: np.ndarray | None,
) -> tuple[Window | None, np.ndarray]:
    """The window chosen for display and the display, uint8 (H, W, 3)."""
    if window is None:
        if default_display is not None:
            return default_window, default_display
        assert default_window is not None
        return default_window, _render(values, default_window, decoded.invert)
    chosen = resolve_window(window, values)
    if decoded.rgb is not None:  # an 8-bit image: its own colours through the window
        assert default_display is not None
        return chosen, apply_window(default_display, chosen)
    return chosen, _render(values, chosen, decoded.invert)


def load_slice(
    source: str | os.PathLike[str] | bytes,
    *,
    name: str | None = None,
    slice_index: int | None = None,
    axis: int = 2,
    window: str | Window | None = None,
    max_pixels: int = 25_000_000,
    allow_burned_in: bool = False,
) -> Slice:
    """Decode one 2D slice of an uploaded image, window it and de-identify it.

    Args:
        source: a file path, or the file's bytes. The format is found from the content.
        name: the file name, used in error messages only (the slice is named
            :func:`~adasam.imaging.deid.case_name` of its pixels; the file name is never kept).
        slice_index: slice of a volume (NIfTI, 3D .npy) along ``axis``, or frame of a
            multi-frame DICOM / page of a multi-page TIFF; None = the middle one
            (``depth // 2``). A 2D image only accepts None or 0.
        axis: 0, 1 or 2; for NIfTI the axis of the RAS-reoriented volume (0 sagittal,
            1 coronal, 2 axial), for .npy volumes the array axis. Ignored by other formats.
        window: None (the file's own window, else ``ct-abdomen`` for HU, else ``auto``; 8-bit
            display images shown as they are), a preset name (:data:`WINDOW_PRESETS`),
            ``"auto"`` or a :class:`Window`.
        max_pixels: the largest slice (H × W) accepted; volumes may hold 16× that in all.
            Both are checked from the header, before any pixel data is decoded.
        allow_burned_in: accept DICOM images declaring ``BurnedInAnnotation = YES`` (refused
            by default: their pixels may show identifying text).

    Returns:
        A :class:`Slice`: ``pixels`` float32 (H, W) finite, ``display`` uint8 (H, W, 3).

    Raises:
        IngestError: for every file that cannot be shown (see the module docstring).
    """
    axis = _check_axis(axis)
    max_pixels = _check_max_pixels(max_pixels)
    src = open_source(source, name)
    fmt = detect_format(src)
    decoded = _decode(src, fmt, slice_index, axis, max_pixels, allow_burned_in)
    values, replaced = _make_finite(decoded.values)
    content_hash = pixels_hash(values)
    metadata = dict(decoded.metadata)
    if replaced:
        metadata["NonFinitePixelsReplaced"] = replaced
    default_window, default_display = _defaults(decoded, values)
    chosen, display = _shown(decoded, values, window, default_window, default_display)
    if decoded.invert:
        metadata.setdefault("PhotometricInterpretation", "MONOCHROME1")
    made = Slice(
        pixels=values,
        display=display,
        spacing=decoded.spacing,
        modality=decoded.modality,
        units=decoded.units,
        window=chosen,
        source_format=decoded.source_format,
        source_name=case_name(content_hash),
        metadata=metadata,
        slice_index=decoded.slice_index,
        axis=decoded.axis,
        num_slices=decoded.num_slices,
        default_window=default_window,
        default_display=default_display,
    )
    made.__dict__["content_hash"] = content_hash  # computed once (cached_property's slot)
    return made


def rewindow(s: Slice, window: str | Window | None) -> Slice:
    """The same slice with ``display`` recomputed for another window.

    Args:
        s: a slice from :func:`load_slice` (or an earlier :func:`rewindow`).
        window: a preset name, ``"auto"`` or a :class:`Window`: ``s.pixels`` through that window
            (for an 8-bit display input: its own 0..255 colours through the window, channel by
            channel). None: back to the display :func:`load_slice` gives with ``window=None``
            (the file's window or VOI LUT, the 8-bit image itself, or the default by units).

    Returns:
        A new :class:`Slice`; ``pixels``, ``content_hash`` and metadata are unchanged.
        MONOCHROME1 DICOM stays inverted.

    Raises:
        IngestError: unknown preset name.
    """
    invert = s.metadata.get("PhotometricInterpretation") == "MONOCHROME1"
    native = s.default_display if s.default_window is None else None
    if window is None:
        chosen = s.default_window
        if s.default_display is not None:
            display = s.default_display
        else:
            if chosen is None:
                chosen = _default_window(s.units, s.pixels, None)
            display = _render(s.pixels, chosen, invert)
    else:
        chosen = resolve_window(window, s.pixels)
        if native is not None:
            display = apply_window(native, chosen)
        else:
            display = _render(s.pixels, chosen, invert)
    return Slice(
        pixels=s.pixels,
        display=display,
        spacing=s.spacing,
        modality=s.modality,
        units=s.units,
        window=chosen,
        source_format=s.source_format,
        source_name=s.source_name,
        metadata=dict(s.metadata),
        slice_index=s.slice_index,
        axis=s.axis,
        num_slices=s.num_slices,
        default_window=s.default_window,
        default_display=s.default_display,
    )


def volume_depth(source: str | os.PathLike[str] | bytes, axis: int = 2) -> int | None:
    """Number of slices a slider can choose from, reading headers only where possible.

    Returns:
        NIfTI: slices along the RAS ``axis``; 3D .npy: ``shape[axis]``; multi-frame DICOM:
        frames; multi-page TIFF: pages (``axis`` ignored for these two). None for a single 2D
        image.

    Raises:
        IngestError: as :func:`load_slice` for unreadable files.
    """
    axis = _check_axis(axis)
    src = open_source(source)
    fmt = detect_format(src)
    try:
        if fmt == "nifti":
            return nifti_depth(src, axis)
        if fmt == "npy":
            return npy_depth(src, axis)
        if fmt == "dicom":
            return dicom_depth(src)
        return raster_depth(src, fmt)
    except IngestError:
        raise
    except Exception as exc:
        raise IngestError(
            f"The {_LABEL[fmt]} file could not be read: it is damaged or uses a variant the "
            "studio does not support. Export it again."
        ) from exc
