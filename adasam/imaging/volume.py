"""Whole NIfTI volumes cut into display slices at once (for training on MSD/nnU-Net data).

:func:`load_slice` reads one slice per call, which is right for an upload but slow for the
hundreds of slices of a training volume (each ``.nii.gz`` call decompresses the file again).
:func:`load_volume_slices` reads the volume once and returns every slice along ``axis`` in the
same canonical, radiological display orientation as :func:`load_slice` (see
:mod:`adasam.imaging.nifti`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from adasam.errors import IngestError
from adasam.imaging.windows import Window, apply_window, gray_to_rgb, resolve_window


@dataclass(frozen=True)
class VolumeSlice:
    """One slice: ``pixels`` float32 ``(H, W)`` (physical units, or label values),
    ``display`` uint8 ``(H, W, 3)`` (labels: the values clipped to 0..255), ``spacing`` mm."""

    pixels: np.ndarray
    display: np.ndarray
    spacing: tuple[float, float] | None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


def load_volume_slices(
    path: str | os.PathLike[str],
    axis: int = 2,
    window: str | Window | None = "auto",
    labels: bool = False,
) -> list[VolumeSlice]:
    """Every slice of a 3D NIfTI volume along canonical ``axis`` (0, 1 or 2).

    ``labels=True`` keeps integer label values (no window, nearest values); otherwise the
    display is windowed with ``window`` (a preset name, ``"auto"`` per volume, or a Window).
    """
    if axis not in (0, 1, 2):
        raise IngestError(f"axis must be 0, 1 or 2, got {axis}")
    try:
        img = nib.as_closest_canonical(nib.load(os.fspath(path)))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise IngestError(
            f"{os.path.basename(os.fspath(path))} is not a readable NIfTI volume: {exc}"
        ) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise IngestError(f"expected a 3D volume, got shape {data.shape}")
    data = np.rint(data) if labels else data.astype(np.float32)
    zooms = [abs(float(z)) for z in img.header.get_zooms()[:3]]
    rows_axis, cols_axis = [a for a in (0, 1, 2) if a != axis][::-1]
    spacing = (zooms[rows_axis], zooms[cols_axis]) if all(zooms) else None
    win = None if labels else resolve_window(window or "auto", data)
    out = []
    for k in range(data.shape[axis]):
        plane = np.ascontiguousarray(np.take(data, k, axis=axis).T[::-1, ::-1], np.float32)
        gray = np.clip(plane, 0, 255).astype(np.uint8) if win is None else apply_window(plane, win)
        out.append(VolumeSlice(plane, gray_to_rgb(gray), spacing))
    return out
