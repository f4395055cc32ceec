"""Exports, each read back with the reader its users have (nnU-Net, datasets, nibabel,
pycocotools)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import storage
from storage.errors import InvalidInputError
from storage.exports import export_dataset
from storage.store import Store


@pytest.fixture
def corrected_slices(sqlite_store: Store, sqlite_samples):
    """Two slices with VL and VM final masks, one slice with VL only, one empty VL mask."""
    finals = {}
    slices = [sqlite_samples.slice((40, 52)) for _ in range(3)]
    for index, s in enumerate(slices):
        h, w = s.shape
        structures = ("VL", "VM") if index < 2 else ("VL",)
        for k, structure in enumerate(structures):
            final = np.zeros((h, w), bool)
            final[5 + index : 15 + index, 4 + 20 * k : 16 + 20 * k] = True
            p = sqlite_samples.prediction(s, structure=structure)
            sqlite_samples.correction(p, final=final)
            finals[(s.content_hash, structure)] = final
    extra = sqlite_samples.slice((40, 52))
    empty = np.zeros((40, 52), bool)
    sqlite_samples.correction(sqlite_samples.prediction(extra, structure="VM"), final=empty)
    finals[(extra.content_hash, "VM")] = empty
    return [*slices, extra], finals


def test_nnunet_export_passes_nnunets_own_checks(
    sqlite_store: Store, corrected_slices, tmp_path: Path
) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    slices, finals = corrected_slices
    summary = export_dataset(
        sqlite_store, "nnunet", tmp_path / "raw", dataset_id=42, dataset_name="Thigh"
    )
    assert summary.root == tmp_path / "raw" / "Dataset042_Thigh"
    assert summary.slices == 2 and summary.masks == 4
    assert len(summary.skipped) == 2 and all("no final mask for" in s for s in summary.skipped)
    verify_dataset_integrity(str(summary.root), num_processes=1)
    dataset = json.loads((summary.root / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "VL": 1, "VM": 2}
    assert dataset["channel_names"] == {"0": "MR"}
    io = SimpleITKIO()
    for s in slices[:2]:
        name = f"s{s.id:06d}_{s.content_hash[:8]}"
        image, props = io.read_images([str(summary.root / "imagesTr" / f"{name}_0000.nii.gz")])
        label, _ = io.read_seg(str(summary.root / "labelsTr" / f"{name}.nii.gz"))
        np.testing.assert_allclose(image[0, 0], storage.load_pixels(sqlite_store, s))
        expected = finals[(s.content_hash, "VL")] * 1 + finals[(s.content_hash, "VM")] * 2
        np.testing.assert_array_equal(label[0, 0], expected)
        assert tuple(props["spacing"])[1:] == pytest.approx((0.8, 0.7))  # (z, row, col)


def test_imagefolder_export_loads_with_hugging_face_datasets(
    sqlite_store: Store, corrected_slices, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    import datasets

    _, finals = corrected_slices
    summary = export_dataset(sqlite_store, "imagefolder", tmp_path / "hf")
    assert summary.masks == len(finals) == 6
    loaded = datasets.load_dataset(
        "imagefolder",
        data_dir=str(tmp_path / "hf"),
        split="train",
        cache_dir=str(tmp_path / "hf-cache"),
    )
    assert len(loaded) == 6
    assert {"image", "mask", "structure", "slice_hash", "correction_id"} <= set(loaded.features)
    for row in loaded:
        mask = np.asarray(row["mask"])
        np.testing.assert_array_equal(mask == 1, finals[(row["slice_hash"], row["structure"])])
        assert np.asarray(row["image"]).shape == (40, 52, 3)


def test_nifti_export_reads_back_with_nibabel(
    sqlite_store: Store, corrected_slices, tmp_path: Path
) -> None:
    slices, finals = corrected_slices
    summary = export_dataset(sqlite_store, "nifti", tmp_path / "nii")
    manifest = json.loads((tmp_path / "nii" / "manifest.json").read_text())
    assert summary.masks == len(manifest) == 6
    by_hash = {s.content_hash: s for s in slices}
    for entry in manifest:
        image = nib.load(tmp_path / "nii" / entry["image"])
        mask = nib.load(tmp_path / "nii" / entry["mask"])
        pixels = storage.load_pixels(sqlite_store, by_hash[entry["slice_hash"]])
        np.testing.assert_allclose(image.get_fdata()[:, :, 0].T, pixels, rtol=1e-6)
        np.testing.assert_array_equal(
            np.asarray(mask.dataobj)[:, :, 0].T.astype(bool),
            finals[(entry["slice_hash"], entry["structure"])],
        )
        assert image.header.get_zooms() == pytest.approx((0.7, 0.8, 1.0))  # (x=col, y=row, z)


def test_coco_export_reads_back_with_pycocotools(
    sqlite_store: Store, corrected_slices, tmp_path: Path
) -> None:
    from PIL import Image
    from pycocotools.coco import COCO

    slices, finals = corrected_slices
    summary = export_dataset(sqlite_store, "coco", tmp_path / "coco")
    assert summary.masks == 5 and summary.skipped == (
        f"s{slices[3].id:06d}_{slices[3].content_hash[:8]}: final mask of VM is empty",
    )
    coco = COCO(str(tmp_path / "coco" / "annotations.json"))
    categories = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert sorted(categories.values()) == ["VL", "VM"]
    annotations = coco.loadAnns(coco.getAnnIds())
    assert len(annotations) == 5
    for annotation in annotations:
        image = coco.loadImgs(annotation["image_id"])[0]
        expected = finals[(image["slice_hash"], categories[annotation["category_id"]])]
        np.testing.assert_array_equal(coco.annToMask(annotation).astype(bool), expected)
        assert annotation["area"] == int(expected.sum())
        with Image.open(tmp_path / "coco" / "images" / image["file_name"]) as picture:
            assert picture.size == (image["width"], image["height"])


def test_exports_never_overwrite_and_need_masks(
    sqlite_store: Store, sqlite_samples, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match="no final masks"):
        export_dataset(sqlite_store, "coco", tmp_path / "empty")
    s = sqlite_samples.slice()
    sqlite_samples.correction(sqlite_samples.prediction(s))
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("precious")
    with pytest.raises(InvalidInputError, match="not an empty folder"):
        export_dataset(sqlite_store, "nifti", occupied)
    assert [p.name for p in occupied.iterdir()] == ["keep.txt"]
    with pytest.raises(InvalidInputError, match="unknown export format"):
        export_dataset(sqlite_store, "dicom-seg", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_nnunet_refuses_mixed_modalities(sqlite_store: Store, sqlite_samples, tmp_path) -> None:
    for modality in ("CT", "MR"):
        s = sqlite_samples.slice(modality=modality)
        sqlite_samples.correction(sqlite_samples.prediction(s))
    with pytest.raises(InvalidInputError, match="one modality at a time"):
        export_dataset(sqlite_store, "nnunet", tmp_path / "mixed")
    assert not (tmp_path / "mixed").exists()
    summary = export_dataset(sqlite_store, "nnunet", tmp_path / "ct", modality="CT")
    assert summary.slices == 1
