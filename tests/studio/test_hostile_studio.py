"""Issue 13 through one studio server (served in-process, Gradio's upload cache in a temporary
folder): hostile inputs get a clear message and leave nothing behind, and PHI-laden DICOMs
leave no identifier in any byte the studio wrote (data dir, upload cache, logs, exports)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from pydicom.dataset import Dataset

from studio.case_handlers import CaseHandlers
from studio.config import StudioSettings
from studio.exports import ExportArea
from studio.services import Services, build_services
from tests.hostile import ODD_NAME_PARTS, ODD_NAMES, PYDICOM_DATA, REFUSED, Hostile, dicom
from tests.studio.conftest import make_settings
from tests.studio.test_api_client import serve

pytestmark = pytest.mark.slow


@dataclass
class Served:
    client: Client
    services: Services
    root: Path
    data_dir: Path
    cache: Path
    exports: Path
    log: Path
    inputs: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, studio_bundle_dir: Path) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("hostile-studio")
    cache, data_dir, exports, inputs = (root / n for n in ("cache", "data", "exports", "inputs"))
    log_file = root / "studio.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    previous_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(cache))
        services = build_services(
            make_settings(data_dir, studio_bundle_dir),
            StudioSettings(identity="name", seed_worklist=False),
        )
        services.exports = ExportArea(exports)
        demo, url = serve(services)
        try:
            yield Served(
                Client(url, verbose=False, download_files=False),
                services,
                root,
                data_dir,
                cache,
                exports,
                log_file,
                inputs,
            )
        finally:
            demo.close()
            services.close()
            logging.getLogger().removeHandler(handler)
            logging.getLogger().setLevel(previous_level)
            handler.close()


def _predict(served: Served, path: Path) -> tuple:
    return served.client.predict(handle_file(str(path)), "custom", "", -1, "", api_name="/predict")


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


def _uploads_left(served: Served, name: str) -> list[Path]:
    """Files of the upload cache with this name (Gradio keeps the uploaded name)."""
    return [p for p in served.cache.rglob("*") if p.is_file() and p.name == name]


# -- hostile inputs ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_hostile_upload_gets_a_clear_message_and_leaves_nothing(
    served: Served, case: Hostile
) -> None:
    path = case.write(served.inputs)
    outside_before = {p for p in served.root.rglob("*") if p.is_file()}
    with pytest.raises(Exception) as info:
        _predict(served, path)
    message = str(info.value)
    assert case.expect is not None and case.expect.lower() in message.lower(), message
    assert "Something went wrong" not in message and "Traceback" not in message
    assert _uploads_left(served, path.name) == []  # the upload cache copy is gone
    new = {p for p in served.root.rglob("*") if p.is_file()} - outside_before
    allowed = (served.data_dir, served.cache, served.exports, served.log)
    assert all(p == served.log or any(a in p.parents for a in allowed) for p in new), new


STUDIO_ODD = [c for c in ODD_NAMES if c.id in ("path-dots", "unicode", "phi-name")]


@pytest.mark.parametrize("case", STUDIO_ODD, ids=[c.id for c in STUDIO_ODD])
def test_odd_names_are_accepted_and_their_name_is_not_returned(
    served: Served, case: Hostile
) -> None:
    path = case.write(served.inputs)
    result, *_ = _predict(served, path)
    assert result["source"].startswith("case-")
    assert not any(part in str(result) for part in ODD_NAME_PARTS)
    assert _uploads_left(served, path.name) == []


def test_the_server_is_alive_after_the_hostile_inputs(served: Served) -> None:
    result, *_ = _predict(served, PYDICOM_DATA / "MR_small.dcm")
    assert [s["name"] for s in result["structures"]] == ["liver", "kidney"]


# -- PHI ---------------------------------------------------------------------------------------
PHI_FILES = {
    "SURNAMEQX_FIRSTNAMEQX_PID12345QX_19470317.dcm": ("CT_small.dcm", "QXA"),
    "DOEQX^JANEQX MRN-88812QX.dcm": ("MR_small.dcm", "QXB"),
    "Klinik_WEISSQX_1961-02-28.dcm": ("CT_small.dcm", "QXC"),
}


def _phi_dataset(base: str, tag: str) -> bytes:
    def mutate(ds: Dataset) -> None:
        ds.PatientName = f"ZORGLUB{tag}^HILDEGARD{tag}"
        ds.PatientID = f"PATID-{tag}-4711"
        ds.OtherPatientIDs = f"OTHERID-{tag}-0815"
        ds.PatientBirthDate = "19470317"
        ds.PatientAddress = f"17 Wisteria{tag} Lane"
        ds.InstitutionName = f"Sankt Quirin{tag} Hospital"
        ds.ReferringPhysicianName = f"DRFEELGOOD{tag}^HANS"
        ds.AccessionNumber = f"ACC-{tag}-31337"
        ds.StudyDescription = f"Knee ZORGLUB{tag} follow-up"
        ds.BodyPartExamined = f"ZORGLUB{tag}"  # free text planted in a coded field
        ds.ImageType = ["ORIGINAL", "PRIMARY", f"HILDEGARD{tag}"]
        ds.add_new(0x00091010, "LO", f"PRIVATE-{tag}-SECRET")
        inner = Dataset()
        inner.PatientName = f"NESTED{tag}^PERSON"
        inner.AccessionNumber = f"NESTACC-{tag}-99"
        ds.RequestAttributesSequence = [inner]
        ds.PixelData = bytes(ds.PixelData[:-2]) + tag.encode()[-2:]  # distinct pixels per file

    return dicom(mutate, base)


def _identifiers(name: str, tag: str) -> list[str]:
    stem = name.removesuffix(".dcm")
    parts = [p for p in stem.replace("^", "_").replace(" ", "_").split("_") if len(p) >= 5]
    return [
        *parts,
        f"ZORGLUB{tag}",
        f"HILDEGARD{tag}",
        f"PATID-{tag}-4711",
        f"OTHERID-{tag}-0815",
        f"Wisteria{tag}",
        f"Quirin{tag}",
        f"DRFEELGOOD{tag}",
        f"ACC-{tag}-31337",
        f"PRIVATE-{tag}-SECRET",
        f"NESTED{tag}",
        f"NESTACC-{tag}-99",
        "19470317",
    ]


def _hits(files: dict[Path, bytes], needle: str) -> list[Path]:
    variants = {needle.encode(), needle.lower().encode(), needle.upper().encode()}
    variants.add(needle.encode("utf-16-le"))
    return [p for p, data in files.items() if any(v in data for v in variants)]


SERIES_PHI = {
    "PatientName": "ZORGLUBQXS^HILDEGARDQXS",
    "PatientID": "PATID-QXS-4711",
    "PatientBirthDate": "19470317",
    "InstitutionName": "Sankt QuirinQXS Hospital",
    "AccessionNumber": "ACC-QXS-31337",
    "StudyDescription": "Abdomen ZORGLUBQXS staging",
    "BodyPartExamined": "HILDEGARDQXS",
}


def _volume_upload(served: Served) -> list[str]:
    """A PHI-laden DICOM series through the volume tab (open, correct a slice, save, export),
    its files placed in the upload cache under PHI names as Gradio would; the identifiers."""
    from adasam.phantoms import generate_volume, volume_to_dicom_series
    from studio.volume_handlers import VolumeHandlers

    vol = generate_volume("liver-ct", 41, 0, depth=4, size=64, z_range=(0.1, 0.5))
    names = [f"SURNAMEQXS_FIRSTNAMEQXS_{k}.dcm" for k in range(4)]
    paths = []
    series = volume_to_dicom_series(vol.image, vol.spacing, "CT", extra=SERIES_PHI)
    for k, (name, data) in enumerate(zip(names, series, strict=True)):
        folder = served.cache / f"volupload{k}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    h = VolumeHandlers(served.services)
    key = served.services.catalog.default().key
    session = h.open([str(p) for p in paths], key, None)
    assert not any(p.exists() for p in paths)  # taken out of the upload cache before decoding
    assert not any(n.removesuffix(".dcm") in session.volume.source_name for n in names)
    h.click(session, 2, 32.0, 32.0, True)
    assert h.save(session, "phi-tester") > 0
    exported = h.export(session)
    assert {p.suffix for p in exported} == {".gz", ".dcm"}
    return [
        "SURNAMEQXS",
        "FIRSTNAMEQXS",
        "ZORGLUBQXS",
        "HILDEGARDQXS",
        "PATID-QXS-4711",
        "QuirinQXS",
        "ACC-QXS-31337",
    ]


def test_phi_laden_dicoms_leave_no_identifier_anywhere(served: Served) -> None:
    folder = served.inputs / "phi"
    folder.mkdir(parents=True, exist_ok=True)
    needles: list[str] = []
    case_names = []
    for name, (base, tag) in PHI_FILES.items():
        path = folder / name
        path.write_bytes(_phi_dataset(base, tag))
        assert _hits({path: path.read_bytes()}, f"ZORGLUB{tag}")  # the file holds the PHI
        needles += _identifiers(name, tag)
        result, *_ = _predict(served, path)
        case_names.append(result["source"])
        served.client.predict(1, api_name="/choose_candidate")
        receipt, files = served.client.predict(
            "phi-tester", 3, "minor_edits", "completeness", "ok", api_name="/submit"
        )
        assert receipt["correction_id"] and len(files) == 3
    # the worklist import takes its uploads out of the cache too
    batch_dir = served.cache / "batchupload"
    batch_dir.mkdir(parents=True, exist_ok=True)
    batch = batch_dir / "SURNAMEQX_BATCH_19470317.dcm"
    batch.write_bytes(_phi_dataset("CT_small.dcm", "QXD"))
    needles += _identifiers("SURNAMEQX_BATCH_19470317.dcm", "QXD")
    assert "1 case(s) added" in CaseHandlers(served.services).import_batch([str(batch)])["batch_md"]
    assert not batch.exists()
    needles += _volume_upload(served)

    if served.services.specialists is not None:  # AuxOL's online steps write to the data dir
        served.services.specialists._worker.submit(lambda: None).result(timeout=120)
    written = {
        **_files(served.data_dir),
        **_files(served.cache),
        **_files(served.exports),
        served.log: served.log.read_bytes(),
    }
    written = {p: d for p, d in written.items() if served.inputs not in p.parents}
    assert any(p.suffix == ".sqlite3" for p in written)
    assert any(served.exports in p.parents for p in written)
    for case_name in case_names:  # the search sees what the studio stored
        assert _hits(written, case_name), case_name
    leaks = {n: _hits(written, n) for n in dict.fromkeys(needles)}
    assert {n: [str(p) for p in paths] for n, paths in leaks.items() if paths} == {}
    names_on_disk = [str(p.relative_to(served.root)) for p in written]
    for needle in needles:
        assert not any(needle.lower() in n.lower() for n in names_on_disk), needle
