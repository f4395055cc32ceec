"""nnU-Net v2 raw dataset: ``imagesTr/CASE_0000.nii.gz``, ``labelsTr/CASE.nii.gz``,
``dataset.json``. Each slice becomes a one-slice volume (nnU-Net's 2-D configuration)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from storage.errors import InvalidInputError
from storage.exports.cases import Case
from storage.exports.nifti_io import write_slice_nifti
from storage.slices import load_pixels
from storage.store import Store


def check_dataset_identity(dataset_id: int, dataset_name: str) -> None:
    """nnU-Net's rules for a dataset id (1..999) and name (an identifier)."""
    if not 1 <= dataset_id <= 999:
        raise InvalidInputError(f"nnU-Net dataset ids run from 1 to 999, got {dataset_id}")
    if not dataset_name.isidentifier():
        raise InvalidInputError(f"dataset name {dataset_name!r} must be letters, digits, _")


def write_dataset_json(
    root: Path, name: str, description: str, modality: str, structures: list[str], count: int
) -> None:
    """nnU-Net's ``dataset.json``: one channel, background 0, structures 1..n in order."""
    dataset = {
        "name": name,
        "description": description,
        "channel_names": {"0": modality},
        "labels": {"background": 0, **{s: i for i, s in enumerate(structures, start=1)}},
        "numTraining": count,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")


def write_nnunet(
    store: Store, cases: list[Case], folder: Path, *, dataset_id: int, dataset_name: str
) -> tuple[Path, int, int, list[str]]:
    """Write the dataset under ``folder``.

    Returns its root, the numbers of slices and masks written, and the skipped cases with why.

    nnU-Net labels are exclusive and complete: a slice is exported only if it has a final mask
    for every structure of the export (a missing structure would be trained as background).
    Overlapping structures are refused for the same reason.
    """
    check_dataset_identity(dataset_id, dataset_name)
    structures = sorted({s for case in cases for s in case.masks})
    modalities = sorted({case.slice.modality for case in cases})
    if len(modalities) > 1:
        raise InvalidInputError(
            f"the final masks are on slices of several modalities {modalities}; nnU-Net needs "
            "one channel meaning per dataset: export one modality at a time"
        )
    root = folder / f"Dataset{dataset_id:03d}_{dataset_name}"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    skipped: list[str] = []
    written = masks_written = 0
    for case in cases:
        missing = [s for s in structures if s not in case.masks]
        if missing:
            skipped.append(f"{case.name}: no final mask for {', '.join(missing)}")
            continue
        label = np.zeros(case.slice.shape, dtype=np.uint8)
        overlap = False
        for value, structure in enumerate(structures, start=1):
            mask = case.masks[structure].mask
            overlap |= bool((label[mask] != 0).any())
            label[mask] = value
        if overlap:
            skipped.append(f"{case.name}: final masks of different structures overlap")
            continue
        pixels = load_pixels(store, case.slice)
        write_slice_nifti(
            root / "imagesTr" / f"{case.name}_0000.nii.gz", pixels, case.slice.spacing
        )
        write_slice_nifti(root / "labelsTr" / f"{case.name}.nii.gz", label, case.slice.spacing)
        written += 1
        masks_written += len(structures)
    if written == 0:
        raise InvalidInputError("no slice has final masks for all structures; nothing to export")
    write_dataset_json(
        root,
        dataset_name,
        "Final masks corrected in ADA-SAM Studio",
        modalities[0],
        structures,
        written,
    )
    return root, written, masks_written, skipped
