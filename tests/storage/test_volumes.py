"""Volume cases: slice statuses, the training feed takes human slices only, 3D nnU-Net export."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import storage
from storage.errors import InvalidInputError
from storage.exports.nnunet3d import export_volumes_nnunet
from storage.store import Store

D, H, W = 5, 24, 30
AFFINE = np.array([[0, 0, -0.7, 10], [0, -0.8, 0, 20], [2.5, 0, 0, -30], [0, 0, 0, 1.0]])


def _masks() -> np.ndarray:
    m = np.zeros((D, H, W), bool)
    for k in range(D):
        m[k, 5 + k : 15 + k, 6:20] = True
    return m


def _case(store: Store, samples, structure: str = "VL", slices=None):
    slices = slices or [samples.slice((H, W)) for _ in range(D)]
    storage.ensure_annotator(store, "ann")
    case = storage.record_volume_case(
        store,
        structure=structure,
        modality="MR",
        source_format="dicom-series",
        shape=(D, H, W),
        spacing=(2.5, 0.8, 0.7),
        affine=AFFINE,
        slice_hashes=[s.content_hash for s in slices],
        annotator="ann",
    )
    return case, slices


def test_statuses_are_stored_and_the_feed_takes_only_human_slices(store: Store, samples) -> None:
    case, slices = _case(store, samples)
    m = _masks()
    for k in (0, 1, 3):
        storage.record_volume_slice(
            store, volume_case_id=case.id, slice_index=k, status="propagated", mask=m[k], score=0.8
        )
    storage.record_volume_slice(
        store, volume_case_id=case.id, slice_index=2, status="accepted", mask=m[2], annotator="ann"
    )
    fixed = m[4].copy()
    fixed[:, :8] = False
    storage.record_volume_slice(
        store,
        volume_case_id=case.id,
        slice_index=4,
        status="corrected",
        mask=fixed,
        original=m[4],
        annotator="ann",
        seconds=12.0,
    )
    records = storage.volume_slices(store, case.id)
    assert [(r.slice_index, r.status) for r in records] == [
        (0, "propagated"),
        (1, "propagated"),
        (2, "accepted"),
        (3, "propagated"),
        (4, "corrected"),
    ]
    assert records[0].score == pytest.approx(0.8) and records[2].correction_id is not None
    np.testing.assert_array_equal(records[4].mask, fixed)
    examples = storage.training_examples_since(store, None)
    assert sorted(e.slice_hash for e in examples) == sorted(
        [slices[2].content_hash, slices[4].content_hash]
    )
    by_hash = {e.slice_hash: e for e in examples}
    np.testing.assert_array_equal(by_hash[slices[4].content_hash].mask, fixed)
    assert all(e.structure == "VL" for e in examples)
    # a human slice is never replaced by a propagated mask; a later human edit is
    with pytest.raises(InvalidInputError, match="by a human"):
        storage.record_volume_slice(
            store, volume_case_id=case.id, slice_index=2, status="propagated", mask=m[1]
        )
    storage.record_volume_slice(
        store, volume_case_id=case.id, slice_index=1, status="accepted", mask=m[1], annotator="ann"
    )
    labels, status = storage.label_volume(store, case.id)
    np.testing.assert_array_equal(labels[1], m[1])
    assert status == ["propagated", "accepted", "accepted", "propagated", "corrected"]
    assert len(storage.training_examples_since(store, None)) == 3
    np.testing.assert_array_equal(storage.get_volume_case(store, case.id).affine, AFFINE)


def test_bad_input_is_refused_and_loses_nothing(store: Store, samples) -> None:
    case, _ = _case(store, samples)
    m = _masks()
    with pytest.raises(InvalidInputError, match="status"):
        storage.record_volume_slice(
            store, volume_case_id=case.id, slice_index=0, status="maybe", mask=m[0]
        )
    with pytest.raises(InvalidInputError, match="outside"):
        storage.record_volume_slice(
            store, volume_case_id=case.id, slice_index=D, status="propagated", mask=m[0]
        )
    with pytest.raises(InvalidInputError, match="annotator"):
        storage.record_volume_slice(
            store, volume_case_id=case.id, slice_index=0, status="accepted", mask=m[0]
        )
    with pytest.raises(InvalidInputError, match="shape"):
        storage.record_volume_slice(
            store, volume_case_id=case.id, slice_index=0, status="propagated", mask=m[0][:5]
        )
    other = samples.slice((10, 10))
    with pytest.raises(InvalidInputError, match="10×10"):
        storage.record_volume_case(
            store,
            structure="VL",
            modality="MR",
            source_format="nifti",
            shape=(1, H, W),
            spacing=(1, 1, 1),
            affine=np.eye(4),
            slice_hashes=[other.content_hash],
        )
    with pytest.raises(InvalidInputError, match="2 slice hashes"):
        storage.record_volume_case(
            store,
            structure="VL",
            modality="MR",
            source_format="nifti",
            shape=(1, 10, 10),
            spacing=(1, 1, 1),
            affine=np.eye(4),
            slice_hashes=[other.content_hash] * 2,
        )
    assert storage.volume_slices(store, case.id) == []
    assert [c.id for c in storage.list_volume_cases(store)] == [case.id]


def test_nnunet_3d_export_reads_back(sqlite_store: Store, sqlite_samples, tmp_path: Path) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    m = _masks()
    vl, slices = _case(sqlite_store, sqlite_samples, "VL")
    vm, _ = _case(sqlite_store, sqlite_samples, "VM", slices)
    vm_mask = np.zeros_like(m)
    vm_mask[1:4, 18:22, 22:28] = True
    for k in range(D):
        for case, mask in ((vl, m), (vm, vm_mask)):
            storage.record_volume_slice(
                sqlite_store,
                volume_case_id=case.id,
                slice_index=k,
                status="accepted",
                mask=mask[k],
                annotator="ann",
            )
    pending, others = _case(sqlite_store, sqlite_samples, "VL")  # a study still propagated
    _case(sqlite_store, sqlite_samples, "VM", others)
    storage.record_volume_slice(
        sqlite_store, volume_case_id=pending.id, slice_index=0, status="propagated", mask=m[0]
    )
    _case(sqlite_store, sqlite_samples, "VL")  # a study without VM
    root, written, skipped = export_volumes_nnunet(sqlite_store, tmp_path / "raw", dataset_id=7)
    assert written == 1 and len(skipped) == 2
    assert "VL: 1 slice(s) still propagated" in skipped[0]
    assert "no volume case for VM" in skipped[1]
    verify_dataset_integrity(str(root), num_processes=1)
    assert json.loads((root / "dataset.json").read_text())["labels"] == {
        "background": 0,
        "VL": 1,
        "VM": 2,
    }
    label = nib.load(root / "labelsTr" / "volume0001.nii.gz")
    np.testing.assert_array_equal(np.asarray(label.dataobj).transpose(2, 1, 0), m * 1 + vm_mask * 2)
    image = nib.load(root / "imagesTr" / "volume0001_0000.nii.gz")
    pixels = np.stack([storage.load_pixels(sqlite_store, s) for s in slices])
    np.testing.assert_allclose(np.asarray(image.dataobj).transpose(2, 1, 0), pixels)
    np.testing.assert_allclose(image.affine @ [3, 2, 1, 1], AFFINE @ [1, 2, 3, 1])
    with pytest.raises(InvalidInputError, match="not an empty folder"):
        export_volumes_nnunet(sqlite_store, tmp_path / "raw")
