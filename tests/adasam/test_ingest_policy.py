"""The ingestion policy of issue 13: coded DICOM fields clamped to their VR and defined terms,
burned-in annotation refused, PS3.15 basic profile, neutral names, strips and broken NIfTI
orientations refused with one clear sentence (CLI: exit 2, one line)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset

from adasam.cli import main
from adasam.errors import IngestError
from adasam.imaging import DICOM_ALLOWLIST, load_slice
from adasam.imaging.decoded import MAX_ASPECT_RATIO

DATA = Path(pydicom.__file__).parent / "data" / "test_files"
BASIC_PROFILE_TAGS = Path(__file__).parent / "data" / "ps3_15_basic_profile_tags.txt"
MARKER = "QXZEBULONQ"


def _ct() -> Dataset:
    return pydicom.dcmread(DATA / "CT_small.dcm")


def _bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((height, width), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


# -- coded fields -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("keyword", "planted", "kept"),
    [
        ("BodyPartExamined", "DOE JOHN", None),
        ("BodyPartExamined", "CHEST", "CHEST"),
        ("PatientPosition", "ZEBULON", None),
        ("PatientPosition", "HFS", "HFS"),
        ("ImageType", ["ORIGINAL", "PRIMARY", "JOHN DOE", "AXIAL"], "ORIGINAL\\PRIMARY\\AXIAL"),
        ("ScanningSequence", "PID12345", None),
        ("RescaleType", "HU", "HU"),
        ("RescaleType", "DOE^JOHN", None),
    ],
)
def test_coded_fields_keep_only_their_defined_terms(
    keyword: str, planted: object, kept: str | None
) -> None:
    ds = _ct()
    setattr(ds, keyword, planted)
    s = load_slice(_bytes(ds))
    assert s.metadata.get(keyword) == kept
    assert "DOE" not in json.dumps(s.metadata) and "PID12345" not in json.dumps(s.metadata)


def test_a_coded_field_stored_with_another_vr_is_dropped() -> None:
    ds = _ct()
    ds.add_new(tag_for_keyword("BodyPartExamined"), "LO", "CHEST")  # LO: free text
    ds.add_new(tag_for_keyword("KVP"), "LO", "120")
    s = load_slice(_bytes(ds))
    assert "BodyPartExamined" not in s.metadata and "KVP" not in s.metadata


def test_every_allowlisted_attribute_is_kept_by_the_ps3_15_basic_profile() -> None:
    """No attribute we keep is one PS3.15 Table E.1-1 removes, empties or replaces."""
    profile = {int(line, 16) for line in BASIC_PROFILE_TAGS.read_text().split()}
    assert len(profile) > 600
    kept = {tag_for_keyword(k) for k in DICOM_ALLOWLIST}
    assert kept.isdisjoint(profile)


def test_nothing_the_basic_profile_names_survives_ingestion() -> None:
    """Every text-valued attribute of Table E.1-1 filled with a marker, plus private tags and a
    nested sequence: the marker is nowhere in the slice."""
    ds = _ct()
    values = {
        "DA": "20991231",
        "TM": "235959",
        "DT": "20991231235959",
        "UI": "1.2.826.0.1.3680043.9.999",
        "AS": "077Y",
        "IS": "77",
        "DS": "77.5",
    }
    filled = 0
    for line in BASIC_PROFILE_TAGS.read_text().split():
        tag = int(line, 16)
        keyword = keyword_for_tag(tag)
        if not keyword or (tag >> 16) in (0x0000, 0x0002, 0x7FE0):
            continue
        vr = dictionary_VR(tag)
        if vr in ("LO", "SH", "PN", "LT", "ST", "UT", "UC", "CS", "AE"):
            value = MARKER if vr != "PN" else f"{MARKER}^JANE"
        elif vr in values:
            value = values[vr]
        else:
            continue
        ds.add_new(tag, vr, value)
        filled += 1
    inner = Dataset()
    inner.PatientName = f"{MARKER}^NESTED"
    ds.add_new(0x00081111, "SQ", [inner])  # ReferencedPerformedProcedureStepSequence
    ds.add_new(0x00291010, "LO", MARKER)
    assert filled > 300
    s = load_slice(_bytes(ds))
    text = repr(s) + json.dumps(s.metadata)
    for secret in (MARKER, "20991231", "235959", "3680043.9.999", "077Y"):
        assert secret not in text


# -- burned-in annotation ----------------------------------------------------------------------
def test_burned_in_annotation_is_refused_unless_allowed() -> None:
    ds = _ct()
    ds.BurnedInAnnotation = "YES"
    data = _bytes(ds)
    with pytest.raises(IngestError, match="burned-in annotation.*ADASAM_ALLOW_BURNED_IN=1"):
        load_slice(data)
    s = load_slice(data, allow_burned_in=True)
    assert s.metadata["BurnedInAnnotation"] == "YES"
    ds.BurnedInAnnotation = "NO"
    assert "BurnedInAnnotation" not in load_slice(_bytes(ds)).metadata


def test_cli_refuses_burned_in_annotation_with_one_line(
    tiny_bundle_dir: Path, tmp_path: Path, capsys
) -> None:
    ds = _ct()
    ds.BurnedInAnnotation = "YES"
    path = tmp_path / "burned.dcm"
    path.write_bytes(_bytes(ds))
    rc = main(["predict", str(path), "--bundle", str(tiny_bundle_dir), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "burned-in" in err


# -- names -------------------------------------------------------------------------------------
def test_cli_result_json_and_output_never_hold_the_file_name(
    tiny_bundle_dir: Path, tmp_path: Path, capsys
) -> None:
    path = tmp_path / "SURNAME_FIRSTNAME_PID12345_19470317.dcm"
    path.write_bytes((DATA / "CT_small.dcm").read_bytes())
    out = tmp_path / "out"
    rc = main(["predict", str(path), "--bundle", str(tiny_bundle_dir), "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    assert result["input"]["name"].startswith("case-")
    for part in ("SURNAME", "FIRSTNAME", "PID12345", "19470317"):
        assert part not in printed
        for written in out.iterdir():
            assert part not in written.name
            assert part.encode() not in written.read_bytes()


# -- strips ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [_png(513, 1), _png(1, 513), _npy(np.zeros((100000, 1), np.float32))],
    ids=["1x513-png", "513x1-png", "100000x1-npy"],
)
def test_strips_are_refused_by_their_aspect_ratio(data: bytes) -> None:
    with pytest.raises(
        IngestError, match=f"longer than it is wide; the limit is {MAX_ASPECT_RATIO}"
    ):
        load_slice(data)


def test_a_long_but_allowed_image_loads() -> None:
    assert load_slice(_png(MAX_ASPECT_RATIO * 2, 2)).shape == (2, MAX_ASPECT_RATIO * 2)


def test_cli_strip_exits_2_with_one_line(tiny_bundle_dir: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "strip.png"
    path.write_bytes(_png(513, 1))
    rc = main(["predict", str(path), "--bundle", str(tiny_bundle_dir), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: The image is 513 × 1")


# -- NIfTI orientation -------------------------------------------------------------------------
def _patched_nifti(offset: int, value: float, sform_code: int) -> bytes:
    """A valid NIfTI-1 whose header float at ``offset`` is overwritten (as a corrupt file)."""
    image = nib.Nifti1Image(np.arange(8 * 8 * 3, dtype=np.int16).reshape(8, 8, 3), np.eye(4))
    image.header.set_qform(None, code=0)
    image.header.set_sform(np.eye(4), code=sform_code)
    data = bytearray(image.to_bytes())
    data[offset : offset + 4] = np.float32(value).tobytes()
    return bytes(data)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_nifti_affine_is_a_clear_error(bad: float) -> None:
    good = _patched_nifti(280, 1.0, sform_code=1)  # srow_x[0] = 1: the valid file loads
    assert load_slice(good).shape == (8, 8)
    with pytest.raises(IngestError, match="orientation is broken"):
        load_slice(_patched_nifti(280, bad, sform_code=1))  # srow_x[0]


def test_non_finite_nifti_voxel_sizes_are_a_clear_error() -> None:
    with pytest.raises(IngestError, match="orientation is broken"):
        load_slice(_patched_nifti(80, np.nan, sform_code=0))  # pixdim[1]
