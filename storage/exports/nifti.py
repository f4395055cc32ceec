"""NIfTI export: ``images/CASE.nii.gz`` (pixels in physical units) and
``masks/CASE_STRUCTURE.nii.gz`` (uint8 0/1), indexed by ``manifest.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from storage.exports.cases import Case
from storage.exports.nifti_io import write_slice_nifti
from storage.slices import load_pixels
from storage.store import Store


def safe_name(structure: str) -> str:
    """A structure name usable in a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", structure).strip("-") or "structure"


def write_nifti(store: Store, cases: list[Case], folder: Path) -> int:
    """Write every case; return the number of masks written."""
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    manifest = []
    for case in cases:
        image_path = f"images/{case.name}.nii.gz"
        write_slice_nifti(folder / image_path, load_pixels(store, case.slice), case.slice.spacing)
        for structure, final in sorted(case.masks.items()):
            mask_path = f"masks/{case.name}_{safe_name(structure)}.nii.gz"
            write_slice_nifti(folder / mask_path, final.mask.astype(np.uint8), case.slice.spacing)
            manifest.append(
                {
                    "image": image_path,
                    "mask": mask_path,
                    "structure": structure,
                    "slice_hash": case.slice.content_hash,
                    "modality": case.slice.modality,
                    "units": case.slice.units,
                    "correction_id": final.correction_id,
                }
            )
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return len(manifest)
