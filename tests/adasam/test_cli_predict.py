"""``python -m adasam predict`` end to end on real files, and its exit-2 errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from adasam.cli import main
from adasam.imaging import load_slice, with_preferred_window
from adasam.phantoms import write_dataset
from adasam.prompts import Prompts
from adasam.shown import Shown

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
        "pictures",
    }
    assert result["manual"] is None  # no --box/--point
    assert result["pictures"] == {  # within the default bound: drawn at the slice's size
        "shape": list(hw),
        "max_side": 2048,
        "shrunk": False,
        "scale_xy": [1.0, 1.0],
    }
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


# -- pictures at a bounded size (issue 13, bounded cost) -----------------------------------
def _stretched(phantom_png: Path, hw: tuple[int, int], path: Path) -> Path:
    image = Image.open(phantom_png).resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
    image.save(path)
    return path


def _size(path: Path) -> tuple[int, int]:
    width, height = Image.open(path).size
    return height, width


def test_a_large_slice_is_drawn_bounded_and_its_masks_keep_the_slice_size(
    phantom_png: Path, tiny_bundle_dir: Path, tmp_path: Path, capsys
) -> None:
    path = _stretched(phantom_png, (150, 300), tmp_path / "wide.png")
    out = tmp_path / "out"
    rc, _, err = _run(
        [
            "predict", str(path), "--bundle", str(tiny_bundle_dir), "--picture-side", "128",
            "--box", "20,20,200,120", "--label", "region", "--out", str(out),
        ],
        capsys,
    )  # fmt: skip
    assert rc == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["input"]["shape"] == [150, 300]
    assert result["pictures"] == {
        "shape": [64, 128],
        "max_side": 128,
        "shrunk": True,
        "scale_xy": [round(128 / 300, 6), round(64 / 150, 6)],
    }
    display = load_slice(path).display
    assert np.array_equal(np.asarray(Image.open(out / "slice.png")), Shown.of(display, 128).image)
    pictures = ["slice.png", "manual_region.png"]
    pictures += [f"cam_{s['name']}.png" for s in result["structures"]]
    pictures += [f"prompts_{s['name']}.png" for s in result["structures"] if s["found"]]
    assert {p: _size(out / p) for p in pictures} == {p: (64, 128) for p in pictures}
    masks = [c["mask"] for s in result["structures"] for c in s["candidates"]]
    masks += [c["mask"] for c in result["manual"]["candidates"]]
    assert any(m.startswith("manual_region_") for m in masks)
    assert {m: _size(out / m) for m in masks} == {m: (150, 300) for m in masks}
    assert result["manual"]["box"] == [20.0, 20.0, 200.0, 120.0], "prompts stay in slice pixels"


def test_the_default_bound_is_2048_pixels(
    phantom_png: Path, tiny_bundle_dir: Path, tmp_path: Path, capsys
) -> None:
    path = _stretched(phantom_png, (300, 2100), tmp_path / "long.png")
    out = tmp_path / "out"
    rc, _, err = _run(
        ["predict", str(path), "--bundle", str(tiny_bundle_dir), "--out", str(out)], capsys
    )
    assert rc == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["pictures"]["shape"] == [293, 2048] and result["pictures"]["shrunk"]
    assert _size(out / "slice.png") == (293, 2048)
    for s in result["structures"]:
        assert _size(out / f"cam_{s['name']}.png") == (293, 2048)
        assert all(_size(out / c["mask"]) == (300, 2100) for c in s["candidates"])


def test_the_prompts_picture_is_drawn_where_the_prompts_are(
    tiny_bundle_dir: Path, tmp_path: Path
) -> None:
    """The automatic box and the dense prompt's region land on the shrunk picture where they
    are on the slice (the tiny model may find nothing, so the drawing is called directly)."""
    from adasam.commands.predict import _write_prompted
    from adasam.predictor import Predictor
    from adasam.render import BOX_COLOUR

    predictor = Predictor.from_dir(tiny_bundle_dir, "cpu", 1)
    frame = predictor.frame((400, 800))
    region = np.zeros((400, 800), bool)
    region[100:300, 200:600] = True
    prompts = Prompts(
        region=region,
        box=np.array([200, 100, 599, 299]),
        mask_logits=np.full((frame.mask_size, frame.mask_size), -5.0, np.float32),
        point=None,
    )
    structure = SimpleNamespace(name="liver", prompts=prompts, candidates=[])
    shown = Shown.of(np.zeros((400, 800, 3), np.uint8), 200)  # a quarter of the slice's size
    entry = _write_prompted(tmp_path, shown, frame, structure)
    assert entry["box"] == [200, 100, 599, 299]
    drawn = np.asarray(Image.open(tmp_path / "prompts_liver.png"))
    assert drawn.shape == (100, 200, 3)
    ys, xs = np.nonzero((drawn == BOX_COLOUR).all(axis=-1))
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (50, 149, 25, 74)


def test_a_bad_picture_side_exits_2(
    phantom_png: Path, tiny_bundle_dir: Path, tmp_path: Path, capsys
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(phantom_png), "--bundle", str(tiny_bundle_dir),
              "--picture-side", "0", "--out", str(tmp_path / "o")])  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--picture-side" in err and "expected a whole number of pixels >= 1" in err
