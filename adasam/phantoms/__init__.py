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

Command line: ``python -m adasam phantoms --kind thigh-mri --n 200 --seed 0 --out DIR``.
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
from .io import (
    CT_WINDOW,
    MR_PNG_SCALE,
    decode_png,
    encode_png,
    main,
    read_case,
    read_info,
    write_dataset,
)

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
    "decode_png",
    "encode_png",
    "generate",
    "generate_case",
    "main",
    "read_case",
    "read_info",
    "write_dataset",
]
