from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from adasam.errors import IngestError
from adasam.imaging import load_slice, load_volume_slices


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_volume_slices_match_load_slice(tmp_path: Path, axis: int) -> None:
    rng = np.random.default_rng(0)
    vol = rng.normal(0, 100, (7, 9, 5)).astype(np.float32)
    affine = np.diag([-0.8, 1.2, 2.5, 1.0])  # x flipped, anisotropic
    affine[:3, 3] = [10, -5, 3]
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(vol, affine), path)
    slices = load_volume_slices(path, axis=axis, window="ct-abdomen")
    assert len(slices) == vol.shape[axis]
    for k in (0, len(slices) // 2, len(slices) - 1):
        ref = load_slice(path, slice_index=k, axis=axis, window="ct-abdomen")
        np.testing.assert_array_equal(slices[k].pixels, ref.pixels)
        np.testing.assert_array_equal(slices[k].display, ref.display)
        assert slices[k].spacing == pytest.approx(ref.spacing)


def test_label_volumes_keep_integer_values(tmp_path: Path) -> None:
    lab = np.zeros((6, 6, 3), np.uint8)
    lab[1:3, 2:5, 1] = 5
    path = tmp_path / "l.nii.gz"
    nib.save(nib.Nifti1Image(lab, np.eye(4)), path)
    s = load_volume_slices(path, labels=True)
    assert sorted(np.unique(s[1].pixels)) == [0, 5] and (s[1].pixels == 5).sum() == 6
    assert not s[0].pixels.any()


def test_bad_volumes_raise(tmp_path: Path) -> None:
    (tmp_path / "x.nii").write_bytes(b"junk")
    with pytest.raises(IngestError):
        load_volume_slices(tmp_path / "x.nii")
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), tmp_path / "2d.nii")
    with pytest.raises(IngestError, match="3D"):
        load_volume_slices(tmp_path / "2d.nii")
