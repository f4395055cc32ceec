"""A DICOM with a patient's name, ID, birth date and institution goes in; none of those values
can be found anywhere in the database files or the blob store afterwards."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import numpy as np
import pydicom
import pytest

import storage
from storage.store import Store

PHI = {
    "PatientName": "ZZTOPSECRET^WILHELMINA",
    "PatientID": "PIDX-99887766",
    "PatientBirthDate": "19230405",
    "InstitutionName": "Hospital Of Distinctive Strings",
    "InstitutionAddress": "42 Quokka Lane Springfield",
    "AccessionNumber": "ACCN-55443322",
    "ReferringPhysicianName": "QUIBBLEFORTH^ARCHIBALD",
    "StudyDate": "19990913",
}
NEEDLES = [
    "ZZTOPSECRET",
    "WILHELMINA",
    "PIDX-99887766",
    "99887766",
    "19230405",
    "1923-04-05",
    "Distinctive Strings",
    "Quokka Lane",
    "ACCN-55443322",
    "QUIBBLEFORTH",
    "19990913",
]
MARKER = "KEEPMARKER"  # a harmless value that must be found: proves the search sees the data


def _dicom_with_phi() -> bytes:
    path = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
    dataset = pydicom.dcmread(path)
    for keyword, value in PHI.items():
        setattr(dataset, keyword, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


def _stored_bytes(store: Store, database_file: Path) -> dict[Path, bytes]:
    """Every file of the database (with its WAL) and of the data directory."""
    files = [p for p in database_file.parent.iterdir() if p.is_file()]
    files += [p for p in store.data_dir.rglob("*") if p.is_file()]
    return {path: path.read_bytes() for path in files}


def _found(contents: dict[Path, bytes], needle: str) -> list[Path]:
    forms = {needle, needle.upper(), needle.lower(), needle.replace(" ", "^")}
    encoded = [f.encode(enc) for f in forms for enc in ("utf-8", "utf-16-le")]
    return [path for path, data in contents.items() if any(e in data for e in encoded)]


def _exercise(store: Store, content_hash: str, shape: tuple[int, int]) -> None:
    """Everything the studio stores about a slice, so every table is searched."""
    storage.ensure_annotator(store, "dr.rossi")
    mask = np.zeros(shape, bool)
    mask[40:80, 40:90] = True
    prediction = storage.record_prediction(
        store,
        slice_hash=content_hash,
        structure="liver",
        candidates=[mask, mask, mask],
        scores=[0.9, 0.8, 0.7],
        cam_summary={"area": int(mask.sum())},
    )
    correction = storage.record_correction(
        store,
        prediction_id=prediction.id,
        chosen_rank=0,
        final_mask=mask,
        annotator="dr.rossi",
        seconds=12.0,
    )
    storage.record_rating(
        store,
        observer=storage.HumanObserver("dr.rossi"),
        correction_id=correction.id,
        score=5,
        verdict="accept",
    )


def test_dicom_phi_is_nowhere_in_database_or_blobs(sqlite_store: Store, sqlite_url: str) -> None:
    from adasam.imaging import load_slice

    raw = _dicom_with_phi()
    assert all(_found({Path("upload"): raw}, n) for n in ("ZZTOPSECRET", "19230405"))
    image = load_slice(raw, name=f"ct-{MARKER}.dcm")
    record = storage.record_slice(
        sqlite_store,
        content_hash=image.content_hash,
        pixels=image.pixels,
        display=image.display,
        modality=image.modality,
        units=image.units,
        spacing=image.spacing,
        window_level=None if image.window is None else image.window.level,
        window_width=None if image.window is None else image.window.width,
        window_name=None if image.window is None else image.window.name,
        source_format=image.source_format,
        source_name=image.source_name,
        metadata=image.metadata,
    )
    assert record.content_hash == image.content_hash  # storage and imaging agree on identity
    np.testing.assert_array_equal(storage.load_pixels(sqlite_store, record), image.pixels)
    _exercise(sqlite_store, record.content_hash, record.shape)

    contents = _stored_bytes(sqlite_store, Path(sqlite_url.removeprefix("sqlite:///")))
    assert _found(contents, image.source_name), "the search does not see the stored data"
    assert not _found(contents, MARKER)  # the file name is not stored (a neutral case name is)
    leaks = {needle: _found(contents, needle) for needle in NEEDLES}
    assert {n: p for n, p in leaks.items() if p} == {}


@pytest.mark.parametrize("checkpoint", [False, True])
def test_storage_scrubs_phi_even_when_the_caller_did_not(
    sqlite_store: Store, sqlite_url: str, checkpoint: bool
) -> None:
    """Belt and braces: raw DICOM header values handed straight to storage are dropped."""
    dataset = pydicom.dcmread(io.BytesIO(_dicom_with_phi()))
    metadata = {
        element.keyword: str(element.value)
        for element in dataset
        if element.keyword and element.keyword != "PixelData" and element.VR not in ("OB", "OW")
    }
    assert metadata["PatientName"] == PHI["PatientName"]
    pixels = dataset.pixel_array.astype(np.float32)
    record = storage.record_slice(
        sqlite_store,
        content_hash=storage.pixels_hash(pixels),
        pixels=pixels,
        display=np.zeros((*pixels.shape, 3), np.uint8),
        modality="CT",
        source_name=f"/pacs/ZZTOPSECRET_WILHELMINA_19230405_{MARKER}.dcm",
        metadata=metadata,
    )
    assert record.metadata["Modality"] == "CT"  # technical facts survive
    assert "SliceThickness" in record.metadata
    _exercise(sqlite_store, record.content_hash, record.shape)
    database_file = Path(sqlite_url.removeprefix("sqlite:///"))
    if checkpoint:  # the same search once everything moved from the WAL into the main file
        sqlite_store.close()
        connection = sqlite3.connect(database_file)
        assert connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        connection.close()
    contents = _stored_bytes(sqlite_store, database_file)
    assert _found(contents, MARKER)
    leaks = {needle: _found(contents, needle) for needle in NEEDLES}
    assert {n: p for n, p in leaks.items() if p} == {}
