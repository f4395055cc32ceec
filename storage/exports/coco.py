"""COCO JSON with RLE masks: ``images/CASE.png`` and ``annotations.json``.

Images are the windowed display images; each non-empty final mask is one annotation with a
compressed RLE ``segmentation`` (``iscrowd`` 0), its area and box. An empty final mask (the
structure is absent) has no COCO annotation: in COCO, absence is the lack of an annotation.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from storage.exports.cases import Case
from storage.rle import bbox, encode_rle
from storage.slices import load_display
from storage.store import Store


def write_coco(store: Store, cases: list[Case], folder: Path) -> tuple[int, list[str]]:
    """Write every case; return the number of annotations and the skipped empty masks."""
    (folder / "images").mkdir()
    structures = sorted({s for case in cases for s in case.masks})
    category_ids = {s: i for i, s in enumerate(structures, start=1)}
    images, annotations, skipped = [], [], []
    for case in cases:
        file_name = f"{case.name}.png"
        Image.fromarray(load_display(store, case.slice)).save(folder / "images" / file_name)
        height, width = case.slice.shape
        images.append(
            {
                "id": case.slice.id,
                "file_name": file_name,
                "height": height,
                "width": width,
                "slice_hash": case.slice.content_hash,
                "modality": case.slice.modality,
            }
        )
        for structure, final in sorted(case.masks.items()):
            area = int(final.mask.sum())
            if area == 0:
                skipped.append(f"{case.name}: final mask of {structure} is empty")
                continue
            annotations.append(
                {
                    "id": final.correction_id,
                    "image_id": case.slice.id,
                    "category_id": category_ids[structure],
                    "segmentation": encode_rle(final.mask),
                    "area": area,
                    "bbox": bbox(final.mask),
                    "iscrowd": 0,
                }
            )
    document = {
        "info": {"description": "Final masks corrected in ADA-SAM Studio", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i, "name": s, "supercategory": "anatomy"} for s, i in category_ids.items()
        ],
    }
    (folder / "annotations.json").write_text(json.dumps(document) + "\n")
    return len(annotations), skipped
