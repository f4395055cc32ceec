"""Open an upload (a path or bytes) and recognise its format from its content, never its name."""

from __future__ import annotations

import io
import os
import struct
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from adasam.errors import IngestError

HEAD_BYTES = 65_536
"""How much of the start of a file is read to recognise it."""

SUPPORTED_HINT = "Upload a PNG, JPEG, TIFF, DICOM (.dcm) or NIfTI (.nii/.nii.gz) file."

_TEXTISH = {"\t", "\n", "\r", "\f", "\v"}


@dataclass(frozen=True)
class Source:
    """An upload: either a file on disk or bytes in memory.

    Attributes:
        path: the file, when the upload is on disk.
        data: the bytes, when the upload is in memory.
        size: length in bytes.
        head: the first ``HEAD_BYTES`` bytes (fewer for a shorter file).
        name: the safe base name to show and store.
    """

    path: Path | None
    data: bytes | None
    size: int
    head: bytes
    name: str

    def open(self) -> BinaryIO:
        """A fresh binary file object positioned at 0 (the caller closes it)."""
        if self.path is not None:
            return open(self.path, "rb")
        assert self.data is not None
        return io.BytesIO(self.data)


def safe_name(name: str | os.PathLike[str] | None, fallback: str = "upload") -> str:
    """The base name of ``name`` (``/`` and ``\\`` both separate folders), control characters
    removed, at most 255 characters; ``fallback`` when that leaves nothing."""
    if name is None:
        return fallback
    text = os.fspath(name) if isinstance(name, os.PathLike) else str(name)
    base = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    return base[:255] or fallback


def open_source(source: str | os.PathLike[str] | bytes, name: str | None = None) -> Source:
    """Wrap a path or bytes as a :class:`Source`.

    Raises:
        IngestError: missing file, a folder, an unreadable file, or a wrong argument type.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return Source(None, data, len(data), data[:HEAD_BYTES], safe_name(name))
    if not isinstance(source, (str, os.PathLike)):
        raise IngestError(f"Expected a file path or the file's bytes, got {type(source).__name__}.")
    path = Path(source)
    shown = safe_name(name if name is not None else path.name, fallback="file")
    try:
        if path.is_dir():
            raise IngestError(f"'{shown}' is a folder, not a file. {SUPPORTED_HINT}")
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
            size = os.fstat(fh.fileno()).st_size
    except FileNotFoundError as exc:
        raise IngestError(f"The file '{shown}' was not found.") from exc
    except OSError as exc:
        raise IngestError(f"The file '{shown}' could not be read ({exc.strerror}).") from exc
    return Source(path, None, size, head, safe_name(name if name is not None else path.name))


def _gunzip_head(head: bytes, n: int = 1024) -> bytes | None:
    """The first ``n`` decompressed bytes of a gzip stream, or None if it is not valid gzip."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, n)
    except zlib.error:
        return None


def nifti_version(header: bytes) -> int | None:
    """1 or 2 for a single-file NIfTI header (``n+1`` / ``n+2`` magic), None otherwise.

    Raises:
        IngestError: for the header half of a ``.hdr``/``.img`` pair (magic ``ni1``/``ni2``).
    """
    if len(header) >= 348:
        (size_le,) = struct.unpack("<i", header[:4])
        (size_be,) = struct.unpack(">i", header[:4])
        if 348 in (size_le, size_be):
            magic = header[344:348]
            if magic == b"n+1\x00":
                return 1
            if magic == b"ni1\x00":
                raise _pair_error()
        if 540 in (size_le, size_be):
            magic = header[4:8]
            if magic == b"n+2\x00":
                return 2
            if magic == b"ni2\x00":
                raise _pair_error()
    return None


def _pair_error() -> IngestError:
    return IngestError(
        "This is the header half of a two-file NIfTI/Analyze pair (.hdr + .img), which cannot "
        "be uploaded alone. Convert it to a single .nii or .nii.gz file first."
    )


def looks_like_text(head: bytes) -> bool:
    """True when the start of a file reads as text (UTF-8, almost only printable characters)."""
    sample = head[:4096]
    if not sample or b"\x00" in sample:
        return False
    text = sample.decode("utf-8", errors="ignore")
    if len(text) < len(sample) * 0.5:
        return False
    printable = sum(1 for ch in text if ch.isprintable() or ch in _TEXTISH)
    return printable >= 0.95 * len(text)


_OTHER_FORMATS: tuple[tuple[bytes, int, str], ...] = (
    (b"%PDF", 0, "a PDF document"),
    (b"PK\x03\x04", 0, "a ZIP archive (or .npz / Office file)"),
    (b"GIF8", 0, "a GIF image"),
    (b"\x00\x00\x00\x0cjP  ", 0, "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", 0, "a JPEG 2000 codestream"),
    (b"\x89HDF\r\n\x1a\n", 0, "an HDF5 file"),
    (b"MATLAB", 0, "a MATLAB file"),
    (b"NRRD", 0, "an NRRD volume"),
    (b"BZh", 0, "a bzip2 archive"),
    (b"\xfd7zXZ\x00", 0, "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive"),
    (b"Rar!", 0, "a RAR archive"),
)


def detect_format(src: Source) -> str:
    """The format of ``src`` from its bytes: ``"png"``, ``"jpeg"``, ``"tiff"``, ``"dicom"``,
    ``"nifti"``, ``"npy"``.

    DICOM is recognised by ``DICM`` at byte 128, or (files without the 128-byte preamble) by a
    first element in group 0002 or 0008; NIfTI by ``sizeof_hdr`` and its magic, also inside
    gzip.

    Raises:
        IngestError: empty, plain text, a known unsupported format, or unrecognised bytes.
    """
    head = src.head
    if src.size == 0 or not head:
        raise IngestError(f"The file is empty (0 bytes). {SUPPORTED_HINT}")
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"  # first: a DICOM preamble may itself start like a TIFF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"\x1f\x8b"):
        inner = _gunzip_head(head)
        if inner is None:
            raise IngestError(
                "This gzip-compressed file is damaged: it could not be decompressed. "
                "Export the volume again as .nii.gz."
            )
        if nifti_version(inner) is not None:
            return "nifti"
        if len(inner) < 348 and src.size <= len(head):
            raise IngestError(
                "This gzip-compressed file is too short to hold a NIfTI header: it is truncated "
                "or empty. Export the volume again."
            )
        raise IngestError(
            "This gzip-compressed file does not hold a NIfTI volume. " + SUPPORTED_HINT
        )
    if nifti_version(head) is not None:
        return "nifti"
    if (
        len(head) < 348
        and len(head) >= 4
        and 348 in struct.unpack("<i", head[:4]) + struct.unpack(">i", head[:4])
    ):
        raise IngestError(
            "This NIfTI file is truncated: it ends inside its header. Export the volume again."
        )
    for magic, offset, what in _OTHER_FORMATS:
        if head[offset : offset + len(magic)] == magic:
            raise IngestError(
                f"This file is {what}, which the studio cannot read. {SUPPORTED_HINT}"
            )
    if head[:2] == b"BM" and len(head) >= 26 and struct.unpack("<I", head[2:6])[0] == src.size:
        raise IngestError(
            f"This file is a BMP image, which the studio cannot read. {SUPPORTED_HINT}"
        )
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        raise IngestError(
            f"This file is a WebP image, which the studio cannot read. {SUPPORTED_HINT}"
        )
    if head[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08"):
        return "dicom"  # DICOM without its preamble: pydicom decides (force=True)
    if looks_like_text(head):
        raise IngestError(
            "This file is not a readable image: it looks like plain text. " + SUPPORTED_HINT
        )
    raise IngestError(
        "This file is not in a format the studio can read (it is not PNG, JPEG, TIFF, DICOM, "
        "NIfTI or NumPy .npy). " + SUPPORTED_HINT
    )
