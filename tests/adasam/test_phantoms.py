"""Tests of the procedural phantoms (adasam.phantoms)."""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage, special

from adasam.cli import main
from adasam.phantoms import (
    GENERATOR,
    STRUCTURES,
    TARGETS,
    PhantomCase,
    PhantomDebug,
    decode_png,
    encode_png,
    generate,
    generate_case,
    read_case,
    read_info,
    write_dataset,
)

KINDS = ["thigh-mri", "liver-ct"]
N_STATS = 64  # 8 subjects


@pytest.fixture(scope="module")
def cases() -> dict[str, list[tuple[PhantomCase, PhantomDebug]]]:
    """The first N_STATS cases of seed 3 of each kind, with their debug records."""
    return {k: [generate_case(k, 3, i) for i in range(N_STATS)] for k in KINDS}


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(mask)
    return float(rows.mean()), float(cols.mean())


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_and_prefix_stable(kind: str) -> None:
    a = list(generate(kind, 9, 11))
    b = list(generate(kind, 9, 11))
    c = list(generate(kind, 4, 11))
    for x, y in zip(a, b, strict=True):
        assert x.case_id == y.case_id and x.subject == y.subject
        assert x.image.tobytes() == y.image.tobytes()
        assert x.label.tobytes() == y.label.tobytes()
        assert x.present == y.present and x.spacing == y.spacing and dict(x.meta) == dict(y.meta)
    for x, y in zip(a, c, strict=False):
        assert x.image.tobytes() == y.image.tobytes()


@pytest.mark.parametrize("kind", KINDS)
def test_different_seeds_differ(kind: str) -> None:
    a = list(generate(kind, 3, 1))
    b = list(generate(kind, 3, 2))
    for x, y in zip(a, b, strict=True):
        assert not np.array_equal(x.image, y.image)
        assert not np.array_equal(x.label, y.label)
    # and cases of one stream differ from each other
    assert not np.array_equal(a[0].label, a[1].label)


@pytest.mark.parametrize("kind", KINDS)
def test_case_contract(kind: str, cases: dict) -> None:
    values = set(STRUCTURES[kind].values())
    for i, (case, _) in enumerate(cases[kind]):
        assert re.fullmatch(rf"{kind}_s3_\d{{4}}", case.case_id)
        assert case.case_id.endswith(f"{i:04d}")
        assert case.subject == cases[kind][i - i % 8][0].subject
        assert case.kind == kind
        assert case.image.dtype == np.float32 and case.image.shape == (256, 256)
        assert case.label.dtype == np.uint8 and case.label.shape == (256, 256)
        assert np.isfinite(case.image).all()
        assert set(np.unique(case.label).tolist()) <= values | {0}
        assert set(case.present) == set(STRUCTURES[kind])
        for name, value in STRUCTURES[kind].items():
            assert case.present[name] == bool((case.label == value).any()), name
        assert case.spacing[0] == case.spacing[1] > 0
    assert len({c.subject for c, _ in cases[kind]}) == N_STATS // 8
    assert len({c.spacing for c, _ in cases[kind]}) == 1  # one spacing per dataset


def _rician_mean(nu: np.ndarray, sigma: float) -> np.ndarray:
    """Mean of a Rician variable with signal ``nu`` and noise ``sigma``."""
    x = nu.astype(np.float64) ** 2 / (4.0 * sigma**2)
    lag = (1.0 + 2.0 * x) * special.i0e(x) + 2.0 * x * special.i1e(x)  # L_1/2(-2x) e^-x form
    return sigma * np.sqrt(np.pi / 2.0) * lag


@pytest.mark.parametrize("kind", KINDS)
def test_image_is_rendered_from_the_label_map(kind: str, cases: dict) -> None:
    """Labels are exact: label == lut[tissue_map], and inside every tissue (eroded by 2 px) the
    image has that tissue's intensity, up to bias and noise."""
    checked = 0
    for case, dbg in cases[kind][:24]:
        assert np.array_equal(case.label, dbg.tissue_labels[dbg.tissue_map])
        for tid, (name, value) in enumerate(zip(dbg.tissue_names, dbg.tissue_values, strict=True)):
            mask = ndimage.binary_erosion(dbg.tissue_map == tid, iterations=2)
            n = int(mask.sum())
            if n < 40:
                continue
            sigma = dbg.noise_sigma
            if kind == "thigh-mri":
                expected = float(_rician_mean(value * dbg.bias[mask], sigma).mean())
                tol = 4.0 * sigma / np.sqrt(n) + 0.01 * value + 1.0
            else:
                expected = float(value)
                tol = 4.0 * sigma * np.sqrt(6.0 / n) + 1.5
            got = float(case.image[mask].mean())
            assert abs(got - expected) < tol, (case.case_id, name, got, expected, tol)
            checked += 1
    assert checked > 100


def test_thigh_anatomy(cases: dict) -> None:
    s = STRUCTURES["thigh-mri"]
    vl_checked = vm_checked = 0
    for case, _ in cases["thigh-mri"]:
        lab = case.label
        if case.meta["empty"]:
            assert not lab.any()
            continue
        femur = lab == s["femur"]
        assert femur.any()
        limb = ndimage.binary_fill_holes(lab > 0)
        assert not (ndimage.binary_dilation(femur, iterations=2) & ~limb).any(), case.case_id
        # skin is the outermost layer
        outer = limb & ~ndimage.binary_erosion(limb)
        assert np.isin(lab[outer], [s["skin"], s["subcutaneous_fat"]]).mean() > 0.95
        _, fcol = _centroid(femur)
        lateral = -1.0 if case.meta["side"] == "right" else 1.0  # right leg: lateral = image left
        if (lab == s["vastus_lateralis"]).sum() > 50:
            _, col = _centroid(lab == s["vastus_lateralis"])
            assert (col - fcol) * lateral > 0, case.case_id
            vl_checked += 1
        if (lab == s["vastus_medialis"]).sum() > 50:
            _, col = _centroid(lab == s["vastus_medialis"])
            assert (col - fcol) * lateral < 0, case.case_id
            vm_checked += 1
        if (lab == s["rectus_femoris"]).sum() > 50:
            assert _centroid(lab == s["rectus_femoris"])[0] < _centroid(femur)[0]  # anterior
    assert vl_checked > 20 and vm_checked > 10
    sides = {c.meta["side"] for c, _ in cases["thigh-mri"]}
    assert sides == {"left", "right"}


def test_ct_anatomy_and_hounsfield_units(cases: dict) -> None:
    s = STRUCTURES["liver-ct"]
    liver_checked = 0
    for case, dbg in cases["liver-ct"]:
        lab, img = case.label, case.image
        spine = lab == s["spine"]
        _, scol = _centroid(spine)
        air = dbg.tissue_map == 0
        assert np.median(img[air]) < -900 and img[air].mean() < -900
        assert img[ndimage.binary_erosion(spine)].mean() > 200
        assert img.min() >= -1024 and img.max() <= 3071
        body = ndimage.binary_fill_holes(lab > 0)
        if case.present["liver"]:
            liver = lab == s["liver"]
            assert not (liver & ~body).any()
            if liver.sum() > 100:
                # patient's right = image left (radiological convention)
                assert _centroid(liver)[1] < scol, case.case_id
                core = ndimage.binary_erosion(liver, iterations=2)
                assert 20 < np.median(img[core]) < 160
                liver_checked += 1
        if case.present["kidney_right"] and case.present["kidney_left"]:
            assert (
                _centroid(lab == s["kidney_right"])[1]
                < scol
                < _centroid(lab == s["kidney_left"])[1]
            )
        if case.present["spleen"]:
            assert _centroid(lab == s["spleen"])[1] > scol
        fat = np.isin(np.asarray(dbg.tissue_names)[dbg.tissue_map], ["subcutaneous_fat"])
        assert -140 < img[ndimage.binary_erosion(fat, iterations=2)].mean() < -60
    assert liver_checked > 10


@pytest.mark.parametrize("kind", KINDS)
def test_presence_statistics(kind: str, cases: dict) -> None:
    present = [c.present for c, _ in cases[kind]]
    for t in TARGETS[kind]:
        n = sum(p[t] for p in present)
        assert 0 < n < len(present), t
    assert any(not any(p[t] for t in TARGETS[kind]) for p in present)
    assert any(all(p[t] for t in TARGETS[kind]) for p in present)


def test_vastus_medialis_grows_distally(cases: dict) -> None:
    vm = STRUCTURES["thigh-mri"]["vastus_medialis"]
    prox = [(c.label == vm).sum() for c, _ in cases["thigh-mri"] if c.meta["z"] < 0.45]
    dist = [(c.label == vm).sum() for c, _ in cases["thigh-mri"] if 0.7 < c.meta["z"] < 1.0]
    assert np.mean(dist) > 3 * np.mean(prox)


@pytest.mark.parametrize("kind", KINDS)
def test_size_and_speed(kind: str) -> None:
    small = next(generate(kind, 1, 0, size=128))
    big = next(generate(kind, 1, 0, size=256))
    assert small.image.shape == (128, 128)
    assert small.spacing[0] == pytest.approx(2 * big.spacing[0])
    start = time.perf_counter()
    list(generate(kind, 16, 5))
    assert (time.perf_counter() - start) / 16 < 0.1  # target < 50 ms; loose for slow CI


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown phantom kind"):
        list(generate("brain-mri", 1, 0))
    with pytest.raises(ValueError):
        list(generate("thigh-mri", 1, -1))
    with pytest.raises(ValueError):
        write_dataset("thigh-mri", 1, 0, Path("/nonexistent"), fmt="jpg")


def test_png_encoding_round_trip() -> None:
    mr = np.array([[0.0, 12.34, 999.9]], dtype=np.float32)
    assert encode_png(mr, "MR").dtype == np.uint16
    assert np.allclose(decode_png(encode_png(mr, "MR"), "MR"), mr, atol=1 / 32)
    ct = np.array([[-1000.0, -160.0, 40.0, 240.0, 1000.0]], dtype=np.float32)
    enc = encode_png(ct, "CT")
    assert enc.dtype == np.uint8 and enc.tolist() == [[0, 0, 128, 255, 255]]
    assert np.allclose(decode_png(enc, "CT")[0, 1:4], [-160, 40, 240], atol=400 / 255 / 2 + 1e-3)


@pytest.mark.parametrize(
    ("kind", "fmt"), [("thigh-mri", "png"), ("liver-ct", "png"), ("liver-ct", "npy")]
)
def test_write_dataset_round_trip(kind: str, fmt: str, tmp_path: Path) -> None:
    out = write_dataset(kind, 10, 4, tmp_path / "ds", size=128, fmt=fmt, progress=False)
    expected = list(generate(kind, 10, 4, size=128))
    info = json.loads((out / "dataset.json").read_text())
    assert info == read_info(out)
    assert info["kind"] == kind and info["labels"] == STRUCTURES[kind]
    assert info["targets"] == TARGETS[kind]
    assert info["spacing_mm"] == pytest.approx(list(expected[0].spacing))
    assert (info["seed"], info["n"], info["size"], info["format"]) == (4, 10, 128, fmt)
    assert info["generator"] == GENERATOR
    with open(out / "image_labels.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["case_id", "subject", *STRUCTURES[kind]]
    assert len(rows) == 11
    for row, case in zip(rows[1:], expected, strict=True):
        assert row[:2] == [case.case_id, case.subject]
        assert row[2:] == [str(int(case.present[s])) for s in STRUCTURES[kind]]
        mask = np.asarray(Image.open(out / "masks" / f"{case.case_id}.png"))
        assert mask.dtype == np.uint8 and np.array_equal(mask, case.label)
        image, label = read_case(out, case.case_id)
        assert np.array_equal(label, case.label)
        if fmt == "npy":
            assert image.dtype == np.float32 and np.array_equal(image, case.image)
        elif kind == "liver-ct":
            pixels = np.asarray(Image.open(out / "images" / f"{case.case_id}.png"))
            assert pixels.dtype == np.uint8
            ref = np.clip(case.image, -160, 240)
            assert np.abs(image - ref).max() <= 400 / 255 / 2 + 1e-3
        else:
            pixels = np.asarray(Image.open(out / "images" / f"{case.case_id}.png"))
            assert pixels.dtype == np.uint16
            assert np.abs(image - case.image).max() <= 1 / 32 + 1e-4
    assert sorted(p.stem for p in (out / "images").iterdir()) == [c.case_id for c in expected]


def test_cli_writes_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["--kind", "thigh-mri", "--n", "9", "--seed", "2", "--out", str(out)]
    assert main(["phantoms", *argv, "--size", "96", "--format", "npy", "--quiet"]) == 0
    assert len(list((out / "images").glob("*.npy"))) == 9
    assert len(list((out / "masks").glob("*.png"))) == 9
    line = capsys.readouterr().out.strip()
    assert line.startswith("wrote 9 thigh-mri cases") and "\n" not in line
    assert read_info(out)["size"] == 96
    assert main(["phantoms", "--kind", "thigh-mri", "--n", "0", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == "error: --n must be at least 1"
