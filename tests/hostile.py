"""Hostile and careless inputs, shared by the CLI and the studio suites (issue 13).

Each case is a file written into a folder: corrupt, truncated, decompression bombs (tiny files
whose headers announce huge images), pickles, other formats, strips, broken NIfTI orientation,
burned-in annotation, and odd or path-like names (valid content, to check the name never ends up
anywhere). All are tiny and built here in milliseconds.
"""

from __future__ import annotations

import functools
import gzip
import io
import pickle
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from PIL import Image

PYDICOM_DATA = Path(pydicom.__file__).parent / "data" / "test_files"


@dataclass(frozen=True)
class Hostile:
    """One input: its id, the file name to upload it as, how to make its bytes, and whether it
    must be refused (``expect`` is a fragment of the one-line message) or accepted (None)."""

    id: str
    name: str
    make: Callable[[], bytes]
    expect: str | None

    def write(self, folder: Path) -> Path:
        sub = folder / self.id
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / self.name
        path.write_bytes(self.make())
        return path


def png(width: int, height: int, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def small_png() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def png_bomb(side: int) -> bytes:
    """A valid PNG of ``side`` × ``side`` black pixels: about 200 kB compressed."""
    raw = zlib.compress(b"\x00" * (side + 1) * side, 1)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", raw)
        + _png_chunk(b"IEND", b"")
    )


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (32, 32), 128).save(buf, format="JPEG")
    return buf.getvalue()


def tiff_huge_header() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, format="TIFF")
    data = bytearray(buf.getvalue())
    # rewrite ImageWidth/ImageLength (tags 256/257) of the first IFD to 60000
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    for k in range(count):
        at = ifd + 2 + 12 * k
        tag, kind = struct.unpack("<HH", data[at : at + 4])
        if tag in (256, 257):
            if kind == 3:
                data[at + 8 : at + 10] = struct.pack("<H", 60000)
            else:
                data[at + 8 : at + 12] = struct.pack("<I", 60000)
    return bytes(data)


def dicom(
    mutate: Callable[[pydicom.Dataset], None] | None = None, name: str = "CT_small.dcm"
) -> bytes:
    ds = pydicom.dcmread(PYDICOM_DATA / name)
    if mutate is not None:
        mutate(ds)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _set(**values: object) -> Callable[[pydicom.Dataset], None]:
    def mutate(ds: pydicom.Dataset) -> None:
        for keyword, value in values.items():
            setattr(ds, keyword, value)

    return mutate


def nifti(shape: tuple[int, ...] = (16, 16, 4), *, gz: bool = False) -> bytes:
    image = nib.Nifti1Image(np.arange(np.prod(shape), dtype=np.int16).reshape(shape), np.eye(4))
    data = image.to_bytes()
    return gzip.compress(data) if gz else data


def nifti_header_only(shape: tuple[int, ...], *, gz: bool) -> bytes:
    """A NIfTI header announcing ``shape`` int16 voxels followed by almost no data."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header["vox_offset"] = 352
    data = header.binaryblock + b"\x00" * 4 + b"\x00" * 1024
    return gzip.compress(data) if gz else data


def nifti_nan_affine() -> bytes:
    image = nib.Nifti1Image(np.zeros((8, 8, 3), np.int16), np.eye(4))
    image.header.set_qform(None, code=0)
    image.header.set_sform(np.eye(4), code=1)
    data = bytearray(image.to_bytes())
    data[280:284] = np.float32(np.nan).tobytes()
    return bytes(data)


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pickle executed",))


def _truncate(make: Callable[[], bytes], keep: float) -> Callable[[], bytes]:
    return lambda: (data := make())[: max(1, int(len(data) * keep))]


def _flip(make: Callable[[], bytes], at: int) -> Callable[[], bytes]:
    def flipped() -> bytes:
        data = bytearray(make())
        data[at] ^= 0xFF
        return bytes(data)

    return flipped


REFUSED: tuple[Hostile, ...] = (
    Hostile("empty", "empty.png", lambda: b"", "empty"),
    Hostile("one-byte", "x.dcm", lambda: b"\x00", "not in a format"),
    Hostile("text", "notes.png", lambda: b"patient John Doe, see attached\n" * 20, "plain text"),
    Hostile("html", "index.png", lambda: b"<html><script>alert(1)</script></html>", "plain text"),
    Hostile("pdf", "report.dcm", lambda: b"%PDF-1.7\n" + b"\x00\x01" * 64, "PDF"),
    Hostile("zip", "scan.nii.gz", lambda: b"PK\x03\x04" + b"\x00" * 64, "ZIP"),
    Hostile("gif", "a.png", lambda: b"GIF89a" + b"\x00" * 64, "GIF"),
    Hostile("raw-pickle", "model.npy", lambda: pickle.dumps(_Evil()), "not in a format"),
    Hostile(
        "npy-pickle",
        "objects.npy",
        lambda: npy(np.array([_Evil()], dtype=object), True),
        "Python objects",
    ),
    Hostile(
        "npy-truncated",
        "cut.npy",
        _truncate(lambda: npy(np.zeros((64, 64), np.float32)), 0.5),
        "incomplete",
    ),
    Hostile("npy-bomb-header", "huge.npy", lambda: npy_header((60000, 60000)), "the limit is"),
    Hostile(
        "npy-strip",
        "strip.npy",
        lambda: npy(np.zeros((100000, 1), np.float32)),
        "longer than it is wide",
    ),
    Hostile("npy-complex", "c.npy", lambda: npy(np.zeros((4, 4), np.complex64)), "complex"),
    Hostile("png-truncated", "cut.png", _truncate(small_png, 0.6), "incomplete"),
    Hostile("png-corrupt", "bad.png", _flip(small_png, 40), "damaged"),
    Hostile(
        "png-bomb-6300",
        "bomb.png",
        lambda: png_bomb(6300),
        "6300 × 6300 pixels (39.69 MP); the limit is",
    ),
    Hostile(
        "png-bomb-header",
        "huge.png",
        lambda: png(1, 1)[:16] + struct.pack(">II", 90000, 90000) + png(1, 1)[24:],
        "the limit is",
    ),
    Hostile("png-strip-1x513", "strip.png", lambda: png(513, 1), "longer than it is wide"),
    Hostile("png-strip-513x1", "tall.png", lambda: png(1, 513), "longer than it is wide"),
    Hostile("jpeg-truncated", "cut.jpg", _truncate(jpeg, 0.5), "could not be decoded"),
    Hostile("tiff-truncated", "cut.tif", _truncate(lambda: _tiff(), 0.5), "incomplete"),
    Hostile("tiff-bomb-header", "huge.tif", tiff_huge_header, "the limit is"),
    Hostile("dicom-truncated", "cut.dcm", _truncate(dicom, 0.7), "incomplete"),
    Hostile(
        "dicom-no-pixels",
        "nopix.dcm",
        lambda: dicom(lambda ds: delattr(ds, "PixelData")),
        "pixel data is missing",
    ),
    Hostile(
        "dicom-bomb-header",
        "huge.dcm",
        lambda: dicom(_set(Rows=60000, Columns=60000)),
        "the limit is",
    ),
    Hostile(
        "dicom-strip",
        "strip.dcm",
        lambda: dicom(_set(Rows=1, Columns=16384)),
        "longer than it is wide",
    ),
    Hostile(
        "dicom-burned-in",
        "burned.dcm",
        lambda: dicom(_set(BurnedInAnnotation="YES")),
        "burned-in annotation",
    ),
    Hostile("dicom-empty-rows", "rows.dcm", lambda: dicom(_set(Rows=None)), "Rows"),
    Hostile("nifti-truncated", "cut.nii", _truncate(nifti, 0.4), "damaged"),
    Hostile(
        "nifti-gz-garbage", "bad.nii.gz", lambda: b"\x1f\x8b\x08\x00" + b"\xff" * 64, "damaged"
    ),
    Hostile(
        "nifti-bomb-4096x38",
        "bomb.nii.gz",
        lambda: nifti_header_only((4096, 4096, 38), gz=True),
        "the limit is",
    ),
    Hostile(
        "nifti-bomb-header",
        "huge.nii",
        lambda: nifti_header_only((20000, 20000, 1), gz=False),
        "the limit is",
    ),
    Hostile("nifti-nan-affine", "nan.nii", nifti_nan_affine, "orientation is broken"),
    Hostile("nifti-4d", "series.nii", lambda: nifti((8, 8, 2, 3)), "4D series"),
)
"""Inputs that must be refused with one clear sentence containing ``expect``."""


def _tiff() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8)).save(
        buf, format="TIFF"
    )
    return buf.getvalue()


ODD_NAMES: tuple[Hostile, ...] = (
    Hostile("path-dots", "..%2F..%2Fescape_SURNAMEODD.png", small_png, None),
    Hostile("shell", "$(touch PWNEDODD);rm -rf x.png", small_png, None),
    Hostile("unicode", "名前_SURNAMEODD_患者.png", small_png, None),
    Hostile("long", "L" * 200 + "SURNAMEODD.png", small_png, None),
    Hostile("hidden-dash", "-.SURNAMEODD.png", small_png, None),
    Hostile("phi-name", "SURNAMEODD_FIRSTNAMEODD_PID77001_19470317.dcm", dicom, None),
    Hostile("wrong-extension", "scan_SURNAMEODD.png", lambda: nifti(gz=True), None),
)
"""Valid content under odd, path-like or identifying names: accepted; the name goes nowhere."""

ODD_NAME_PARTS = ("SURNAMEODD", "FIRSTNAMEODD", "PID77001", "PWNEDODD", "名前", "患者")
