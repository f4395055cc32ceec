"""Label volumes out: NIfTI in the source's space, DICOM-SEG read back with highdicom."""

from __future__ import annotations

import io
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from adasam.imaging import load_volume
from adasam.imaging.export3d import ExportError, label_array, write_dicom_seg, write_nifti_labels
from adasam.phantoms import generate_volume, volume_to_dicom_series

PHI = {"PatientName": "Doe^Jane", "PatientID": "MRN-884421", "InstitutionName": "St Example"}


@pytest.fixture(scope="module")
def series() -> tuple[list[bytes], np.ndarray]:
    vol = generate_volume("thigh-mri", 31, 0, depth=6, size=64)
    files = volume_to_dicom_series(
        vol.image, vol.spacing, "MR", extra=PHI, orientation=(0, 1, 0, 0, 0, -1)
    )
    return files, vol.label


def test_dicom_seg_references_the_series_and_reads_back_slice_by_slice(
    series: tuple[list[bytes], np.ndarray], tmp_path: Path
) -> None:
    files, phantom_labels = series
    volume = load_volume(files)
    vl = phantom_labels == 4
    vm = phantom_labels == 5
    # the series was written in phantom order along its normal: same slice order here
    labels = label_array(
        {"vastus_lateralis": vl, "vastus_medialis": vm}, ["vastus_lateralis", "vastus_medialis"]
    )
    path = tmp_path / "seg.dcm"
    write_dicom_seg(path, labels, volume, ["vastus_lateralis", "vastus_medialis"])
    raw = path.read_bytes()
    for value in ("Doe", "884421", "Example"):
        assert value.encode() not in raw
    seg = hd.seg.segread(path)
    sources = [pydicom.dcmread(io.BytesIO(f)) for f in files]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert [d.segment_label for d in seg.SegmentSequence] == ["vastus_lateralis", "vastus_medialis"]
    for k, src in enumerate(sources):
        px = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[src.SOPInstanceUID], segment_numbers=[1, 2]
        )[0]
        np.testing.assert_array_equal(px[..., 0].astype(bool), vl[k])
        np.testing.assert_array_equal(px[..., 1].astype(bool), vm[k])


def test_nifti_labels_lie_where_the_source_lies(
    series: tuple[list[bytes], np.ndarray], tmp_path: Path
) -> None:
    files, phantom_labels = series
    volume = load_volume(files)
    path = tmp_path / "labels.nii.gz"
    write_nifti_labels(path, phantom_labels, volume)
    img = nib.load(path)
    data = np.asarray(img.dataobj)
    np.testing.assert_array_equal(data.transpose(2, 1, 0), phantom_labels)
    for k, r, c in [(0, 0, 0), (5, 40, 17)]:
        ds = pydicom.dcmread(io.BytesIO(files[k]))
        iop = np.array(ds.ImageOrientationPatient, float)
        sp = [float(v) for v in ds.PixelSpacing]
        lps = np.array(ds.ImagePositionPatient, float) + r * sp[0] * iop[3:] + c * sp[1] * iop[:3]
        np.testing.assert_allclose((img.affine @ [c, r, k, 1])[:3], lps * [-1, -1, 1], atol=1e-4)


def test_bad_exports_are_refused(series: tuple[list[bytes], np.ndarray], tmp_path: Path) -> None:
    files, labels = series
    volume = load_volume(files)
    a = labels == 4
    with pytest.raises(ExportError, match="overlaps"):
        label_array({"a": a, "b": a}, ["a", "b"])
    with pytest.raises(ExportError, match="do not match"):
        write_nifti_labels(tmp_path / "x.nii.gz", labels[:3], volume)
    with pytest.raises(ExportError, match="values above 1"):
        write_dicom_seg(tmp_path / "x.dcm", labels, volume, ["one"])
    nii = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 3), np.float32), np.eye(4)), nii)
    with pytest.raises(ExportError, match="Export it as NIfTI"):
        write_dicom_seg(tmp_path / "x.dcm", np.zeros((3, 8, 8), np.uint8), load_volume(nii), ["a"])
