"""Coherent 3D phantoms: one subject rendered at evenly spaced z, with one pose for the volume.

The 2D stream (:func:`adasam.phantoms.generate`) jitters the pose, the warp and z for every
slice, which is right for training on slices but makes neighbouring slices unrelated. A
:class:`PhantomVolume` keeps everything that is anatomy fixed along the volume (subject, pose,
elastic warp, vessel positions) and draws only the noise per slice, so structures change
smoothly from slice to slice and appear or disappear where the anatomy says (thigh: vastus
medialis appears near z = 0.32, vastus lateralis ends near z = 0.93; CT: the liver from its dome
to the tip of the right lobe).

Volumes use their own random streams (``rng_for(kind, seed, VOLUME_STREAM + index, ...)``), so
volume ``index`` of seed ``s`` shares nothing with the 2D cases of seed ``s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np

from . import abdomen, thigh
from ._core import MODALITY, STRUCTURES, Canvas, Frame, check_kind, render, rng_for

VOLUME_STREAM = 1_000_000
"""Offset of the volumes' subject numbers in the random streams (no overlap with 2D cases)."""

#: default z range of a volume: thigh from the upper thigh into the knee (VM appears, VL ends),
#: CT from the lung bases past the tip of the liver.
Z_RANGES: dict[str, tuple[float, float]] = {"thigh-mri": (0.2, 1.02), "liver-ct": (-0.08, 0.78)}
#: length in mm of one unit of z (thigh about 400 mm hip to knee, abdomen about 300 mm).
Z_MM: dict[str, float] = {"thigh-mri": 400.0, "liver-ct": 300.0}


@dataclass(frozen=True, eq=False)
class PhantomVolume:
    """One coherent phantom volume.

    Attributes:
        volume_id: ``"<kind>_s<seed>_vol<index:03d>"``.
        kind: ``"thigh-mri"`` or ``"liver-ct"``.
        image: float32 ``(D, H, W)``, MR a.u. or CT HU (as :class:`~adasam.phantoms.PhantomCase`).
        label: uint8 ``(D, H, W)`` label map (values of ``STRUCTURES[kind]``).
        spacing: ``(slice, row, col)`` mm.
        z: float64 ``(D,)`` anatomical position of each slice (the kind's z convention).
        modality: ``"MR"`` or ``"CT"``.
    """

    volume_id: str
    kind: str
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]
    z: np.ndarray
    modality: str

    def mask(self, structure: str) -> np.ndarray:
        """bool ``(D, H, W)`` mask of one structure."""
        return self.label == STRUCTURES[self.kind][structure]

    @property
    def affine(self) -> np.ndarray:
        """float64 ``(4, 4)`` RAS affine of index ``(k, row, col)``, origin at voxel 0: rows go
        anterior→posterior, columns the patient's right→left (radiological), slices head→feet
        (z grows caudally in both kinds)."""
        dz, dy, dx = self.spacing
        return np.array(
            [[0, 0, -dx, 0], [0, -dy, 0, 0], [-dz, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64
        )


def _slice(kind: str, subj: object, z: float, size: int, streams: tuple[int, ...]) -> tuple:
    seed, vol, k = streams
    pose_rng = rng_for(kind, seed, VOLUME_STREAM + vol, 0)  # same pose and warp every slice
    paint_rng = rng_for(kind, seed, VOLUME_STREAM + vol, 1)
    noise_rng = rng_for(kind, seed, VOLUME_STREAM + vol, 2 + k)
    if kind == "thigh-mri":
        spacing = subj.fov / size  # type: ignore[attr-defined]
        frame = Frame(size, spacing, subj.angle, subj.shift, subj.mirror, pose_rng, warp_mm=2.2)  # type: ignore[attr-defined]
        canvas = Canvas(frame, STRUCTURES[kind], air=0.0)
        thigh._paint_thigh(canvas, subj, z, paint_rng)  # type: ignore[arg-type]
        args = (subj.blur, subj.noise, subj.bias_amp)  # type: ignore[attr-defined]
    else:
        spacing = subj.fov / size  # type: ignore[attr-defined]
        frame = Frame(size, spacing, subj.angle, subj.shift, 1.0, pose_rng, warp_mm=3.0)  # type: ignore[attr-defined]
        canvas = Canvas(frame, STRUCTURES[kind], air=-1000.0)
        abdomen._paint_abdomen(canvas, subj, z, paint_rng)  # type: ignore[arg-type]
        args = (subj.blur, subj.noise)  # type: ignore[attr-defined]
    image, label, _ = render(canvas, MODALITY[kind], noise_rng, *args)
    return image, label, spacing


def generate_volume(
    kind: str,
    seed: int,
    index: int,
    *,
    depth: int = 32,
    size: int = 256,
    z_range: tuple[float, float] | None = None,
) -> PhantomVolume:
    """Volume ``index`` of the stream ``(kind, seed)``: ``depth`` slices evenly spaced over
    ``z_range`` (default :data:`Z_RANGES`), each ``(size, size)``.

    Raises:
        ValueError: unknown kind, negative seed/index, depth < 2, size outside 64..2048, or an
            empty z range.
    """
    check_kind(kind)
    if int(seed) < 0 or int(index) < 0:
        raise ValueError(f"seed and index must be >= 0, got {seed}, {index}")
    if int(depth) < 2:
        raise ValueError(f"depth must be at least 2 slices, got {depth}")
    if not 64 <= int(size) <= 2048:
        raise ValueError(f"size must be between 64 and 2048 pixels, got {size}")
    z0, z1 = z_range or Z_RANGES[kind]
    if not z1 > z0:
        raise ValueError(f"z_range must be increasing, got {(z0, z1)}")
    module = thigh if kind == "thigh-mri" else abdomen
    subj = module._subject(rng_for(kind, seed, VOLUME_STREAM + index))
    zs = np.linspace(z0, z1, int(depth))
    images, labels = [], []
    spacing = 1.0
    for k, z in enumerate(zs):
        streams = (int(seed), int(index), k)
        image, label, spacing = _slice(kind, subj, float(z), int(size), streams)
        images.append(image)
        labels.append(label)
    dz = float((z1 - z0) / (depth - 1) * Z_MM[kind])
    return PhantomVolume(
        volume_id=f"{kind}_s{seed}_vol{index:03d}",
        kind=kind,
        image=np.stack(images).astype(np.float32),
        label=np.stack(labels).astype(np.uint8),
        spacing=(round(dz, 4), spacing, spacing),
        z=zs,
        modality=MODALITY[kind],
    )


def write_volume(vol: PhantomVolume, out_dir: str, *, dicom: bool = False) -> list[str]:
    """Write ``<id>.nii.gz`` (image) and ``<id>_label.nii.gz`` into ``out_dir``, and with
    ``dicom`` a folder ``<id>_dicom/`` of one DICOM file per slice. Returns the paths."""
    from pathlib import Path

    from .dicom_out import volume_to_dicom_series

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # NIfTI stores (x, y, z): the display volume (k, row, col) is transposed to (col, row, k)
    to_xyz = (2, 1, 0)
    affine = vol.affine[:, [2, 1, 0, 3]]
    paths = [out / f"{vol.volume_id}.nii.gz", out / f"{vol.volume_id}_label.nii.gz"]
    nib.save(nib.Nifti1Image(vol.image.transpose(to_xyz), affine), paths[0])
    nib.save(nib.Nifti1Image(vol.label.transpose(to_xyz), affine), paths[1])
    written = [str(p) for p in paths]
    if dicom:
        folder = out / f"{vol.volume_id}_dicom"
        folder.mkdir(exist_ok=True)
        # slice 0 is the most cranial (z grows caudally): DICOM slices go inferior→superior
        series = volume_to_dicom_series(vol.image[::-1], vol.spacing, vol.modality)
        for k, data in enumerate(series):
            path = folder / f"slice_{k:04d}.dcm"
            path.write_bytes(data)
            written.append(str(path))
    return written
