"""PNG + ``metadata.jsonl``: a Hugging Face ``imagefolder`` dataset.

``images/CASE.png`` is the windowed display image, ``masks/CASE_STRUCTURE.png`` the final mask
as class indices (0 background, 1 structure, 8-bit grey). Each line of ``metadata.jsonl`` is
one mask; ``file_name`` and ``mask_file_name`` become the ``image`` and ``mask`` columns of
``datasets.load_dataset("imagefolder", data_dir=...)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from storage.exports.cases import Case
from storage.exports.nifti import safe_name
from storage.slices import load_display
from storage.store import Store


def write_imagefolder(store: Store, cases: list[Case], folder: Path) -> int:
    """Write every case; return the number of rows."""
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    lines = []
    for case in cases:
        image_path = f"images/{case.name}.png"
        Image.fromarray(load_display(store, case.slice)).save(folder / image_path)
        for structure, final in sorted(case.masks.items()):
            mask_path = f"masks/{case.name}_{safe_name(structure)}.png"
            Image.fromarray(final.mask.astype(np.uint8), mode="L").save(folder / mask_path)
            row_spacing, col_spacing = case.slice.spacing or (None, None)
            lines.append(
                {
                    "file_name": image_path,
                    "mask_file_name": mask_path,
                    "structure": structure,
                    "slice_hash": case.slice.content_hash,
                    "modality": case.slice.modality,
                    "spacing_row_mm": row_spacing,
                    "spacing_col_mm": col_spacing,
                    "correction_id": final.correction_id,
                    "dice_original_to_final": final.dice_original_to_final,
                }
            )
    with (folder / "metadata.jsonl").open("w") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")
    return len(lines)
