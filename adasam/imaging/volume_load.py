"""Entry point for 3D input: :func:`load_volume` (DICOM series, zip, multi-frame DICOM, NIfTI)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import nibabel as nib
import numpy as np

from adasam.errors import IngestError
from adasam.imaging.decoded import check_plane, check_volume
from adasam.imaging.nifti import _check_affine, _check_dtype, _guess_modality, _shape3, open_nifti
from adasam.imaging.series import (
    _default_window,
    _finite,
    is_zip,
    load_multiframe,
    load_series,
    sources_from_upload,
)
from adasam.imaging.sniff import Source, detect_format, open_source
from adasam.imaging.volume3d import Volume

Upload = str | os.PathLike[str] | bytes


def _display_to_canonical(shape_xyz: tuple[int, int, int]) -> np.ndarray:
    """(k, row, col, 1) of the display stack → canonical RAS index (i, j, k, 1).

    Display slice k is ``canonical[:, :, k].T[::-1, ::-1]``: row r is j = Y-1-r, column c is
    i = X-1-c."""
    x, y, _ = shape_xyz
    return np.array(
        [[0, 0, -1, x - 1], [0, -1, 0, y - 1], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64
    )


def load_nifti_volume(src: Source, *, max_pixels: int) -> Volume:
    """A 3D NIfTI as axial display slices (RAS-reoriented, radiological; see the module
    docstring of :mod:`adasam.imaging.volume3d`)."""
    with open_nifti(src) as image:
        _check_dtype(image)
        _check_affine(image)
        shape = _shape3(image)
        check_volume(shape, max_pixels)
        try:
            canon = nib.as_closest_canonical(image)
            data = np.asarray(canon.dataobj, dtype=np.float32).reshape(canon.shape[:3])
        except IngestError:
            raise
        except Exception as exc:
            raise IngestError(
                "This NIfTI file is damaged and could not be read (the voxel data is truncated "
                "or does not match the header). Export the volume again."
            ) from exc
        check_plane(data.shape[1], data.shape[0], max_pixels)
        voxels = _finite(np.ascontiguousarray(data.transpose(2, 1, 0)[:, ::-1, ::-1]))
        modality = _guess_modality(image, voxels[voxels.shape[0] // 2])
        zooms = [abs(float(z)) for z in canon.header.get_zooms()[:3]]
        zooms += [1.0] * (3 - len(zooms))
        affine = canon.affine @ _display_to_canonical(data.shape)
        metadata: dict[str, str | int | float] = {
            "Format": f"NIfTI-{2 if isinstance(image, nib.Nifti2Image) else 1}",
            "Dimensions": "x".join(str(s) for s in shape),
            "DataType": str(np.dtype(image.header.get_data_dtype())),
            "StoredOrientation": "".join(nib.aff2axcodes(image.affine)),
            "NumberOfSlices": int(voxels.shape[0]),
        }
    units = "HU" if modality == "CT" else "a.u."
    return Volume(
        voxels=voxels,
        spacing=(zooms[2] or 1.0, zooms[1] or 1.0, zooms[0] or 1.0),
        affine=affine,
        modality=modality,
        units=units,
        default_window=_default_window(units, voxels, None),
        source_format="nifti",
        source_name=f"NIfTI volume, {voxels.shape[0]} slices",
        metadata=metadata,
    )


def load_volume(
    upload: Upload | Sequence[Upload],
    *,
    max_pixels: int = 40_000_000,
    allow_burned_in: bool = False,
) -> Volume:
    """Decode a 3D study and de-identify it.

    Args:
        upload: one file (path or bytes): a NIfTI volume, a multi-frame DICOM, or a zip of one
            DICOM series; or several files (paths or bytes), the DICOM files of one series.
        max_pixels: the largest slice (H × W); the volume may hold 16× that in all.
        allow_burned_in: accept DICOM files declaring ``BurnedInAnnotation = YES`` (refused by
            default, as for single slices: see :func:`adasam.imaging.deid.check_burned_in`).

    Returns:
        A :class:`Volume` (``voxels`` float32 ``(D, H, W)``; see its docstring). No file or
        member name is kept: ``source_name`` says only what the upload was
        (``"DICOM series, 40 slices"``), and errors name files by number.

    Raises:
        IngestError: for every upload that cannot be read as one volume (mixed or gapped
            series, several series in one zip, zip bombs, a single 2D image, ...).
    """
    many = isinstance(upload, (list, tuple))
    files = list(upload) if many else [upload]  # type: ignore[list-item]
    if not files:
        raise IngestError("No file was uploaded.")
    if len(files) == 1:
        src = open_source(files[0], name="file 1")  # type: ignore[arg-type]
        if not is_zip(src):
            fmt = detect_format(src)
            if fmt == "nifti":
                return load_nifti_volume(src, max_pixels=max_pixels)
            if fmt == "dicom":
                return load_multiframe(src, max_pixels=max_pixels, allow_burned_in=allow_burned_in)
            raise IngestError(
                f"A {fmt.upper()} file is a 2D image, not a volume. Upload a NIfTI volume, a "
                "DICOM series (several files or a zip) or a multi-frame DICOM."
            )
    sources = sources_from_upload(files, max_pixels)
    return load_series(sources, max_pixels=max_pixels, allow_burned_in=allow_burned_in)
