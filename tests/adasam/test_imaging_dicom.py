"""DICOM ingestion on pydicom's bundled files and on datasets built here; de-identification."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, generate_uid

from adasam.errors import IngestError
from adasam.imaging import WINDOW_PRESETS, Window, apply_window, load_slice, rewindow, volume_depth

DATA = Path(pydicom.__file__).parent / "data" / "test_files"


def _file(name: str) -> Path:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"{name} is not bundled with this pydicom")
    return path


def _bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _grey(display: np.ndarray) -> np.ndarray:
    assert display.shape[2] == 3
    np.testing.assert_array_equal(display[:, :, 0], display[:, :, 1])
    np.testing.assert_array_equal(display[:, :, 0], display[:, :, 2])
    return display[:, :, 0]


def _enhanced_ct(frames: int = 3, rows: int = 4, cols: int = 5) -> tuple[Dataset, np.ndarray]:
    """A small enhanced multi-frame CT with per-frame rescale and shared spacing/window."""
    raw = (np.arange(frames * rows * cols, dtype=np.int16).reshape(frames, rows, cols) * 7) - 50
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    measures = Dataset()
    measures.PixelSpacing = [0.5, 0.7]
    measures.SliceThickness = 1.25
    voi = Dataset()
    voi.WindowCenter = 50
    voi.WindowWidth = 350
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    shared.FrameVOILUTSequence = [voi]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for k in range(frames):
        transform = Dataset()
        transform.RescaleSlope = k + 1
        transform.RescaleIntercept = -1000 + 10 * k
        transform.RescaleType = "HU"
        group = Dataset()
        group.PixelValueTransformationSequence = [transform]
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = raw.tobytes()
    return ds, raw


def test_ct_small_is_in_hounsfield_units_like_pydicom() -> None:
    path = _file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    expected = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    s = load_slice(path)
    assert (s.modality, s.units, s.source_format) == ("CT", "HU", "dicom")
    np.testing.assert_array_equal(s.pixels, expected)
    assert float(ds.RescaleIntercept) == -1024.0
    np.testing.assert_array_equal(s.pixels, ds.pixel_array.astype(np.float32) - 1024.0)
    assert s.spacing == (0.661468, 0.661468)
    assert s.metadata["PixelSpacing"] == "0.661468\\0.661468"
    assert s.metadata["RescaleIntercept"] == -1024.0
    # no window in the file: the abdomen (liver) window
    assert s.window is WINDOW_PRESETS["ct-abdomen"]
    np.testing.assert_array_equal(_grey(s.display), apply_window(expected, Window(40, 400)))
    assert (s.slice_index, s.axis, s.num_slices) == (None, None, None)
    assert volume_depth(path) is None


def test_ct_presets_and_rewindow() -> None:
    path = _file("CT_small.dcm")
    s = load_slice(path, window="ct-lung")
    assert s.window is WINDOW_PRESETS["ct-lung"]
    np.testing.assert_array_equal(_grey(s.display), apply_window(s.pixels, Window(-600, 1500)))
    bone = rewindow(s, "ct-bone")
    assert bone.window is WINDOW_PRESETS["ct-bone"]
    np.testing.assert_array_equal(bone.display, load_slice(path, window="ct-bone").display)
    assert bone.content_hash == s.content_hash
    assert rewindow(bone, None).window is WINDOW_PRESETS["ct-abdomen"]


def test_mr_uses_the_files_own_window() -> None:
    path = _file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    s = load_slice(path)
    assert (s.modality, s.units) == ("MR", "a.u.")
    assert s.window == Window(600.0, 1600.0, "dicom")
    np.testing.assert_array_equal(s.pixels, ds.pixel_array.astype(np.float32))
    np.testing.assert_array_equal(_grey(s.display), apply_window(s.pixels, Window(600, 1600)))
    assert s.spacing == (0.3125, 0.3125)
    auto = load_slice(path, window="auto")
    assert auto.window is not None and auto.window.name == "auto"
    assert rewindow(auto, None).window == Window(600.0, 1600.0, "dicom")


def test_dicom_without_window_and_not_ct_gets_the_auto_window() -> None:
    ds = pydicom.dcmread(_file("MR_small.dcm"))
    del ds.WindowCenter
    del ds.WindowWidth
    s = load_slice(_bytes(ds))
    lo, hi = np.percentile(ds.pixel_array.astype(np.float32), [0.5, 99.5])
    assert s.window is not None and s.window.name == "auto"
    assert (s.window.low, s.window.high) == pytest.approx((lo, hi))


def test_voi_lut_is_applied_when_present() -> None:
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    table = (np.arange(256) ** 2 // 255).astype(np.uint16)  # a non-linear LUT, 0..255
    item = Dataset()
    item.add_new(0x00283002, "SS", [256, -100, 8])  # LUT Descriptor: entries, first input, bits
    item.add_new(0x00283006, "US", table.tolist())  # LUT Data
    ds.VOILUTSequence = [item]
    s = load_slice(_bytes(ds))
    hu = apply_modality_lut(ds.pixel_array, ds)
    expected = table[np.clip(np.floor(hu).astype(int) + 100, 0, 255)].astype(np.uint8)
    np.testing.assert_array_equal(_grey(s.display), expected)
    assert s.window == Window(28.0, 256.0, "dicom-voi-lut")  # input range -100 .. 155
    # (pydicom's apply_voi_lut wraps around for an 8-bit LUT and inputs above 255 + first: it
    # indexes with a uint8 array, which is why the LUT is applied here with int64 indices)
    # another window, then back to the file's LUT
    lung = rewindow(s, "ct-lung")
    assert lung.window is WINDOW_PRESETS["ct-lung"]
    np.testing.assert_array_equal(rewindow(lung, None).display, s.display)


def test_16bit_voi_lut_matches_pydicom() -> None:
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    table = (4095 * np.sqrt(np.arange(1000) / 999)).astype(np.uint16)  # 12-bit output values
    item = Dataset()
    item.add_new(0x00283002, "SS", [1000, -500, 16])
    item.add_new(0x00283006, "US", table.tolist())
    ds.VOILUTSequence = [item]
    s = load_slice(_bytes(ds))
    hu = apply_modality_lut(ds.pixel_array, ds)
    reference = apply_voi_lut(hu.astype(np.int16), ds).astype(np.float64)
    expected = np.rint((reference - table.min()) * 255 / (table.max() - table.min()))
    np.testing.assert_array_equal(_grey(s.display), expected.astype(np.uint8))
    assert s.window == Window(0.0, 1000.0, "dicom-voi-lut")


def test_monochrome1_is_shown_inverted() -> None:
    ds = pydicom.dcmread(_file("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    s = load_slice(_bytes(ds))
    windowed = apply_window(s.pixels, Window(600, 1600))
    np.testing.assert_array_equal(_grey(s.display), 255 - windowed)
    np.testing.assert_array_equal(s.pixels, ds.pixel_array.astype(np.float32))
    other = rewindow(s, Window(500, 1000))
    np.testing.assert_array_equal(
        _grey(other.display), 255 - apply_window(s.pixels, Window(500, 1000))
    )


def test_multi_frame_dicom_picks_a_frame() -> None:
    path = _file("rtdose.dcm")
    frames = pydicom.dcmread(path).pixel_array
    assert frames.shape[0] == 15
    assert volume_depth(path) == 15
    s = load_slice(path)
    assert (s.slice_index, s.num_slices, s.axis) == (7, 15, None)
    np.testing.assert_array_equal(s.pixels, frames[7].astype(np.float32))
    s3 = load_slice(path, slice_index=3)
    np.testing.assert_array_equal(s3.pixels, frames[3].astype(np.float32))
    assert s3.spacing == (10.0, 10.0)
    with pytest.raises(IngestError, match="There is no frame 15: this file has 15 frames"):
        load_slice(path, slice_index=15)
    with pytest.raises(IngestError, match="no frame -1"):
        load_slice(path, slice_index=-1)


def test_enhanced_multi_frame_uses_the_frames_functional_groups() -> None:
    ds, raw = _enhanced_ct()
    data = _bytes(ds)
    assert volume_depth(data) == 3
    s = load_slice(data, slice_index=2)
    np.testing.assert_array_equal(s.pixels, raw[2].astype(np.float32) * 3 - 980)
    assert (s.units, s.modality, s.spacing) == ("HU", "CT", (0.5, 0.7))
    assert s.window == Window(50, 350, "dicom")
    assert s.metadata["RescaleSlope"] == 3.0 and s.metadata["SliceThickness"] == 1.25
    np.testing.assert_array_equal(load_slice(data, slice_index=0).pixels, raw[0] - 1000.0)


def test_colour_dicom_is_an_8bit_display_image() -> None:
    path = _file("SC_rgb_rle_2frame.dcm")
    frames = pydicom.dcmread(path).pixel_array
    s = load_slice(path, slice_index=0)
    assert s.window is None and s.num_slices == 2
    np.testing.assert_array_equal(s.display, frames[0])
    expected = frames[0].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    np.testing.assert_allclose(s.pixels, expected, rtol=1e-6)


def test_palette_dicom_becomes_rgb() -> None:
    path = _file("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    rgb16 = apply_color_lut(ds.pixel_array, ds)
    s = load_slice(path)
    expected = np.clip(np.rint(rgb16.astype(np.float64) * 255 / 65535), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(s.display, expected)
    assert s.window is None


def test_plain_8bit_grey_dicom_is_shown_as_is() -> None:
    path = _file("image_dfl.dcm")  # deflated, MONOCHROME2, 8-bit, no window
    s = load_slice(path)
    assert s.window is None
    np.testing.assert_array_equal(_grey(s.display), pydicom.dcmread(path).pixel_array)


def test_dicom_without_preamble_is_recognised_by_content() -> None:
    path = _file("CT_small.dcm")
    data = path.read_bytes()
    assert data[128:132] == b"DICM"
    s = load_slice(data[132:], name="no-preamble")
    np.testing.assert_array_equal(s.pixels, load_slice(path).pixels)


def test_dicom_named_like_a_png_still_reads_as_dicom(tmp_path: Path) -> None:
    target = tmp_path / "picture.png"
    target.write_bytes(_file("CT_small.dcm").read_bytes())
    assert load_slice(target).source_format == "dicom"


def test_unsupported_compression_is_named() -> None:
    path = _file("MR_small_jpeg_ls_lossless.dcm")
    if get_decoder(JPEGLSLossless).is_available:
        s = load_slice(path)
        np.testing.assert_array_equal(s.pixels, load_slice(_file("MR_small.dcm")).pixels)
        return
    with pytest.raises(IngestError) as info:
        load_slice(path)
    assert str(info.value) == (
        "This DICOM image is compressed with JPEG-LS Lossless Image Compression, which the "
        "studio cannot decode. Export it uncompressed (Explicit VR Little Endian) and upload "
        "it again."
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_truncated_dicom_is_refused() -> None:
    with pytest.raises(IngestError, match="This DICOM file is incomplete"):
        load_slice(_file("MR_truncated.dcm"))
    data = _file("CT_small.dcm").read_bytes()
    for cut in (len(data) - 200, len(data) // 2, 5000, 200):
        with pytest.raises(IngestError, match="This DICOM file is incomplete"):
            load_slice(data[:cut])


def test_dicom_without_an_image_is_refused() -> None:
    with pytest.raises(IngestError, match="holds no image: it is a radiotherapy plan"):
        load_slice(_file("rtplan.dcm"))
    with pytest.raises(IngestError, match="segmentation"):
        load_slice(_file("liver_1frame.dcm"))
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    del ds.PixelData
    with pytest.raises(IngestError, match="it is an image but its pixel data is missing"):
        load_slice(_bytes(ds))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_damaged_dicom_header_values_are_refused() -> None:
    with pytest.raises(IngestError, match="'NumberOfFrames' attribute is not a number"):
        load_slice(_file("badVR.dcm"))
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    ds.Rows = 0
    with pytest.raises(IngestError, match="The image is empty"):
        load_slice(_bytes(ds))
    with pytest.raises(IngestError, match="could not be read as DICOM"):
        load_slice(b"\x08\x00" + b"\xff" * 300)


def test_dicom_size_limits_are_checked_before_decoding() -> None:
    with pytest.raises(IngestError) as info:
        load_slice(_file("CT_small.dcm"), max_pixels=10_000)
    assert str(info.value) == (
        "The image is 128 × 128 pixels (16,384 pixels); the limit is 10,000 pixels. "
        "Downsample it or crop it first."
    )
    ds, _raw = _enhanced_ct()
    ds.NumberOfFrames = 1000  # the pixel data no longer matches: nothing may be decoded
    with pytest.raises(IngestError, match=r"multi-frame image is 1000 × 4 × 5 \(20,000 pixels"):
        load_slice(_bytes(ds), max_pixels=20)


PHI = {
    "PatientName": "Zebulon^Quixotic",
    "PatientID": "PID-98765-XQ",
    "PatientBirthDate": "19420817",
    "PatientAddress": "12 Nowhere Lane, Springfield",
    "InstitutionName": "Saint Quirinus Hospital",
    "InstitutionAddress": "99 Hospital Road, Quirinus",
    "AccessionNumber": "ACC55501Q",
    "StudyInstanceUID": "1.2.826.0.1.3680043.99.12345.67890",
    "ReferringPhysicianName": "Hieronymus^Bosch",
    "PerformingPhysicianName": "Pieter^Brueghel",
    "OperatorsName": "Jan^VanEyck",
    "StudyDescription": "Zebulon follow-up",
    "StudyDate": "20991231",
    "StudyTime": "235959",
    "StationName": "QUIRINUS-CT7",
}


def test_deidentification_keeps_no_identifying_value(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_file("CT_small.dcm"))
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    ds.add_new(0x00091099, "LO", "Zebulon private note")  # a private tag
    folder = tmp_path / "Zebulon_Quixotic"
    folder.mkdir()
    path = folder / "ct.dcm"
    path.write_bytes(_bytes(ds))

    s = load_slice(path)
    texts = [repr(s), json.dumps(s.metadata), *map(str, s.metadata.values())]
    forbidden = [*PHI.values(), "Zebulon", "Quixotic", "1.3.6.1.4.1.5962", str(tmp_path)]
    for text in texts:
        for secret in forbidden:
            assert secret not in text, (secret, text)
    identifying_keys = {*PHI, "SOPInstanceUID", "SeriesInstanceUID", "PatientSex", "PatientAge"}
    assert identifying_keys.isdisjoint(s.metadata)
    assert all(isinstance(v, (str, int, float)) for v in s.metadata.values())
    assert s.source_name == f"case-{s.content_hash[:12]}"
    assert s.metadata["Modality"] == "CT" and s.metadata["KVP"] == 120.0
    assert s.metadata["PatientIdentityRemoved"] == "YES"


@pytest.mark.parametrize(
    "given",
    [
        "/home/dr/Patients/Doe^John/scan.dcm",
        "C:\\Users\\dr\\Doe John\\scan 2.dcm",
        "DOE_JOHN_PID12345_19470317.dcm",
        "scan\x00\n.dcm",
        "/",
    ],
)
def test_source_name_is_a_neutral_case_name_never_the_file_name(given: str) -> None:
    s = load_slice(_file("MR_small.dcm").read_bytes(), name=given)
    assert s.source_name == f"case-{s.content_hash[:12]}"
    for part in ("DOE", "John", "PID12345", "19470317", "scan.dcm", "scan 2"):
        assert part.lower() not in repr(s).lower()
