"""Writing 2-D slices and masks as single-slice NIfTI volumes."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray


def write_slice_nifti(
    path: Path, array: NDArray[np.generic], spacing: tuple[float, float] | None
) -> None:
    """Save an (H, W) array as a NIfTI volume of shape (W, H, 1).

    NIfTI's first axis is x (columns) and the second y (rows), so a reader that follows the
    convention (nibabel ``data[:, :, 0].T``, SimpleITK ``array[0]``) gets the slice back as
    (H, W). Voxel sizes are (column spacing, row spacing, 1) mm; 1 mm when unknown.
    """
    row_spacing, col_spacing = spacing if spacing is not None else (1.0, 1.0)
    affine = np.diag([col_spacing, row_spacing, 1.0, 1.0])
    volume = np.ascontiguousarray(array.T[:, :, np.newaxis])
    image = nib.Nifti1Image(volume, affine)
    image.header.set_xyzt_units(xyz="mm")
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    nib.save(image, str(path))
