"""Slices to storage and back: the studio's :class:`~adasam.imaging.Slice` ↔ storage records."""

from __future__ import annotations

import numpy as np

from adasam.imaging import Slice, Window
from storage import SliceRecord, Store, load_display, load_pixels, record_slice


def save_slice(store: Store, slice_: Slice, lease_to: str | None = None) -> SliceRecord:
    """Store the slice (idempotent: the same pixels give the existing record), leased to
    ``lease_to`` when given (the annotator submitting it; see ``storage.record_slice``)."""
    window = slice_.window
    return record_slice(
        store,
        content_hash=slice_.content_hash,
        pixels=np.asarray(slice_.pixels),
        display=np.asarray(slice_.display),
        modality=slice_.modality,
        units=slice_.units,
        spacing=slice_.spacing,
        window_level=None if window is None else window.level,
        window_width=None if window is None else window.width,
        window_name=None if window is None else window.name,
        source_format=slice_.source_format,
        lease_to=lease_to,
        source_name=slice_.source_name,
        metadata=dict(slice_.metadata),
    )


def slice_from_record(store: Store, record: SliceRecord) -> Slice:
    """Rebuild the slice that was stored (pixels and display as they were), so the display
    window can still be changed."""
    pixels = load_pixels(store, record).astype(np.float32, copy=False)
    display = load_display(store, record)
    if display.ndim == 2:
        display = np.repeat(display[:, :, None], 3, axis=2)
    window = None
    if record.window_level is not None and record.window_width is not None:
        window = Window(record.window_level, record.window_width, record.window_name or "custom")
    return Slice(
        pixels=pixels,
        display=display,
        spacing=record.spacing,
        modality=record.modality,
        units=record.units,
        window=window,
        source_format=record.source_format,
        source_name=record.source_name or f"case-{record.id}",
        metadata=dict(record.metadata),
        default_window=window,
        default_display=display if window is None or window.name == "dicom-voi-lut" else None,
    )
