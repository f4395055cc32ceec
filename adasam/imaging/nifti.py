"""NIfTI-1/NIfTI-2 volumes (``.nii``, ``.nii.gz``) with nibabel: one slice, reoriented for display.

Orientation convention
----------------------
1. The volume is reoriented to the closest canonical RAS+ orientation, exactly as
   ``nibabel.as_closest_canonical`` does: array axis 0 increases towards the patient's Right,
   axis 1 towards Anterior, axis 2 towards Superior. ``axis`` 0, 1, 2 therefore cut sagittal,
   coronal and axial slices, and ``slice_index`` counts from the patient's left, posterior or
   inferior end respectively.
2. The 2D slice is shown in the radiological convention, the one of DICOM viewers:

   * axial (axis 2): rows top→bottom = anterior→posterior, columns left→right = the patient's
     right→left (the viewer looks up from the feet);
   * coronal (axis 1): rows = superior→inferior, columns = the patient's right→left;
   * sagittal (axis 0): rows = superior→inferior, columns = anterior→posterior.

   For every axis this is ``canonical_slice.T[::-1, ::-1]``, where ``canonical_slice`` keeps the
   two remaining RAS axes in increasing order.

Only the chosen slice is read (the canonical index is mapped back to the stored axis, so the
result equals slicing ``as_closest_canonical(img)``), which keeps large volumes cheap.

Modality guess (NIfTI has no modality field): "MR" if the free-text description names MR (MR,
MRI, T1, T2, FLAIR, DWI, BOLD); else "CT" (units HU) if it names CT or the slice's minimum lies
in the air range of HU (-3100 .. -900); else "OT". The description itself is never kept.
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.orientations import io_orientation

from adasam.errors import IngestError
from adasam.imaging.decoded import Decoded, check_plane, check_volume, choose_index
from adasam.imaging.sniff import Source, nifti_version

_CT_WORDS = re.compile(r"(^|[^A-Z])CT([^A-Z]|$)")
_MR_WORDS = re.compile(r"(^|[^A-Z])(MR|MRI|T1|T1W|T2|T2W|FLAIR|DWI|BOLD)([^A-Z0-9]|$)")
_UNIT_TO_MM = {"mm": 1.0, "meter": 1000.0, "micron": 0.001, "unknown": 1.0}


def _damaged(detail: str = "") -> IngestError:
    return IngestError(
        f"This NIfTI file is damaged and could not be read{detail}. Export the volume again."
    )


@contextmanager
def open_nifti(src: Source) -> Iterator[Any]:
    """Yield a nibabel image whose header is read and whose data stays on disk (lazy)."""
    raw = src.open()
    try:
        gz = src.head.startswith(b"\x1f\x8b")
        fileobj: Any = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        header = fileobj.read(544)
        fileobj.seek(0)
        version = nifti_version(header)
        klass = nib.Nifti2Image if version == 2 else nib.Nifti1Image
        file_map = klass.make_file_map()
        for holder in file_map.values():
            holder.fileobj = fileobj
        try:
            image = klass.from_file_map(file_map)
        except IngestError:
            raise
        except Exception as exc:
            raise _damaged(" (its header is not valid)") from exc
        yield image
    except (EOFError, OSError, gzip.BadGzipFile) as exc:
        raise _damaged(" (it is truncated or not valid gzip)") from exc
    finally:
        raw.close()


def _orientation(affine: np.ndarray) -> np.ndarray:
    """nibabel's io_orientation: row j = [canonical axis of stored axis j, +1 or -1]."""
    try:
        ornt = io_orientation(affine)
    except Exception:
        ornt = np.array([[np.nan, np.nan]] * 3)
    if ornt.shape != (3, 2) or not np.isfinite(ornt).all():
        return np.array([[0, 1], [1, 1], [2, 1]], dtype=float)  # degenerate affine: as stored
    return ornt


def _shape3(image: Any) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image.header.get_data_shape())
    if len(shape) == 0:
        raise _damaged(" (it declares no dimensions)")
    if len(shape) > 3 and any(s > 1 for s in shape[3:]):
        dims = " × ".join(str(s) for s in shape)
        raise IngestError(
            f"This NIfTI file is a {len(shape)}D series ({dims}), e.g. a time series; the studio "
            "reads 3D volumes. Extract one 3D volume (e.g. one time point) and upload that."
        )
    if len(shape) == 1:
        raise IngestError("This NIfTI file holds a 1D signal, not an image or a volume.")
    padded = (*shape[:3], 1, 1)[:3]
    return int(padded[0]), int(padded[1]), int(padded[2])


def _check_dtype(image: Any) -> None:
    dtype = np.dtype(image.header.get_data_dtype())
    if dtype.kind not in "biuf" or dtype.fields is not None:
        what = "complex numbers" if dtype.kind == "c" else "colour (RGB) voxels"
        raise IngestError(
            f"This NIfTI volume stores {what} ({dtype}), which the studio cannot display. "
            "Convert it to a grey-level volume first."
        )


def _check_affine(image: Any) -> None:
    """Refuse a header whose orientation (affine: sform/qform, or the voxel sizes) is not finite.

    Raises:
        IngestError: NaN or infinite values, which would silently flip or rescale the slice.
    """
    try:
        affine = np.asarray(image.affine, dtype=np.float64)
        zooms = np.asarray(image.header.get_zooms()[:3], dtype=np.float64)
    except Exception as exc:
        raise _damaged(" (its orientation could not be read)") from exc
    if affine.shape != (4, 4) or not np.isfinite(affine).all() or not np.isfinite(zooms).all():
        raise IngestError(
            "This NIfTI file's orientation is broken: its affine (sform/qform) or voxel sizes "
            "hold NaN or infinite values, so neither the slice direction nor the pixel spacing "
            "can be trusted. Fix the header (e.g. re-save it with nibabel or 3D Slicer) and "
            "upload it again."
        )


def _canonical_geometry(image: Any, axis: int) -> tuple[np.ndarray, tuple[int, int, int], int]:
    _check_affine(image)
    shape = _shape3(image)
    ornt = _orientation(image.affine)
    canon = [0, 0, 0]
    for j in range(3):
        canon[int(ornt[j, 0])] = shape[j]
    return ornt, (canon[0], canon[1], canon[2]), int(np.flatnonzero(ornt[:, 0] == axis)[0])


def _spacing(
    image: Any, ornt: np.ndarray, rows_axis: int, cols_axis: int
) -> tuple[float, float] | None:
    # float32 header values: keep their shortest decimal form (0.7, not 0.699999988)
    zooms = [float(str(np.float32(z))) for z in image.header.get_zooms()[:3]]
    zooms += [1.0] * (3 - len(zooms))
    try:
        unit = image.header.get_xyzt_units()[0]
    except Exception:
        unit = "unknown"
    factor = _UNIT_TO_MM.get(str(unit), 1.0)
    canon = [0.0, 0.0, 0.0]
    for j in range(3):
        canon[int(ornt[j, 0])] = abs(zooms[j]) * factor
    row, col = canon[rows_axis], canon[cols_axis]
    if row > 0 and col > 0 and math.isfinite(row) and math.isfinite(col):
        return row, col
    return None


def _read_plane(image: Any, stored_axis: int, stored_index: int) -> np.ndarray:
    """The 2D plane ``stored_index`` along stored axis ``stored_axis`` (remaining axes in order)."""
    ndim = len(image.header.get_data_shape())
    if ndim <= 2:
        data = np.asarray(image.dataobj).reshape(_shape3(image))
        return np.take(data, stored_index, axis=stored_axis)
    slicer: list[Any] = [slice(None)] * ndim
    slicer[stored_axis] = stored_index
    for extra in range(3, ndim):
        slicer[extra] = 0
    return np.asarray(image.dataobj[tuple(slicer)])


def _guess_modality(image: Any, values: np.ndarray) -> str:
    try:
        description = bytes(image.header["descrip"]).decode("latin-1").upper()
    except Exception:
        description = ""
    if _MR_WORDS.search(description):
        return "MR"
    if _CT_WORDS.search(description):
        return "CT"
    finite = values[np.isfinite(values)]
    if finite.size and -3100.0 <= float(finite.min()) <= -900.0:
        return "CT"
    return "OT"


def decode_nifti(src: Source, *, slice_index: int | None, axis: int, max_pixels: int) -> Decoded:
    """Decode one slice of a NIfTI volume, in the display orientation of the module docstring.

    Returns:
        :class:`Decoded` with ``values`` float32 (H, W) (scl_slope/scl_inter applied) and
        ``spacing`` from the voxel sizes (in mm).

    Raises:
        IngestError: damaged, 4D, complex/RGB data, too large, slice out of range.
    """
    with open_nifti(src) as image:
        _check_dtype(image)
        ornt, canon_shape, stored_axis = _canonical_geometry(image, axis)
        rows_axis, cols_axis = [a for a in (0, 1, 2) if a != axis][::-1]
        check_plane(canon_shape[rows_axis], canon_shape[cols_axis], max_pixels)
        check_volume(canon_shape, max_pixels)
        depth = canon_shape[axis]
        index = choose_index(slice_index, depth)
        flip = ornt[stored_axis, 1] < 0
        stored_index = depth - 1 - index if flip else index
        try:
            plane = _read_plane(image, stored_axis, stored_index)
        except IngestError:
            raise
        except Exception as exc:
            raise _damaged(" (the voxel data is truncated or does not match the header)") from exc
        remaining = [j for j in range(3) if j != stored_axis]
        for position, j in enumerate(remaining):
            if ornt[j, 1] < 0:
                plane = np.flip(plane, axis=position)
        if ornt[remaining[0], 0] > ornt[remaining[1], 0]:
            plane = plane.T
        values = np.ascontiguousarray(plane.T[::-1, ::-1], dtype=np.float32)
        spacing = _spacing(image, ornt, rows_axis, cols_axis)
        modality = _guess_modality(image, values)
        stored_shape = _shape3(image)
        try:
            codes = "".join(nib.aff2axcodes(image.affine))
        except Exception:
            codes = "unknown"
        metadata: dict[str, str | int | float] = {
            "Format": f"NIfTI-{2 if isinstance(image, nib.Nifti2Image) else 1}",
            "Dimensions": "x".join(str(s) for s in stored_shape),
            "DataType": str(np.dtype(image.header.get_data_dtype())),
            "StoredOrientation": codes,
            "QFormCode": int(image.header["qform_code"]),
            "SFormCode": int(image.header["sform_code"]),
        }
    return Decoded(
        values=values,
        source_format="nifti",
        spacing=spacing,
        modality=modality,
        units="HU" if modality == "CT" else "a.u.",
        metadata=metadata,
        slice_index=index,
        axis=axis,
        num_slices=depth,
    )


def nifti_depth(src: Source, axis: int) -> int:
    """Number of slices along canonical ``axis`` (header only)."""
    with open_nifti(src) as image:
        _, canon_shape, _ = _canonical_geometry(image, axis)
    return canon_shape[axis]
