"""Bad uploads: every one is an IngestError with a message a clinician can act on."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from adasam.errors import AdaSamError, IngestError
from adasam.imaging import load_slice, volume_depth

HINT = "Upload a PNG, JPEG, TIFF, DICOM (.dcm) or NIfTI (.nii/.nii.gz) file."


def test_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "scan.png"
    empty.write_bytes(b"")
    for source in (empty, b""):
        with pytest.raises(IngestError) as info:
            load_slice(source)
        assert str(info.value) == f"The file is empty (0 bytes). {HINT}"
    with pytest.raises(IngestError, match="empty"):
        volume_depth(b"")


def test_text_renamed_png_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "scan.png"
    fake.write_text("Patient notes: nothing to see here.\nLine two\n")
    with pytest.raises(IngestError) as info:
        load_slice(fake)
    assert str(info.value) == (
        "This file is not a readable image: it looks like plain text. Upload a PNG, JPEG, TIFF, "
        "DICOM (.dcm) or NIfTI (.nii/.nii.gz) file."
    )
    with pytest.raises(IngestError, match="plain text"):
        load_slice("héllo, wörld — ünïcode text ✓\n".encode())


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"\x00" * 40, "a PDF document"),
        (b"GIF89a" + b"\x01\x00\x01\x00" + b"\x00" * 30, "a GIF image"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 30, "a WebP image"),
        (b"\x89HDF\r\n\x1a\n" + b"\x00" * 30, "an HDF5 file"),
    ],
)
def test_known_unsupported_formats_are_named(data: bytes, what: str) -> None:
    with pytest.raises(IngestError) as info:
        load_slice(data)
    assert str(info.value) == f"This file is {what}, which the studio cannot read. {HINT}"


def test_zip_archive_and_npz_are_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("a.txt", "x")
    with pytest.raises(IngestError, match="ZIP archive"):
        load_slice(buf.getvalue())
    npz = io.BytesIO()
    np.savez(npz, a=np.zeros((2, 2)))
    with pytest.raises(IngestError, match="ZIP archive"):
        load_slice(npz.getvalue())


def test_random_binary_is_refused() -> None:
    rng = np.random.default_rng(3)
    data = b"\x07\x01" + rng.integers(0, 256, 500, dtype=np.uint8).tobytes()
    with pytest.raises(IngestError, match="not in a format the studio can read"):
        load_slice(data)


def test_truncated_nifti_header_and_gzip_of_something_else() -> None:
    with pytest.raises(IngestError, match="NIfTI file is truncated"):
        load_slice((348).to_bytes(4, "little") + b"\x00" * 100)
    with pytest.raises(IngestError, match="does not hold a NIfTI volume"):
        load_slice(gzip.compress(b"\x00" * 2000))


def test_missing_file_and_folder_and_wrong_types(tmp_path: Path) -> None:
    with pytest.raises(IngestError) as info:
        load_slice(tmp_path / "secret-folder" / "nothing.dcm")
    assert str(info.value) == "The file 'nothing.dcm' was not found."
    assert "secret-folder" not in str(info.value)
    with pytest.raises(IngestError, match="is a folder"):
        load_slice(tmp_path)
    with pytest.raises(IngestError, match="Expected a file path or the file's bytes, got int"):
        load_slice(3)  # type: ignore[arg-type]
    with pytest.raises(IngestError, match="max_pixels"):
        load_slice(b"x", max_pixels=0)


def test_ingest_error_is_a_value_error_and_an_adasam_error() -> None:
    with pytest.raises(ValueError):
        load_slice(b"")
    with pytest.raises(AdaSamError):
        load_slice(b"")


def test_imaging_does_not_import_torch() -> None:
    probe = (
        "import sys\n"
        "import adasam.imaging\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _seeds() -> dict[str, bytes]:
    import nibabel as nib
    import pydicom
    from PIL import Image

    rng = np.random.default_rng(0)
    seeds: dict[str, bytes] = {}
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for fmt in ("PNG", "JPEG", "TIFF"):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=fmt)
        seeds[fmt] = buf.getvalue()
    ct = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
    if ct.is_file():
        seeds["DICOM"] = ct.read_bytes()
    volume = np.arange(120, dtype=np.int16).reshape(4, 5, 6)
    nifti = nib.Nifti1Image(volume, np.diag([-1.0, 2.0, 3.0, 1.0])).to_bytes()
    seeds["NIfTI"] = nifti
    seeds["NIfTI-gz"] = gzip.compress(nifti)
    buf = io.BytesIO()
    np.save(buf, volume.astype(np.float32))
    seeds["npy"] = buf.getvalue()
    return seeds


@pytest.mark.filterwarnings("ignore")
def test_damaged_files_never_raise_anything_but_ingest_error() -> None:
    """Random byte flips, cuts and overwrites of valid files of every format."""
    rng = np.random.default_rng(7)
    for name, data in _seeds().items():
        for trial in range(40):
            damaged = bytearray(data)
            if trial % 3 == 0:
                for _ in range(int(rng.integers(1, 8))):
                    damaged[int(rng.integers(0, len(damaged)))] = int(rng.integers(0, 256))
            elif trial % 3 == 1:
                damaged = damaged[: int(rng.integers(1, len(damaged)))]
            else:
                at = int(rng.integers(0, min(len(damaged), 400)))
                damaged[at : at + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
            for call in (
                lambda d: load_slice(d),
                lambda d: load_slice(d, slice_index=1, axis=0, window="ct-bone"),
                lambda d: volume_depth(d),
            ):
                try:
                    call(bytes(damaged))
                except IngestError:
                    pass
                except Exception as exc:  # pragma: no cover - the failure report
                    pytest.fail(f"{name} trial {trial}: {type(exc).__name__}: {exc}")
