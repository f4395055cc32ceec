"""The :class:`Volume`: a whole 3D study (DICOM series, multi-frame DICOM or NIfTI), decoded and
de-identified, with its geometry kept.

Conventions
-----------
* ``voxels`` is float32 ``(D, H, W)``: ``D`` slices, each an ``(H, W)`` image in the same
  display orientation :func:`~adasam.imaging.load_slice` gives a single slice of that format
  (DICOM: rows and columns as stored, the way a DICOM viewer shows them; NIfTI: axial slices of
  the RAS-reoriented volume in the radiological convention, ``axis=2``).
* Slice ``k`` increases along the slice normal: DICOM series are sorted by
  ``ImagePositionPatient · (row direction × column direction)`` (ascending); NIfTI slices go
  from the patient's inferior to superior end.
* ``spacing`` is ``(slice, row, col)`` in mm: the distance between adjacent slice centres, then
  between adjacent rows, then adjacent columns.
* ``affine`` is float64 ``(4, 4)`` mapping the voxel index ``(k, row, col, 1)`` of ``voxels`` to
  scanner coordinates in mm in **RAS+** (nibabel's world: +x towards the patient's Right, +y
  Anterior, +z Superior; DICOM's LPS+ positions are converted). A label volume written with
  ``nibabel.Nifti1Image(labels, volume.affine)`` (labels ``(D, H, W)``) lies where the source
  lies. ``geometry_known`` is False when the file had no position information (legacy
  multi-frame without ``ImagePositionPatient``): the affine is then a plain scaling.
* ``reference`` (DICOM only) holds the UIDs a DICOM-SEG must cite (study, series, frame of
  reference, one SOP instance per slice). They are kept in memory for export and never copied
  into ``metadata``, logged or stored: de-identification (:mod:`adasam.imaging.deid`) is the
  same as for single files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from adasam.imaging.slice import Slice
from adasam.imaging.windows import Window, apply_window, gray_to_rgb, resolve_window

MetadataValue = str | int | float

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""DICOM patient coordinates are LPS+; NIfTI world coordinates are RAS+."""


@dataclass(frozen=True)
class SliceReference:
    """One source instance of a slice: SOP class and instance UIDs, frame number (1-based, or
    None for a single-frame instance)."""

    sop_class_uid: str
    sop_instance_uid: str
    frame: int | None = None


@dataclass(frozen=True)
class SeriesReference:
    """The UIDs of a DICOM source series, in memory only (see the module docstring).

    ``slices[k]`` is the instance (and frame) of volume slice ``k``; ``orientation`` is the
    ImageOrientationPatient (6 direction cosines, LPS) and ``positions`` float64 ``(D, 3)`` the
    ImagePositionPatient of every slice (LPS mm), both as in the source.
    """

    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    slices: tuple[SliceReference, ...]
    orientation: tuple[float, ...]
    positions: np.ndarray
    modality: str


@dataclass(frozen=True, eq=False)
class Volume:
    """A decoded, de-identified 3D study.

    Attributes:
        voxels: float32 ``(D, H, W)``, finite, physical units (HU for CT) or grey levels.
        spacing: ``(slice, row, col)`` in mm.
        affine: float64 ``(4, 4)``, voxel index ``(k, row, col, 1)`` → RAS+ mm.
        modality: ``"CT"``, ``"MR"`` or ``"OT"``.
        units: ``"HU"`` or ``"a.u."``.
        default_window: the window single slices of this source get by default.
        source_format: ``"dicom-series"``, ``"dicom-multiframe"`` or ``"nifti"``.
        source_name: what the upload was (``"DICOM series, 40 slices"``); never a file name.
        metadata: de-identified technical attributes only (:func:`adasam.imaging.deid.
            dicom_metadata` for DICOM), plus ``NumberOfSlices``.
        invert: True for MONOCHROME1 DICOM (displayed inverted).
        geometry_known: False when the position of the slices in space was not in the file.
        reference: the source series' UIDs (DICOM only; memory only).
    """

    voxels: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    modality: str
    units: str
    default_window: Window
    source_format: str
    source_name: str
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    invert: bool = False
    geometry_known: bool = True
    reference: SeriesReference | None = None

    def __post_init__(self) -> None:
        vox = np.asarray(self.voxels)
        if vox.ndim != 3 or vox.dtype != np.float32 or min(vox.shape) < 1:
            raise ValueError(
                f"Volume.voxels must be float32 (D, H, W), got {vox.dtype} {vox.shape}"
            )
        if not np.isfinite(vox).all():
            raise ValueError("Volume.voxels must be finite")
        aff = np.asarray(self.affine, dtype=np.float64)
        if aff.shape != (4, 4):
            raise ValueError(f"Volume.affine must be (4, 4), got {aff.shape}")
        view = np.ascontiguousarray(vox).view()
        view.flags.writeable = False
        object.__setattr__(self, "voxels", view)
        object.__setattr__(self, "affine", aff)
        if self.reference is not None and len(self.reference.slices) != vox.shape[0]:
            raise ValueError("Volume.reference must cite one instance per slice")

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(D, H, W)``."""
        d, h, w = self.voxels.shape
        return int(d), int(h), int(w)

    @property
    def depth(self) -> int:
        return self.shape[0]

    def display(self, k: int, window: str | Window | None = None) -> np.ndarray:
        """uint8 ``(H, W, 3)`` display of slice ``k`` through ``window`` (default: the
        volume's default window; MONOCHROME1 inverted)."""
        win = self.default_window if window is None else resolve_window(window, self.voxels[k])
        gray = apply_window(self.voxels[k], win)
        return gray_to_rgb(255 - gray if self.invert else gray)

    def plane(self, axis: int, index: int, window: str | Window | None = None) -> np.ndarray:
        """uint8 display of an orthogonal plane: ``axis`` 0 = slice ``index`` ``(H, W)``,
        1 = row ``index`` ``(D, W)``, 2 = column ``index`` ``(D, H)``; for axes 1 and 2 slice
        ``D - 1`` is on top. Not resampled: rows are slices (see ``spacing`` for the aspect)."""
        if axis == 0:
            return self.display(index, window)
        win = self.default_window if window is None else resolve_window(window, self.voxels)
        cut = np.take(self.voxels, index, axis=axis)[::-1]
        gray = apply_window(np.ascontiguousarray(cut), win)
        return gray_to_rgb(255 - gray if self.invert else gray)

    def slice(self, k: int, window: str | Window | None = None) -> Slice:
        """Slice ``k`` as a :class:`Slice` (for the 2D pipeline and storage)."""
        if not 0 <= int(k) < self.depth:
            raise IndexError(f"slice {k} is outside 0..{self.depth - 1}")
        win = self.default_window if window is None else resolve_window(window, self.voxels[k])
        metadata = dict(self.metadata)
        if self.invert:
            metadata.setdefault("PhotometricInterpretation", "MONOCHROME1")
        fmt = "nifti" if self.source_format == "nifti" else "dicom"
        return Slice(
            pixels=np.array(self.voxels[k]),
            display=self.display(int(k), win),
            spacing=(self.spacing[1], self.spacing[2]),
            modality=self.modality,
            units=self.units,
            window=win,
            source_format=fmt,
            source_name=self.source_name,
            metadata=metadata,
            slice_index=int(k),
            axis=2 if fmt == "nifti" else None,
            num_slices=self.depth,
            default_window=self.default_window,
        )

    def __repr__(self) -> str:
        return (
            f"Volume(shape={self.shape}, spacing={self.spacing}, modality={self.modality!r}, "
            f"units={self.units!r}, source_format={self.source_format!r}, "
            f"geometry_known={self.geometry_known}, metadata={self.metadata!r})"
        )
