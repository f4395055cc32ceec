"""Coherent 3D phantoms: determinism, smooth change along z, appear/disappear, writers, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adasam.cli import main
from adasam.imaging import load_volume
from adasam.phantoms import generate_volume
from adasam.phantoms.volumes import write_volume


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(1.0, float(a.sum() + b.sum()))


@pytest.fixture(scope="module")
def vols() -> dict:
    return {k: generate_volume(k, 21, 0, depth=20, size=96) for k in ("thigh-mri", "liver-ct")}


def test_deterministic_and_distinct(vols: dict) -> None:
    again = generate_volume("liver-ct", 21, 0, depth=20, size=96)
    np.testing.assert_array_equal(again.image, vols["liver-ct"].image)
    np.testing.assert_array_equal(again.label, vols["liver-ct"].label)
    other = generate_volume("liver-ct", 21, 1, depth=20, size=96)
    assert not np.array_equal(other.label, again.label)
    v = vols["thigh-mri"]
    assert v.image.shape == v.label.shape == (20, 96, 96)
    assert v.image.dtype == np.float32 and v.label.dtype == np.uint8
    assert v.spacing[0] == pytest.approx((1.02 - 0.2) / 19 * 400, abs=1e-3)


@pytest.mark.parametrize(
    ("kind", "structure", "appears", "disappears"),
    [
        ("thigh-mri", "vastus_medialis", True, False),
        ("thigh-mri", "vastus_lateralis", False, True),
        ("liver-ct", "liver", True, True),
    ],
)
def test_structures_change_smoothly_and_come_and_go(
    vols: dict, kind: str, structure: str, appears: bool, disappears: bool
) -> None:
    m = vols[kind].mask(structure)
    area = m.sum(axis=(1, 2))
    present = np.flatnonzero(area > 0)
    assert (present[0] > 0) == appears and (present[-1] < len(area) - 1) == disappears
    assert np.all(np.diff(present) == 1)  # one contiguous run of slices
    big = [k for k in range(len(area) - 1) if min(area[k], area[k + 1]) > 150]
    assert len(big) >= 4
    assert min(_dice(m[k], m[k + 1]) for k in big) > 0.75
    assert np.median([_dice(m[k], m[k + 1]) for k in big]) > 0.85


def test_written_nifti_and_dicom_read_back(vols: dict, tmp_path: Path) -> None:
    v = vols["liver-ct"]
    paths = write_volume(v, str(tmp_path), dicom=True)
    image = load_volume(Path(paths[0]))
    assert image.shape == v.image.shape and image.spacing == pytest.approx(v.spacing, abs=1e-4)
    # volumes read back inferior→superior; the phantom runs head→feet
    np.testing.assert_allclose(image.voxels, v.image[::-1], atol=1e-3)
    d = v.image.shape[0]
    for k, r, c in [(0, 0, 0), (3, 10, 50)]:
        np.testing.assert_allclose(
            image.affine @ [k, r, c, 1], v.affine @ [d - 1 - k, r, c, 1], atol=1e-3
        )
    label = load_volume(Path(paths[1]))
    np.testing.assert_array_equal(label.voxels, v.label[::-1])
    series = load_volume([Path(p) for p in paths[2:]])
    assert series.shape == v.image.shape and series.spacing == pytest.approx(v.spacing, abs=1e-3)
    np.testing.assert_array_equal(series.voxels, np.rint(v.image[::-1]))


def test_cli_writes_volumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "phantoms",
        "--kind",
        "thigh-mri",
        "--n",
        "1",
        "--volumes",
        "--depth",
        "3",
        "--size",
        "64",
    ]
    assert main([*argv, "--dicom", "--out", str(tmp_path), "--quiet"]) == 0
    assert "wrote 1 thigh-mri volumes" in capsys.readouterr().out
    assert len(list(tmp_path.glob("*.nii.gz"))) == 2
    assert len(list((tmp_path / "thigh-mri_s0_vol000_dicom").glob("*.dcm"))) == 3
    assert main(["phantoms", "--kind", "thigh-mri", "--n", "1", "--dicom", "--out", "x"]) == 2
    assert capsys.readouterr().err.strip() == "error: --dicom needs --volumes"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="depth"):
        generate_volume("liver-ct", 0, 0, depth=1)
    with pytest.raises(ValueError, match="z_range"):
        generate_volume("liver-ct", 0, 0, z_range=(0.5, 0.2))
    with pytest.raises(ValueError, match="unknown phantom kind"):
        generate_volume("brain", 0, 0)
