"""Slices: de-identified pixels (blob store) plus their description (database)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import validate
from storage.blobs import check_hash
from storage.deid import scrub_metadata, scrub_text
from storage.errors import BlobCorruptError, InvalidInputError, NotFoundError
from storage.models import Slice, utcnow
from storage.records import SliceRecord, slice_record
from storage.store import Store
from storage.worklist import lease_in_session


def pixels_hash(pixels: NDArray[np.float32]) -> str:
    """The slice identity: sha256 of ``float32:{H}x{W}:`` and the little-endian float32 bytes
    of the pixels in C order (the same definition as ``adasam.imaging.Slice.content_hash``)."""
    array = np.ascontiguousarray(pixels, dtype="<f4")
    height, width = array.shape
    digest = hashlib.sha256()
    digest.update(f"float32:{height}x{width}:".encode("ascii"))
    digest.update(array.tobytes())
    return digest.hexdigest()


def _encode_pixels(pixels: NDArray[np.float32]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(pixels, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def _encode_display(display: NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(display)).save(buffer, format="PNG")
    return buffer.getvalue()


def _check_pixels(pixels: object) -> NDArray[np.float32]:
    array = np.asarray(pixels)
    if array.ndim != 2 or 0 in array.shape:
        raise InvalidInputError(f"pixels must be a non-empty 2-D array; got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InvalidInputError(f"pixels must be numeric, got dtype {array.dtype}")
    result = array.astype(np.float32)
    if not np.isfinite(result).all():
        raise InvalidInputError("pixels hold NaN or infinite values")
    return result


def _check_display(display: object, shape: tuple[int, int]) -> NDArray[np.uint8]:
    array = np.asarray(display)
    if array.dtype != np.uint8:
        raise InvalidInputError(f"display must be uint8, got {array.dtype}")
    if array.shape[:2] != shape or array.ndim not in (2, 3):
        raise InvalidInputError(
            f"display has shape {array.shape}; expected {shape} or {(*shape, 3)} like the pixels"
        )
    if array.ndim == 3 and array.shape[2] != 3:
        raise InvalidInputError(f"display must be RGB (H, W, 3); got {array.shape}")
    return array


def _check_spacing(spacing: object) -> tuple[float, float] | None:
    values = validate.number_list(spacing, "spacing", (2,))
    if values is None:
        return None
    if min(values) <= 0:
        raise InvalidInputError(f"spacing must be positive millimetres, got {values}")
    return values[0], values[1]


def _base_name(name: str) -> str:
    return PurePosixPath(PureWindowsPath(name).name).name


def slice_by_hash(session: Session, content_hash: str) -> Slice:
    """The slice row with ``content_hash``, or NotFoundError."""
    row = session.scalar(select(Slice).where(Slice.content_hash == content_hash))
    if row is None:
        raise NotFoundError(f"unknown slice {content_hash}; record it with record_slice() first")
    return row


def record_slice(
    store: Store,
    *,
    content_hash: str,
    pixels: NDArray[np.floating[Any]],
    display: NDArray[np.uint8],
    modality: str,
    units: str = "",
    spacing: tuple[float, float] | None = None,
    window_level: float | None = None,
    window_width: float | None = None,
    window_name: str | None = None,
    source_format: str = "",
    source_name: str = "",
    metadata: Mapping[str, Any] | None = None,
    lease_to: str | None = None,
) -> SliceRecord:
    """Store a slice (idempotent: the same pixels give back the existing record).

    ``lease_to``: an annotator (already known, see ``ensure_annotator``) who is working on this
    slice right now; it is leased to them in the same transaction, so the worklist cannot hand
    it to someone else between this call and their correction.

    ``content_hash`` must be :func:`pixels_hash` of the pixels (what ``adasam.imaging`` computes);
    a mismatch is refused, because the hash is the slice's identity. Metadata go through the
    de-identification deny-list before anything is written, and the source file name keeps only
    its base name, with any value the deny-list removed scrubbed from it.
    """
    content_hash = check_hash(content_hash, what="content_hash")
    array = _check_pixels(pixels)
    actual = pixels_hash(array)
    if actual != content_hash:
        raise InvalidInputError(
            f"content_hash {content_hash} does not match the pixels (their sha256 is {actual})"
        )
    shape = (int(array.shape[0]), int(array.shape[1]))
    shown = _check_display(display, shape)
    values: dict[str, Any] = {
        "modality": validate.text(modality, "modality", max_length=32),
        "units": validate.text(units, "units", max_length=32, allow_empty=True),
        "window_level": validate.optional_finite(window_level, "window_level"),
        "window_width": validate.optional_finite(window_width, "window_width"),
        "window_name": None
        if window_name is None
        else validate.text(window_name, "window_name", max_length=64, allow_empty=True),
        "source_format": validate.text(
            source_format, "source_format", max_length=32, allow_empty=True
        ),
    }
    if values["window_width"] is not None and values["window_width"] <= 0:
        raise InvalidInputError(f"window_width must be positive, got {window_width}")
    scrubbed = scrub_metadata(validate.json_object(metadata, "metadata"))
    name = validate.text(source_name, "source_name", max_length=4096, allow_empty=True)
    name = scrub_text(_base_name(name), scrubbed.dropped_values)[-255:]
    spacing_values = _check_spacing(spacing)

    pixels_blob = store.blobs.put(_encode_pixels(array))
    display_blob = store.blobs.put(_encode_display(shown))
    row_values = {
        **values,
        "content_hash": content_hash,
        "height": shape[0],
        "width": shape[1],
        "spacing_row": None if spacing_values is None else spacing_values[0],
        "spacing_col": None if spacing_values is None else spacing_values[1],
        "source_name": name,
        "metadata": scrubbed.metadata,
        "pixels_blob": pixels_blob,
        "display_blob": display_blob,
        "created_at": utcnow(),
    }
    with store.write() as session:
        # Blobs are written first: a row never points at a missing blob, and an orphan blob
        # left by a failed transaction is harmless (content-addressed, reused on retry).
        _insert_if_new(session, store.dialect, row_values)
        row = slice_by_hash(session, content_hash)
        if lease_to is not None:
            lease_in_session(store, session, row.id, lease_to)
        return slice_record(row)


def _insert_if_new(session: Session, dialect: str, row_values: dict[str, Any]) -> None:
    """Insert a slice row unless one with the same content hash exists (race-free)."""
    table = cast(Table, Slice.__table__)
    values = {table.c[key]: value for key, value in row_values.items()}
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        session.execute(
            insert(table).values(values).on_conflict_do_nothing(index_elements=["content_hash"])
        )
        return
    hash_column = table.c["content_hash"]
    if session.scalar(select(hash_column).where(hash_column == row_values["content_hash"])):
        return
    try:
        with session.begin_nested():
            session.execute(table.insert().values(values))
    except IntegrityError:
        pass  # a concurrent writer stored the same slice first


def get_slice(store: Store, content_hash: str) -> SliceRecord:
    """The stored slice with ``content_hash``."""
    with store.read() as session:
        return slice_record(slice_by_hash(session, check_hash(content_hash, what="content_hash")))


def load_pixels(store: Store, record: SliceRecord) -> NDArray[np.float32]:
    """The slice's float32 pixels, read back from the blob store (hash-checked)."""
    data = store.blobs.get(record.pixels_blob)
    array = np.load(io.BytesIO(data), allow_pickle=False)
    if array.shape != record.shape:
        raise BlobCorruptError(f"pixels blob {record.pixels_blob} has shape {array.shape}")
    return np.asarray(array, dtype=np.float32)


def load_display(store: Store, record: SliceRecord) -> NDArray[np.uint8]:
    """The slice's display image (uint8), read back from the blob store (hash-checked)."""
    with Image.open(io.BytesIO(store.blobs.get(record.display_blob))) as image:
        return np.asarray(image).copy()
