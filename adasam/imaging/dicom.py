"""DICOM decoding with pydicom: modality LUT (to HU for CT), the file's window or VOI LUT, frames.

Pipeline for a grey image: stored values → modality LUT (Rescale Slope/Intercept or Modality
LUT Sequence, ``pydicom.pixels.apply_modality_lut``) → ``values`` (HU for CT). The display then
uses, with ``window=None``: the VOI LUT Sequence if present (first view), else Window
Center/Width (first value), else ``ct-abdomen`` for CT and ``auto`` otherwise. MONOCHROME1
images are shown inverted (``values`` are not). Colour images (RGB, YBR, palette) are 8-bit
display images (16-bit colour is scaled to 8 bits by its Bits Stored).

Multi-frame files: ``slice_index`` picks the frame (the middle one by default), and only that
frame is decoded. For enhanced multi-frame files the frame's functional groups (Pixel Value
Transformation, Frame VOI LUT, Pixel Measures) override the top-level attributes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, get_decoder, pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from adasam.errors import IngestError
from adasam.imaging.decoded import (
    Decoded,
    check_plane,
    check_single,
    check_volume,
    choose_index,
    luminance,
    to_uint8_by_depth,
)
from adasam.imaging.deid import check_burned_in, dicom_metadata
from adasam.imaging.sniff import SUPPORTED_HINT, Source
from adasam.imaging.windows import Window

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_NON_IMAGE = {
    "SR": "a structured report (SR)",
    "RTPLAN": "a radiotherapy plan (RTPLAN)",
    "RTSTRUCT": "a radiotherapy structure set (RTSTRUCT)",
    "ECG": "an ECG waveform",
    "KO": "a key-object selection",
    "PR": "a presentation state",
    "REG": "a registration",
}
_FRAME_GROUPS = {
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept", "RescaleType"),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "VOILUTFunction"),
    "PixelMeasuresSequence": ("PixelSpacing", "SliceThickness"),
}
_VIEW_KEYWORDS = (
    "Modality",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
    "PixelSpacing",
    "SliceThickness",
)


def _not_dicom() -> IngestError:
    return IngestError(
        "This file could not be read as DICOM: it is damaged or not a DICOM file. " + SUPPORTED_HINT
    )


def read_dataset(src: Source, *, header_only: bool = False) -> Dataset:
    """Parse the dataset (``force=True`` only for files without the 128-byte preamble).

    Raises:
        IngestError: not DICOM, damaged, or a DICOM without an image.
    """
    has_preamble = len(src.head) >= 132 and src.head[128:132] == b"DICM"
    try:
        with src.open() as fh:
            ds = dcmread(fh, force=not has_preamble, stop_before_pixels=header_only)
    except InvalidDicomError as exc:
        raise _not_dicom() from exc
    except (
        EOFError,
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        OverflowError,
    ) as exc:
        raise IngestError(
            "This DICOM file is damaged or incomplete: its header could not be read. "
            "Export it again."
        ) from exc
    if not has_preamble and "Rows" not in ds and "Modality" not in ds and "SOPClassUID" not in ds:
        raise _not_dicom()
    _check_has_image(ds, header_only=header_only)
    _ensure_transfer_syntax(ds)
    return ds


def _check_has_image(ds: Dataset, *, header_only: bool) -> None:
    modality = str(ds.get("Modality", "") or "").upper()
    if modality == "SEG":
        raise IngestError(
            "This DICOM file is a segmentation (SEG), not an image. Upload the CT or MR image "
            "it belongs to."
        )
    has_pixels = any(k in ds for k in _PIXEL_KEYWORDS)
    if header_only:
        has_pixels = has_pixels or ("Rows" in ds and "Columns" in ds)
    if not has_pixels and _is_image_object(ds):
        raise IngestError(
            "This DICOM file is incomplete: it is an image but its pixel data is missing (the "
            "upload or export was cut short). Export it again."
        )
    if not has_pixels:
        what = _NON_IMAGE.get(modality, "a DICOM file without pixel data (e.g. a DICOMDIR index)")
        raise IngestError(
            f"This DICOM file holds no image: it is {what}. Upload an image file of the series."
        )


def _is_image_object(ds: Dataset) -> bool:
    """True when the header says this should be an image (image attributes, image SOP class)."""
    if "Rows" in ds and "Columns" in ds:
        return True
    meta = getattr(ds, "file_meta", None)
    for uid in (
        ds.get("SOPClassUID"),
        None if meta is None else meta.get("MediaStorageSOPClassUID"),
    ):
        if uid and "Image Storage" in UID(str(uid)).name:
            return True
    return False


def _ensure_transfer_syntax(ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        ds.file_meta = meta = Dataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        if little is False:
            raise IngestError(
                "This DICOM file has no file meta header and is big-endian, which the studio "
                "cannot decode. Export it again as Explicit VR Little Endian."
            )
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian


def _int_attr(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise IngestError(
                f"This DICOM image is damaged: its '{keyword}' attribute is missing. "
                "Export it again."
            )
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise IngestError(
            f"This DICOM image is damaged: its '{keyword}' attribute is not a number "
            f"({str(value)[:20]!r}). Export it again."
        ) from exc


def dicom_geometry(ds: Dataset) -> tuple[int, int, int]:
    """(rows, columns, frames) from the header."""
    return (
        _int_attr(ds, "Rows"),
        _int_attr(ds, "Columns"),
        max(1, _int_attr(ds, "NumberOfFrames", 1)),
    )


def _frame_view(ds: Dataset, frame: int, frames: int) -> Dataset:
    """The attributes that govern ``frame``: top level, overridden by functional groups."""
    view = Dataset()
    for keyword in _VIEW_KEYWORDS:
        if keyword in ds:
            view[keyword] = ds[keyword]
    groups: list[Dataset] = []
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and len(per_frame) == frames:
        groups.append(per_frame[frame])
    for group in groups:
        for sequence, keywords in _FRAME_GROUPS.items():
            items = group.get(sequence)
            if not items:
                continue
            for keyword in keywords:
                if keyword in items[0]:
                    view[keyword] = items[0][keyword]
    return view


def _first_number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if hasattr(value, "__iter__") and not isinstance(value, str):
        items = list(value)
        if not items:
            return None
        value = items[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _file_window(view: Dataset) -> Window | None:
    level = _first_number(view.get("WindowCenter"))
    width = _first_number(view.get("WindowWidth"))
    if level is None or width is None or width <= 0:
        return None
    return Window(level=level, width=width, name="dicom")


def _spacing(view: Dataset) -> tuple[float, float] | None:
    value = view.get("PixelSpacing")
    try:
        row, col = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if row > 0 and col > 0 and math.isfinite(row) and math.isfinite(col):
        return row, col
    return None


def _voi_lut(values: np.ndarray, view: Dataset) -> tuple[np.ndarray, Window] | None:
    """Apply the first VOI LUT: (uint8 (H, W) display, Window spanning the LUT's input range)."""
    items = view.get("VOILUTSequence")
    if not items:
        return None
    try:
        n_entries, first_mapped, _ = (int(v) for v in items[0].LUTDescriptor)
        n_entries = n_entries or 65536
        inputs = np.arange(first_mapped, first_mapped + n_entries, dtype=np.int64)
        table = np.asarray(apply_voi(inputs, view), dtype=np.float64)
    except Exception:  # a broken LUT: fall back to the window or the default
        return None
    if table.shape != (n_entries,):
        return None
    index = np.clip(np.floor(values).astype(np.int64) - first_mapped, 0, n_entries - 1)
    lo, hi = float(table.min()), float(table.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    display = np.rint((table[index] - lo) * scale).astype(np.uint8)
    window = Window(
        level=first_mapped + n_entries / 2.0, width=float(n_entries), name="dicom-voi-lut"
    )
    return display, window


def _check_decoder(ds: Dataset) -> None:
    syntax = UID(str(ds.file_meta.TransferSyntaxUID))
    if not syntax.is_transfer_syntax or not syntax.is_compressed:
        return
    label = syntax.name if syntax.name != str(syntax) else "an unknown compression"
    try:
        available = get_decoder(syntax).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise IngestError(
            f"This DICOM image is compressed with {label}, which the studio cannot decode. "
            "Export it uncompressed (Explicit VR Little Endian) and upload it again."
        )


def _decode_frame(ds: Dataset, frame: int | None) -> np.ndarray:
    _check_decoder(ds)
    try:
        return pixel_array(ds, index=frame)
    except ValueError as exc:
        if "less than expected" in str(exc) or "truncat" in str(exc).lower():
            raise IngestError(
                "This DICOM file is incomplete: it holds less pixel data than its header "
                "announces (the upload or export was cut short). Export it again."
            ) from exc
        raise IngestError(
            "The pixel data of this DICOM file could not be decoded: it is damaged or "
            "inconsistent with its header. Export it again."
        ) from exc
    except Exception as exc:
        raise IngestError(
            "The pixel data of this DICOM file could not be decoded: it is damaged, or uses a "
            "variant the studio does not support. Export it uncompressed and upload it again."
        ) from exc


def decode_dicom(
    src: Source, *, slice_index: int | None, max_pixels: int, allow_burned_in: bool = False
) -> Decoded:
    """Decode one frame of a DICOM file.

    Returns:
        :class:`Decoded`: ``values`` float32 (H, W) after the modality LUT (HU for CT);
        ``rgb`` for colour and plain 8-bit grey images without a window.

    Raises:
        IngestError: not DICOM, no image, damaged, truncated, unsupported compression, too
            large, frame out of range, or burned-in annotation (unless ``allow_burned_in``).
    """
    ds = read_dataset(src)
    burned_in = check_burned_in(ds, allow=allow_burned_in)
    rows, cols, frames = dicom_geometry(ds)
    samples = _int_attr(ds, "SamplesPerPixel", 1)
    check_plane(rows, cols, max_pixels)
    if frames > 1:
        check_volume((frames, rows, cols), max_pixels, what="multi-frame image")
        frame: int | None = choose_index(slice_index, frames, what="frame")
    else:
        check_single(slice_index)
        frame = None
    arr = _decode_frame(ds, frame if frames > 1 else None)
    view = _frame_view(ds, frame or 0, frames)
    photometric = str(view.get("PhotometricInterpretation", "MONOCHROME2") or "").upper()
    modality_code = str(ds.get("Modality", "") or "").upper()
    metadata = _metadata(ds, view, burned_in)
    modality = modality_code if modality_code in ("CT", "MR") else "OT"
    common: dict[str, Any] = {
        "source_format": "dicom",
        "spacing": _spacing(view),
        "metadata": metadata,
        "slice_index": frame,
        "num_slices": frames if frames > 1 else None,
        "modality": modality,
    }

    if photometric == "PALETTE COLOR":
        rgb_raw = apply_color_lut(arr, ds)
        depth = 255 if rgb_raw.dtype == np.uint8 else float(np.iinfo(rgb_raw.dtype).max)
        rgb = to_uint8_by_depth(rgb_raw, depth)
        return _colour(rgb, common)
    if samples == 3 or arr.ndim == 3:
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise IngestError("This DICOM colour image has an unexpected layout. Export it again.")
        bits = _int_attr(ds, "BitsStored", 8)
        rgb = to_uint8_by_depth(arr, float(2**bits - 1))
        return _colour(rgb, common)
    if arr.ndim != 2:
        raise IngestError("This DICOM image has an unexpected layout. Export it again.")

    values = np.asarray(apply_modality_lut(arr, view), dtype=np.float64)
    rescale_type = str(view.get("RescaleType", "") or "").upper()
    units = "HU" if modality == "CT" and rescale_type in ("", "HU") else "a.u."
    file_window = _file_window(view)
    voi = _voi_lut(values, view)
    invert = photometric == "MONOCHROME1"
    plain_8bit = (
        photometric == "MONOCHROME2"
        and arr.dtype == np.uint8
        and modality != "CT"
        and file_window is None
        and voi is None
        and "ModalityLUTSequence" not in view
        and _first_number(view.get("RescaleSlope")) in (None, 1.0)
        and _first_number(view.get("RescaleIntercept")) in (None, 0.0)
    )
    rgb = np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2)) if plain_8bit else None
    voi_display, window = (None, file_window) if voi is None else voi
    return Decoded(
        values=values.astype(np.float32),
        rgb=rgb,
        units=units,
        file_window=window,
        voi_display=voi_display,
        invert=invert,
        **common,
    )


def _metadata(ds: Dataset, view: Dataset, burned_in: bool) -> dict[str, Any]:
    """The de-identified metadata of one frame (see :func:`adasam.imaging.deid.dicom_metadata`),
    with the burned-in flag (when allowed) and the transfer syntax's name."""
    metadata: dict[str, Any] = dict(dicom_metadata(ds, view))
    if burned_in:
        metadata["BurnedInAnnotation"] = "YES"
    syntax = UID(str(ds.file_meta.TransferSyntaxUID))
    if syntax.is_transfer_syntax and syntax.name != str(syntax):
        metadata["TransferSyntax"] = syntax.name
    return metadata


def _colour(rgb: np.ndarray, common: dict[str, Any]) -> Decoded:
    return Decoded(values=luminance(rgb), rgb=np.ascontiguousarray(rgb), **common)


def dicom_depth(src: Source) -> int | None:
    """Number of frames of a multi-frame DICOM, None for a single frame (header only)."""
    ds = read_dataset(src, header_only=True)
    _, _, frames = dicom_geometry(ds)
    return frames if frames > 1 else None
