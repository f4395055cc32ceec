"""Exports of final masks with their slices, each in the form its users' reader expects.

``nnunet`` (nnU-Net v2 raw dataset), ``imagefolder`` (PNG + metadata.jsonl for Hugging Face
datasets), ``nifti`` (NIfTI volumes + manifest), ``coco`` (COCO JSON with RLE masks).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from storage.errors import InvalidInputError
from storage.exports.cases import collect_cases, output_folder
from storage.exports.coco import write_coco
from storage.exports.imagefolder import write_imagefolder
from storage.exports.nifti import write_nifti
from storage.exports.nnunet import write_nnunet
from storage.store import Store

FORMATS = ("nnunet", "imagefolder", "nifti", "coco")


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    format: str
    root: Path
    slices: int
    masks: int
    skipped: tuple[str, ...]


def export_dataset(
    store: Store,
    fmt: str,
    out_dir: Path,
    *,
    structures: Collection[str] | None = None,
    modality: str | None = None,
    dataset_id: int = 501,
    dataset_name: str = "AdaSamStudio",
) -> ExportSummary:
    """Export the newest final mask of each (slice, structure) to ``out_dir`` in ``fmt``.

    ``out_dir`` must be new or empty; it appears only once the export is complete. For
    ``nnunet`` the dataset is ``out_dir/DatasetXXX_NAME``.
    """
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown export format {fmt!r}; choose one of {FORMATS}")
    cases = collect_cases(store, structures=structures, modality=modality)
    if not cases:
        raise InvalidInputError("there are no final masks to export (no corrections yet)")
    out_dir = Path(out_dir)
    skipped: list[str] = []
    slices = len(cases)
    with output_folder(out_dir) as folder:
        root = out_dir
        if fmt == "nnunet":
            dataset_root, slices, masks, skipped = write_nnunet(
                store, cases, folder, dataset_id=dataset_id, dataset_name=dataset_name
            )
            root = out_dir / dataset_root.relative_to(folder)
        elif fmt == "imagefolder":
            masks = write_imagefolder(store, cases, folder)
        elif fmt == "nifti":
            masks = write_nifti(store, cases, folder)
        else:
            masks, skipped = write_coco(store, cases, folder)
    return ExportSummary(format=fmt, root=root, slices=slices, masks=masks, skipped=tuple(skipped))
