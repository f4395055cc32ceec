from __future__ import annotations

import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from studio.exports import ExportArea, safe_stem
from tests.studio.conftest import new_case


def test_mask_png_nifti_and_overlay_are_written_binary_at_the_slice_shape(tmp_path: Path) -> None:
    case = new_case()
    mask = np.zeros((128, 128), bool)
    mask[10:40, 20:90] = True
    png, nifti, overlay = ExportArea(tmp_path).write(case.slice, "liver", mask)
    stem = case.slice.source_name  # the neutral case name, never the uploaded file's
    assert stem.startswith("case-") and "CT_small" not in str(png)
    assert png.name == f"{stem}_liver_mask.png" and nifti.name == f"{stem}_liver_mask.nii.gz"
    read = np.asarray(Image.open(png))
    assert read.shape == (128, 128) and set(np.unique(read)) == {0, 255}
    assert np.array_equal(read == 255, mask)
    image = nib.load(str(nifti))
    data = np.asarray(image.dataobj)
    assert data.shape == (128, 128, 1) and data.dtype == np.uint8
    assert np.array_equal(data[:, :, 0].T.astype(bool), mask)
    assert np.allclose(image.header.get_zooms()[:2], (0.661468, 0.661468), atol=1e-5)
    assert np.asarray(Image.open(overlay)).shape == (128, 128, 3)


def test_old_download_folders_are_removed(tmp_path: Path) -> None:
    area = ExportArea(tmp_path, max_age_s=60)
    old = area.new_folder()
    past = time.time() - 120
    os.utime(old, (past, past))
    fresh = area.new_folder()
    assert not old.exists() and fresh.exists()


def test_file_stems_are_safe() -> None:
    assert safe_stem("../../etc/passwd") == "etc-passwd"
    assert safe_stem("a b/c") == "a-b-c" and safe_stem("///") == "slice"
