"""The storage-side de-identification deny-list."""

from __future__ import annotations

from storage.deid import is_denied_key, scrub_metadata, scrub_text


def test_identifying_keys_are_dropped_and_acquisition_parameters_kept() -> None:
    metadata = {
        "PatientName": "DOE^JANE",
        "PatientID": "MRN-4242",
        "PatientBirthDate": "19700101",
        "PatientAddress": "1 Main Street",
        "InstitutionName": "St Elsewhere",
        "AccessionNumber": "ACC999",
        "StudyInstanceUID": "1.2.3.4.5",
        "StudyDate": "20240102",
        "StudyTime": "101010",
        "ReferringPhysicianName": "HOUSE^G",
        "patient_position": "HFS",
        "Modality": "MR",
        "RepetitionTime": 500.0,
        "EchoTime": 12.0,
        "PixelSpacing": [0.7, 0.7],
        "Rows": 256,
    }
    result = scrub_metadata(metadata)
    assert result.metadata == {
        "patient_position": "HFS",
        "Modality": "MR",
        "RepetitionTime": 500.0,
        "EchoTime": 12.0,
        "PixelSpacing": [0.7, 0.7],
        "Rows": 256,
    }
    assert "DOE^JANE" in result.dropped_values and "JANE" in result.dropped_values


def test_dates_and_uids_are_dropped_whatever_the_key_and_nesting() -> None:
    metadata = {
        "header": {"when": "2024-01-02", "ref": "1.2.840.10008.5.1", "ok": "axial", "n": 3},
        "list": ["20231231", "keep me", 4.5],
        "blob": b"\x00\x01",
    }
    result = scrub_metadata(metadata)
    assert result.metadata == {"header": {"ok": "axial", "n": 3}, "list": ["keep me", 4.5]}


def test_key_rules() -> None:
    for key in ("OtherPatientIDs", "institution_name", "Operators' Name", "device serial number"):
        assert is_denied_key(key), key
    for key in ("Modality", "SliceThickness", "PatientSex", "EchoTime", "WindowCenter"):
        assert not is_denied_key(key), key


def test_scrub_text_removes_dropped_values_and_dates() -> None:
    assert scrub_text("doe_jane_20240102_t1.dcm", ["DOE^JANE", "DOE", "JANE"]) == "x_x_x_t1.dcm"
    assert scrub_text("case_7.nii.gz", ["JO"]) == "case_7.nii.gz"  # too short to search
