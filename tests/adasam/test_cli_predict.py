"""``python -m adasam predict`` end to end on real files, and its exit-2 errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from adasam.cli import main
from adasam.imaging import load_slice, with_preferred_window
from adasam.phantoms import write_dataset

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.fixture(scope="module")
def phantom_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ph")
    write_dataset("thigh-mri", 1, seed=3, out=out, size=96, progress=False)
    return next((out / "images").iterdir())


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(args)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _check_outputs(out: Path, hw: tuple[int, int]) -> dict:
    result = json.loads((out / "result.json").read_text())
    assert set(result) == {
        "input",
        "structures",
        "timings_ms",
        "model",
        "domain",
        "trained_on",
        "manual",
    }
    assert result["manual"] is None  # no --box/--point
    assert {"load", "classify", "cam", "prompts", "encode", "decode"} <= set(result["timings_ms"])
    assert Image.open(out / "slice.png").size == (hw[1], hw[0])
    for s in result["structures"]:
        assert (out / f"cam_{s['name']}.png").is_file()
        if s["found"]:
            x0, y0, x1, y1 = s["box"]
            assert 0 <= x0 <= x1 < hw[1] and 0 <= y0 <= y1 < hw[0]
            assert (out / f"prompts_{s['name']}.png").is_file()
            assert len(s["candidates"]) == 3
            scores = [c["score"] for c in s["candidates"]]
            assert scores == sorted(scores, reverse=True)
            for i, c in enumerate(s["candidates"]):
                assert c["mask"] == f"cand_{s['name']}_{i}.png"
                m = np.asarray(Image.open(out / c["mask"]))
                assert m.shape == hw and set(np.unique(m)) <= {0, 255}
    return result


@pytest.mark.parametrize("source", ["png", "CT_small.dcm", "MR_small.dcm", "nifti"])
def test_predict_on_real_files(
    source: str, phantom_png: Path, tiny_bundle_dir: Path, tmp_path: Path, capsys
) -> None:
    extra: list[str] = []
    if source == "png":
        path, hw = phantom_png, (96, 96)
    elif source == "nifti":
        vol = np.random.default_rng(0).normal(0, 50, (40, 30, 6)).astype(np.float32)
        path = tmp_path / "vol.nii.gz"
        nib.save(nib.Nifti1Image(vol, np.diag([1.0, 1.0, 3.0, 1.0])), path)
        hw, extra = (30, 40), ["--slice", "2"]
    else:
        path = PYDICOM_FILES / source
        ds = pydicom.dcmread(path)
        hw = (int(ds.Rows), int(ds.Columns))
    out = tmp_path / "out"
    rc, _, err = _run(
        ["predict", str(path), "--bundle", str(tiny_bundle_dir), "--out", str(out), *extra], capsys
    )
    assert rc == 0, err
    assert "UNTRAINED" in err  # the tiny bundle is untrained and the CLI says so
    result = _check_outputs(out, hw)
    assert result["input"]["shape"] == list(hw)
    if source == "nifti":
        assert result["input"]["slice_index"] == 2
    if source == "CT_small.dcm":
        assert result["input"]["modality"] == "CT"


def test_structure_filter_and_unknown_structure(
    phantom_png: Path, tiny_bundle_dir: Path, tmp_path: Path, capsys
) -> None:
    rc, _, _ = _run(
        [
            "predict",
            str(phantom_png),
            "--bundle",
            str(tiny_bundle_dir),
            "--structure",
            "liver",
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert rc == 0
    names = [
        s["name"] for s in json.loads((tmp_path / "o" / "result.json").read_text())["structures"]
    ]
    assert names == ["liver"]
    rc, _, err = _run(
        [
            "predict",
            str(phantom_png),
            "--bundle",
            str(tiny_bundle_dir),
            "--structure",
            "spleen",
            "--out",
            str(tmp_path / "p"),
        ],
        capsys,
    )
    assert rc == 2 and "does not segment 'spleen'" in err


def _bad_inputs(tmp: Path) -> dict[str, Path]:
    bad = {}
    (tmp / "text.png").write_text("this is not an image, just text\n" * 5)
    bad["text renamed .png"] = tmp / "text.png"
    (tmp / "empty.dcm").write_bytes(b"")
    bad["empty"] = tmp / "empty.dcm"
    raw = (PYDICOM_FILES / "CT_small.dcm").read_bytes()
    (tmp / "truncated.dcm").write_bytes(raw[: len(raw) // 3])
    bad["truncated DICOM"] = tmp / "truncated.dcm"
    np.save(tmp / "nan.npy", np.full((16, 16), np.nan, np.float32))
    bad["NaN-filled"] = tmp / "nan.npy"
    np.save(tmp / "zero.npy", np.zeros((0, 16), np.float32))
    bad["zero-sized"] = tmp / "zero.npy"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), tmp / "4d.nii")
    bad["4D"] = tmp / "4d.nii"
    Image.new("L", (30000, 2000)).save(tmp / "huge.png")
    bad["over-large"] = tmp / "huge.png"
    bad["missing"] = tmp / "nope.png"
    return bad


def test_bad_inputs_exit_2_with_one_line(tiny_bundle_dir: Path, tmp_path: Path, capsys) -> None:
    for what, path in _bad_inputs(tmp_path).items():
        rc, _, err = _run(
            ["predict", str(path), "--bundle", str(tiny_bundle_dir), "--out", str(tmp_path / "o")],
            capsys,
        )
        assert rc == 2, what
        lines = [x for x in err.strip().splitlines() if x]
        assert len(lines) == 1 and lines[0].startswith("error: "), (what, err)
        assert "Traceback" not in err


def test_bad_bundle_exits_2(phantom_png: Path, tmp_path: Path, capsys) -> None:
    rc, _, err = _run(
        ["predict", str(phantom_png), "--bundle", str(tmp_path), "--out", str(tmp_path / "o")],
        capsys,
    )
    assert rc == 2 and "config.json is missing" in err


def test_subprocess_gives_exit_2_without_traceback(tiny_bundle_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "x.png").write_text("hello")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "adasam",
            "predict",
            str(tmp_path / "x.png"),
            "--bundle",
            str(tiny_bundle_dir),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")


def test_preferred_window_only_for_hounsfield_units(phantom_png: Path) -> None:
    ct = load_slice(PYDICOM_FILES / "CT_small.dcm")
    ct_abd = with_preferred_window(ct, "ct-abdomen")
    assert ct_abd.window is not None and ct_abd.window.width == 400
    png = load_slice(phantom_png)
    assert with_preferred_window(png, "ct-abdomen") is png
