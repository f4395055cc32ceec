"""Downloads: the final mask as PNG and NIfTI, and an overlay image.

Files go to a fresh folder under a scratch directory (one per request, removed after an hour);
Gradio copies them into its own cache to serve them.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from adasam.imaging import Slice
from adasam.render import mask_overlay, mask_png
from storage.exports.nifti_io import write_slice_nifti
from studio.views import FINAL_COLOUR

MAX_AGE_S = 3600.0


def safe_stem(text: str) -> str:
    """A file-name-safe version of ``text`` (letters, digits, ``._-``), never empty."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return stem[:80] or "slice"


def _source_stem(name: str) -> str:
    for suffix in (".nii.gz", ".nii", ".dcm", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


class ExportArea:
    """A scratch directory for download files, pruned of folders older than ``max_age_s``."""

    def __init__(self, root: Path, max_age_s: float = MAX_AGE_S) -> None:
        self.root = Path(root)
        self.max_age_s = max_age_s

    def new_folder(self) -> Path:
        """A new empty folder (after removing expired ones)."""
        self.root.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - self.max_age_s
        for old in self.root.iterdir():
            try:
                if old.is_dir() and old.stat().st_mtime < cutoff:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                continue  # another request removed it first
        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        return folder

    def write(self, slice_: Slice, structure: str, mask: np.ndarray) -> list[Path]:
        """Write ``<case>_<structure>_mask.png`` (0/255), ``_mask.nii.gz`` (uint8 0/1 with the
        pixel spacing) and ``_overlay.png``; return the three paths."""
        if mask.shape != slice_.shape or mask.dtype != np.bool_:
            raise ValueError(f"mask must be bool {slice_.shape}, got {mask.dtype} {mask.shape}")
        folder = self.new_folder()
        stem = f"{safe_stem(_source_stem(slice_.source_name))}_{safe_stem(structure)}"
        png = folder / f"{stem}_mask.png"
        nifti = folder / f"{stem}_mask.nii.gz"
        overlay = folder / f"{stem}_overlay.png"
        mask_png(mask).save(png)
        write_slice_nifti(nifti, mask.astype(np.uint8), slice_.spacing)
        Image.fromarray(mask_overlay(np.asarray(slice_.display), mask, FINAL_COLOUR)).save(overlay)
        return [png, nifti, overlay]
