"""Procedural phantoms for tests, training and the demo model.

Two kinds, each a stream of 2D slices grouped in subjects (volumes):

- ``"thigh-mri"``: axial T1-weighted thigh MRI (quadriceps: vastus lateralis / medialis
  targets), signal in arbitrary units;
- ``"liver-ct"``: axial abdominal CT in Hounsfield units (liver target).

The label map of a case is defined first and the image is rendered from it, so masks are exact
by construction. Usage::

    from adasam.phantoms import generate, write_dataset
    for case in generate("thigh-mri", n=16, seed=7):
        case.image, case.label, case.present
    write_dataset("liver-ct", 200, seed=0, out=Path("out/liver"))

Coherent 3D volumes (structures change smoothly and appear/disappear along z)::

    from adasam.phantoms import generate_volume
    vol = generate_volume("thigh-mri", seed=7, index=0, depth=32)  # vol.image (D, H, W)

Command line: ``python -m adasam phantoms --kind thigh-mri --n 200 --seed 0 --out DIR``;
volumes: ``... --volumes --n 4 --depth 32 [--dicom] --out DIR``.
"""

from __future__ import annotations

from ._core import (
    GENERATOR,
    KINDS,
    MODALITY,
    SLICES_PER_SUBJECT,
    STRUCTURES,
    TARGETS,
    PhantomCase,
    PhantomDebug,
)
from .cases import generate, generate_case
from .dicom_out import volume_to_dicom_series
from .io import (
    CT_WINDOW,
    MR_PNG_SCALE,
    decode_png,
    encode_png,
    read_case,
    read_info,
    write_dataset,
)
from .volumes import PhantomVolume, generate_volume, write_volume

__all__ = [
    "CT_WINDOW",
    "GENERATOR",
    "KINDS",
    "MODALITY",
    "MR_PNG_SCALE",
    "SLICES_PER_SUBJECT",
    "STRUCTURES",
    "TARGETS",
    "PhantomCase",
    "PhantomDebug",
    "PhantomVolume",
    "decode_png",
    "encode_png",
    "generate",
    "generate_case",
    "generate_volume",
    "read_case",
    "read_info",
    "volume_to_dicom_series",
    "write_dataset",
    "write_volume",
]
