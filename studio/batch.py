"""Putting a batch of slices in the worklist: each file becomes one stored slice."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from adasam.errors import IngestError
from adasam.imaging import load_slice
from storage import NotFoundError, Store, get_slice
from storage.errors import StorageError
from studio.stored_slices import save_slice


@dataclass(frozen=True)
class ImportReport:
    """What an import did: new slices, slices already stored, files refused (with why)."""

    added: tuple[str, ...] = ()
    already: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = field(default=())

    def message(self) -> str:
        """A short summary for the page."""
        parts = [f"{len(self.added)} case(s) added to the worklist"]
        if self.already:
            parts.append(f"{len(self.already)} already there")
        text = "; ".join(parts) + "."
        for name, why in self.failed:
            text += f"\n- {name} was not added: {why}"
        return text


def import_files(
    store: Store,
    paths: Iterable[Path | bytes],
    *,
    max_pixels: int,
    names: Iterable[str] | None = None,
    allow_burned_in: bool = False,
) -> ImportReport:
    """Decode each file (any format :func:`~adasam.imaging.load_slice` reads; the middle slice
    of a volume) and store it as a worklist case. Files that cannot be read are reported, not
    raised.

    Args:
        store: the open store.
        paths: the files (or their bytes), in order.
        max_pixels: the largest slice accepted.
        names: the names to report them by (default: the files' base names). Only the report
            shows them; the stored case is named by its pixels (``case-…``).
        allow_burned_in: accept DICOM images that declare burned-in annotation.
    """
    path_list = [p if isinstance(p, bytes) else Path(p) for p in paths]
    if names is None:
        name_list = [
            f"file {i + 1}" if isinstance(p, bytes) else p.name for i, p in enumerate(path_list)
        ]
    else:
        name_list = list(names)
    added: list[str] = []
    already: list[str] = []
    failed: list[tuple[str, str]] = []
    for path, name in zip(path_list, name_list, strict=True):
        try:
            slice_ = load_slice(
                path, name=name, max_pixels=max_pixels, allow_burned_in=allow_burned_in
            )
        except IngestError as exc:
            failed.append((name, str(exc)))
            continue
        except OSError as exc:
            failed.append((name, f"the file could not be opened ({exc.strerror or exc})"))
            continue
        try:
            get_slice(store, slice_.content_hash)
            already.append(name)
            continue
        except NotFoundError:
            pass
        try:
            save_slice(store, slice_)
        except StorageError as exc:
            failed.append((name, str(exc)))
            continue
        added.append(name)
    return ImportReport(tuple(added), tuple(already), tuple(failed))
