"""3D input: DICOM series (files, zip), multi-frame DICOM, NIfTI → Volume; geometry; errors."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from adasam.errors import IngestError
from adasam.imaging import load_slice, load_volume
from adasam.phantoms.dicom_out import volume_to_dicom_series

PHI = {
    "PatientName": "Doe^Jane^Q",
    "PatientID": "MRN-884421",
    "PatientBirthDate": "19610412",
    "InstitutionName": "Saint Example Hospital",
    "StudyDescription": "CT ABDOMEN Doe Jane",
    "AccessionNumber": "ACC99123",
}
SPACING = (2.5, 0.8, 0.7)


def _vol(d: int = 6, h: int = 20, w: int = 24) -> np.ndarray:
    rng = np.random.default_rng(1)
    v = rng.integers(-300, 300, (d, h, w)).astype(np.float32)
    v[:, 0, 0] = np.arange(d) * 10  # slice marker
    return v


def _zip(files: list[bytes], names: list[str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for k, data in enumerate(files):
            z.writestr((names or [f"Doe_Jane/IM{k:04d}.dcm" for k in range(len(files))])[k], data)
    return buf.getvalue()


def _series(**kw: object) -> tuple[np.ndarray, list[bytes]]:
    v = _vol()
    return v, volume_to_dicom_series(v, SPACING, "CT", extra=PHI, **kw)  # type: ignore[arg-type]


def _no_phi(text: str) -> None:
    for value in [*PHI.values(), "Doe", "884421", "1961"]:
        assert value not in text


@pytest.mark.parametrize("as_zip", [False, True])
def test_series_is_sorted_by_position_and_deidentified(as_zip: bool) -> None:
    v, files = _series(orientation=(1, 0, 0, 0, 0, -1))  # coronal: normal = -y... sorted anyway
    shuffled = [files[k] for k in (3, 0, 5, 1, 4, 2)]
    vol = load_volume(_zip(shuffled) if as_zip else shuffled)
    assert vol.shape == v.shape and vol.source_format == "dicom-series"
    normal = np.cross([1, 0, 0], [0, 0, -1])
    positions = [pydicom.dcmread(io.BytesIO(f)).ImagePositionPatient for f in files]
    along = [float(np.dot(p, normal)) for p in positions]
    assert along == sorted(along)  # the writer goes along the normal, so order = file order
    np.testing.assert_array_equal(vol.voxels, v)
    assert vol.spacing == pytest.approx(SPACING)
    assert vol.units == "HU" and vol.modality == "CT"
    # affine: (k, row, col) -> RAS of the DICOM position (LPS, x and y negated)
    for k, (r, c) in [(0, (0, 0)), (5, (3, 7))]:
        ds = pydicom.dcmread(io.BytesIO(files[k]))
        iop = np.array(ds.ImageOrientationPatient, float)
        lps = np.array(ds.ImagePositionPatient, float) + r * 0.8 * iop[3:] + c * 0.7 * iop[:3]
        ras = vol.affine @ [k, r, c, 1]
        np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-6)
    text = repr(vol) + repr(vol.metadata) + vol.source_name + repr(vol.slice(2))
    _no_phi(text)
    assert vol.metadata["NumberOfSlices"] == 6 and vol.metadata["Modality"] == "CT"
    ref = vol.reference
    assert ref is not None and len(ref.slices) == 6
    assert ref.slices[0].sop_instance_uid == pydicom.dcmread(io.BytesIO(files[0])).SOPInstanceUID


def test_slice_of_a_volume_matches_the_single_file_path() -> None:
    _, files = _series()
    vol = load_volume(files)
    single = load_slice(files[3], window=None)
    s = vol.slice(3)
    np.testing.assert_array_equal(s.pixels, single.pixels)
    np.testing.assert_array_equal(s.display, single.display)
    assert s.metadata.items() >= {"Modality": "CT"}.items() and s.slice_index == 3
    assert vol.plane(1, 4).shape == (6, 24, 3) and vol.plane(2, 4).shape == (6, 20, 3)


def test_mixed_series_and_multi_series_zip_are_refused() -> None:
    _, a = _series()
    _, b = _series()
    with pytest.raises(IngestError, match="2 different DICOM series"):
        load_volume(a[:3] + b[:2])
    with pytest.raises(IngestError, match=r"2 different DICOM series \(with 6, 6 files\)"):
        load_volume(_zip(a + b))


def test_gap_uneven_duplicate_orientation_are_refused() -> None:
    _, files = _series()
    with pytest.raises(IngestError, match="gap: about 1 slice"):
        load_volume(files[:2] + files[3:])
    with pytest.raises(IngestError, match="twice"):
        load_volume([*files, files[2]])
    ds = pydicom.dcmread(io.BytesIO(files[5]))
    ds.ImagePositionPatient = [-100.0, -100.0, 5 * 2.5 + 0.8]
    buf = io.BytesIO()
    ds.save_as(buf)
    with pytest.raises(IngestError, match="unevenly spaced"):
        load_volume([*files[:5], buf.getvalue()])
    ds.ImagePositionPatient = [-100.0, -100.0, 5 * 2.5]
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    buf = io.BytesIO()
    ds.save_as(buf)
    with pytest.raises(IngestError, match="different orientations"):
        load_volume([*files[:5], buf.getvalue()])
    with pytest.raises(IngestError, match="single slice"):
        load_volume(files[0])
    with pytest.raises(IngestError, match="File 2 of 3 is not a DICOM"):
        load_volume([files[0], b"hello world, not dicom", files[1]])


def test_zip_bombs_and_bad_zips_are_refused() -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.dcm", b"\0" * 20_000_000)
    with pytest.raises(IngestError, match="zip bomb"):
        load_volume(bomb.getvalue())
    _, files = _series()
    with pytest.raises(IngestError, match="unpacks to"):
        load_volume(_zip(files), max_pixels=10)
    nested = _zip([_zip(files)], ["inner.zip"])
    with pytest.raises(IngestError, match="itself an archive"):
        load_volume(nested)
    with pytest.raises(IngestError, match="damaged"):
        load_volume(_zip(files)[:-40])
    with pytest.raises(IngestError, match="zip archive was uploaded together"):
        load_volume([_zip(files), files[0]])


def test_lying_zip_header_cannot_make_it_read_more() -> None:
    data = b"x" * 5000
    raw = bytearray(_zip([data], ["a.dcm"]))
    # shrink the declared size in the central directory (and local header) to 100 bytes
    for sig in (b"PK\x01\x02", b"PK\x03\x04"):
        at = raw.find(sig)
        off = at + (24 if sig == b"PK\x01\x02" else 22)
        raw[off : off + 4] = (100).to_bytes(4, "little")
    with pytest.raises(IngestError, match="damaged|larger than its header"):
        load_volume(bytes(raw))


def _enhanced(frames: int = 4) -> tuple[bytes, np.ndarray]:
    raw = np.arange(frames * 30, dtype=np.int16).reshape(frames, 5, 6)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality, ds.PatientName = "MR", PHI["PatientName"]
    ds.Rows, ds.Columns, ds.NumberOfFrames = 5, 6, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    shared = Dataset()
    measures, orient = Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = [0.9, 0.9], 3.0
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = [measures], [orient]
    ds.SharedFunctionalGroupsSequence = [shared]
    z = [9.0, 0.0, 6.0, 3.0][:frames]  # stored out of order
    groups = []
    for k in range(frames):
        pos, g = Dataset(), Dataset()
        pos.ImagePositionPatient = [0.0, 0.0, z[k]]
        g.PlanePositionSequence = [pos]
        groups.append(g)
    ds.PerFrameFunctionalGroupsSequence = groups
    ds.PixelData = raw.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue(), raw[np.argsort(z)]


def test_multi_frame_is_sorted_by_its_plane_positions() -> None:
    data, expected = _enhanced()
    vol = load_volume(data)
    assert vol.source_format == "dicom-multiframe" and vol.geometry_known
    np.testing.assert_array_equal(vol.voxels, expected.astype(np.float32))
    assert vol.spacing == pytest.approx((3.0, 0.9, 0.9))
    assert [s.frame for s in vol.reference.slices] == [2, 4, 3, 1]  # type: ignore[union-attr]
    _no_phi(repr(vol) + repr(vol.metadata))


def test_nifti_volume_matches_load_slice_and_keeps_the_affine(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(0, 100, (7, 9, 5)).astype(np.float32)
    affine = np.diag([-0.8, 1.2, 2.5, 1.0])
    affine[:3, 3] = [10, -5, 3]
    path = tmp_path / "Doe_Jane.nii.gz"
    img = nib.Nifti1Image(data, affine)
    img.header["descrip"] = b"Doe Jane MRN-884421"
    nib.save(img, path)
    vol = load_volume(path)
    assert vol.shape == (5, 9, 7) and vol.spacing == pytest.approx((2.5, 1.2, 0.8))
    for k in range(5):
        np.testing.assert_array_equal(vol.voxels[k], load_slice(path, slice_index=k, axis=2).pixels)
    # a voxel's world position: the display voxel (k, r, c) is stored voxel (x, y, z)
    canon = nib.as_closest_canonical(nib.load(path))
    for k, r, c in [(0, 0, 0), (4, 8, 6), (2, 3, 1)]:
        i, j = 7 - 1 - c, 9 - 1 - r
        np.testing.assert_allclose(vol.affine @ [k, r, c, 1], canon.affine @ [i, j, k, 1])
        assert vol.voxels[k, r, c] == np.asarray(canon.dataobj)[i, j, k]
    _no_phi(repr(vol) + repr(vol.metadata))
    assert vol.source_name == "NIfTI volume, 5 slices"


def test_2d_images_are_not_volumes(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(IngestError, match="2D image, not a volume"):
        load_volume(tmp_path / "a.png")
    with pytest.raises(IngestError, match="No file"):
        load_volume([])
