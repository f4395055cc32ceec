"""The :class:`Slice`: one decoded, de-identified 2D image, ready for display and the models."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from adasam.imaging.windows import Window

MetadataValue = str | int | float


def pixels_hash(pixels: np.ndarray) -> str:
    """SHA-256 (hex) of ``float32:{H}x{W}:`` and the little-endian float32 C-order bytes of a
    float32 (H, W) array: :attr:`Slice.content_hash`."""
    digest = hashlib.sha256()
    h, w = pixels.shape
    digest.update(f"float32:{h}x{w}:".encode("ascii"))
    digest.update(np.ascontiguousarray(pixels, dtype="<f4").tobytes())
    return digest.hexdigest()


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Slice:
    """One 2D image slice, decoded and de-identified.

    Attributes:
        pixels: float32 (H, W), C-contiguous, finite. Physical units where known (HU for CT,
            see ``units``); for 8-bit display inputs the grey value 0..255 (colour inputs: the
            luminance ``0.299 R + 0.587 G + 0.114 B``, unrounded).
        display: uint8 (H, W, 3) RGB image for display and for the models: ``pixels`` through
            ``window`` (three equal channels), or the image itself for 8-bit inputs
            (``window`` None; colour kept).
        spacing: (row, col) pixel spacing in mm, i.e. the distance between the centres of two
            adjacent rows, then of two adjacent columns; None when unknown.
        modality: ``"CT"``, ``"MR"`` or ``"OT"`` (other or unknown). The DICOM code itself, when
            there is one, is in ``metadata["Modality"]``.
        units: ``"HU"`` (CT) or ``"a.u."`` (arbitrary units).
        window: the window that made ``display``; None when ``display`` is the 8-bit input itself.
        source_format: ``"png"``, ``"jpeg"``, ``"tiff"``, ``"dicom"``, ``"nifti"`` or ``"npy"``.
        source_name: a neutral case name (``case-`` + 12 hex digits of ``content_hash``, see
            :func:`adasam.imaging.deid.case_name`) when made by ``load_slice``; never the
            uploaded file's name.
        metadata: de-identified technical facts only (see :mod:`adasam.imaging.deid`).
        slice_index: index of this slice along ``axis`` (volumes) or of the frame (multi-frame
            DICOM, multi-page TIFF); None for a single 2D image.
        axis: 0, 1 or 2 for NIfTI/NumPy volumes (NIfTI: after reorientation to RAS, so 0 =
            sagittal, 1 = coronal, 2 = axial); None for 2D images and multi-frame files.
        num_slices: number of slices along ``axis`` (or of frames); None for a single 2D image.
        default_window: the window :func:`~adasam.imaging.load_slice` chooses with
            ``window=None`` (the file's own, else ``ct-abdomen`` for HU, else ``auto``);
            None for 8-bit display inputs. :func:`~adasam.imaging.rewindow` returns to it.
        default_display: uint8 (H, W, 3) display that cannot be recomputed from ``pixels`` and
            ``default_window`` (an 8-bit input's own colours, a DICOM VOI LUT); None otherwise.

    The arrays are read-only views; equality is identity (compare ``content_hash`` instead).
    """

    pixels: np.ndarray
    display: np.ndarray
    spacing: tuple[float, float] | None
    modality: str
    units: str
    window: Window | None
    source_format: str
    source_name: str
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    slice_index: int | None = None
    axis: int | None = None
    num_slices: int | None = None
    default_window: Window | None = None
    default_display: np.ndarray | None = None

    def __post_init__(self) -> None:
        pixels = np.asarray(self.pixels)
        display = np.asarray(self.display)
        if pixels.ndim != 2 or pixels.dtype != np.float32:
            raise ValueError(
                f"Slice.pixels must be float32 (H, W), got {pixels.dtype} {pixels.shape}"
            )
        if display.dtype != np.uint8 or display.shape != (*pixels.shape, 3):
            raise ValueError(
                f"Slice.display must be uint8 {(*pixels.shape, 3)}, "
                f"got {display.dtype} {display.shape}"
            )
        if not np.isfinite(pixels).all():
            raise ValueError("Slice.pixels must be finite")
        object.__setattr__(self, "pixels", _read_only(np.ascontiguousarray(pixels)))
        object.__setattr__(self, "display", _read_only(np.ascontiguousarray(display)))
        if self.default_display is not None:
            default_display = np.asarray(self.default_display)
            if default_display.dtype != np.uint8 or default_display.shape != display.shape:
                raise ValueError("Slice.default_display must be like Slice.display")
            object.__setattr__(self, "default_display", _read_only(default_display))

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        h, w = self.pixels.shape
        return int(h), int(w)

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 (hex) of the shape and the float32 C-order bytes of ``pixels``.

        Depends on nothing but the de-identified pixel values, so the same image gives the same
        hash whatever its file name, format or window (a cache key for model embeddings).
        """
        return pixels_hash(self.pixels)

    def __repr__(self) -> str:
        h, w = self.shape
        parts = [
            f"shape=({h}, {w})",
            f"modality={self.modality!r}",
            f"units={self.units!r}",
            f"window={self.window!r}",
            f"spacing={self.spacing!r}",
            f"source_format={self.source_format!r}",
            f"source_name={self.source_name!r}",
            f"slice_index={self.slice_index!r}",
            f"axis={self.axis!r}",
            f"num_slices={self.num_slices!r}",
            f"metadata={self.metadata!r}",
        ]
        return f"Slice({', '.join(parts)})"
