"""nnU-Net v2 raw dataset of volume cases, in 3D: ``imagesTr/VOLUME_0000.nii.gz``,
``labelsTr/VOLUME.nii.gz``, ``dataset.json``.

Volume cases that share their slices (one case per structure of one study) become one nnU-Net
case with one label value per structure. A study is exported only when no slice of any of its
cases is still ``"propagated"`` (unchecked masks are not labels) and it has a case for every
structure of the export; slices without a stored mask are background. Images and labels are
written x-first ``(W, H, D)`` with the case's RAS affine, so they lie where the source lay.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from storage.errors import InvalidInputError
from storage.exports.cases import output_folder
from storage.exports.nnunet import check_dataset_identity, write_dataset_json
from storage.slices import get_slice, load_pixels
from storage.store import Store
from storage.volumes import VolumeCaseRecord, label_volume, list_volume_cases


def _save(path: Path, array: NDArray[np.generic], affine: NDArray[np.float64]) -> None:
    xyz = affine[:, [2, 1, 0, 3]]
    image = nib.Nifti1Image(np.ascontiguousarray(array.transpose(2, 1, 0)), xyz)
    image.header.set_xyzt_units(xyz="mm")
    image.set_qform(xyz, code=1)
    image.set_sform(xyz, code=1)
    nib.save(image, str(path))


def _studies(store: Store) -> dict[tuple[str, ...], dict[str, VolumeCaseRecord]]:
    """Cases grouped by their slices; per structure the newest case."""
    studies: dict[tuple[str, ...], dict[str, VolumeCaseRecord]] = defaultdict(dict)
    for case in list_volume_cases(store):
        studies[case.slice_hashes][case.structure] = case
    return dict(studies)


def _study_label(
    store: Store, cases: dict[str, VolumeCaseRecord], structures: list[str]
) -> tuple[NDArray[np.uint8] | None, str]:
    first = cases[structures[0]]
    label = np.zeros(first.shape, dtype=np.uint8)
    for value, structure in enumerate(structures, start=1):
        mask, status = label_volume(store, cases[structure].id)
        unchecked = status.count("propagated")
        if unchecked:
            return None, f"{structure}: {unchecked} slice(s) still propagated, not checked"
        if (label[mask] != 0).any():
            return None, f"{structure} overlaps another structure"
        label[mask] = value
    return label, ""


def export_volumes_nnunet(
    store: Store, out_dir: Path, *, dataset_id: int = 502, dataset_name: str = "AdaSamVolumes"
) -> tuple[Path, int, list[str]]:
    """Write the 3D dataset to ``out_dir/DatasetXXX_NAME`` (``out_dir`` new or empty).

    Returns the dataset root, the number of volumes written and the skipped studies with why.

    Raises:
        InvalidInputError: bad id or name, no volume case, several modalities, or nothing
            exportable.
    """
    check_dataset_identity(dataset_id, dataset_name)
    studies = _studies(store)
    if not studies:
        raise InvalidInputError("there are no volume cases to export")
    structures = sorted({s for cases in studies.values() for s in cases})
    modalities = sorted({c.modality for cases in studies.values() for c in cases.values()})
    if len(modalities) > 1:
        raise InvalidInputError(
            f"the volume cases are of several modalities {modalities}; export one at a time"
        )
    out_dir = Path(out_dir)
    skipped: list[str] = []
    written = 0
    with output_folder(out_dir) as folder:
        root = folder / f"Dataset{dataset_id:03d}_{dataset_name}"
        (root / "imagesTr").mkdir(parents=True)
        (root / "labelsTr").mkdir()
        for number, (hashes, cases) in enumerate(studies.items(), start=1):
            name = f"volume{number:04d}"
            missing = [s for s in structures if s not in cases]
            if missing:
                skipped.append(f"{name}: no volume case for {', '.join(missing)}")
                continue
            label, why = _study_label(store, cases, structures)
            if label is None:
                skipped.append(f"{name}: {why}")
                continue
            pixels = np.stack([load_pixels(store, get_slice(store, h)) for h in hashes])
            affine = cases[structures[0]].affine
            _save(root / "imagesTr" / f"{name}_0000.nii.gz", pixels.astype(np.float32), affine)
            _save(root / "labelsTr" / f"{name}.nii.gz", label, affine)
            written += 1
        if written == 0:
            raise InvalidInputError(
                "no study is ready for nnU-Net: " + "; ".join(skipped or ["nothing stored"])
            )
        write_dataset_json(
            root,
            dataset_name,
            "Volume cases annotated in ADA-SAM Studio (3D)",
            modalities[0],
            structures,
            written,
        )
    return out_dir / root.name, written, skipped
