"""Uploads leave nothing behind: each file is read once and deleted from Gradio's upload cache.

Gradio writes every upload, byte for byte and under its original name, to a folder of its
upload cache (``GRADIO_TEMP_DIR``; one folder per file) and only removes it hours later. A DICOM
file holds the patient's name and identifiers, and the file name itself may too, so the studio
takes the bytes into memory (:func:`take_upload`) and deletes the cached copy before decoding,
whether decoding succeeds or not. What a crash left there is removed at start-up
(:func:`sweep_upload_cache`). Volumes keep their bytes in the session's memory (never on disk) so
that another slice can be shown.

Only files inside the upload cache are ever deleted: the shipped examples and any other path are
left alone.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
from pathlib import Path

from studio.errors import StudioError

log = logging.getLogger("studio")


def gradio_upload_root() -> Path:
    """Gradio's upload cache folder (``GRADIO_TEMP_DIR``, else ``<tmp>/gradio``)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return path.resolve() != root.resolve()


def discard_upload(path: Path, root: Path) -> bool:
    """Delete an uploaded file and its (then empty) per-upload folder, if it is in ``root``;
    whether anything was deleted."""
    path = Path(path)
    if not _inside(path, root):
        return False
    removed = False
    try:
        path.unlink()
        removed = True
    except FileNotFoundError:
        pass
    except OSError as exc:  # never keep an upload silently: say so in the log (no name)
        log.error("an upload could not be deleted from the upload cache: %s", exc.strerror)
    folder = path.resolve().parent
    if folder != root.resolve() and _inside(folder, root):
        with contextlib.suppress(OSError):  # another file of the folder is still being handled
            folder.rmdir()
    return removed


def take_upload(path: str | Path, root: Path) -> bytes:
    """The bytes of an uploaded file; the cached copy is deleted before they are returned.

    Raises:
        StudioError: the file is no longer there (already taken, or removed).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StudioError(
            "The uploaded file is no longer on the server; upload it again."
        ) from None
    except IsADirectoryError:
        raise StudioError("A folder cannot be uploaded; choose a file.") from None
    except OSError as exc:
        raise StudioError(f"The uploaded file could not be read ({exc.strerror}).") from None
    finally:
        discard_upload(path, root)
    return data


STUDIO_CACHE_NAME = "adasam-studio-uploads"
"""Name of the upload-cache folder the studio owns (``app.py`` points ``GRADIO_TEMP_DIR`` at
``<tmp>/adasam-studio-uploads`` unless it is set)."""

_GRADIO_FOLDER = re.compile(r"^[0-9a-f]{64}$")  # Gradio names a folder by the sha256 of its file


def _swept(entry: Path, own: bool) -> bool:
    """Whether the start-up sweep removes ``entry``: anything in the studio's own folder; in a
    folder set by the administrator (it may be shared, e.g. ``/tmp``) only Gradio's own
    per-upload folders."""
    return own or (
        entry.is_dir() and not entry.is_symlink() and bool(_GRADIO_FOLDER.match(entry.name))
    )


def sweep_upload_cache(root: Path) -> int:
    """Remove what earlier runs left in the upload cache (at start-up, before the server serves
    anyone): everything when ``root`` is the studio's own folder (:data:`STUDIO_CACHE_NAME`),
    else only Gradio's per-upload folders. The number of entries removed."""
    root = Path(root)
    if not root.is_dir():
        return 0
    own = root.name == STUDIO_CACHE_NAME
    count = 0
    for entry in root.iterdir():
        if not _swept(entry, own):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            count += 1
        except OSError as exc:
            log.error("the upload cache could not be swept completely: %s", exc.strerror)
    if count:
        log.info("upload cache: removed %d entries left by an earlier run", count)
    return count
