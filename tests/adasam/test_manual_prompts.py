"""Prompts by hand (``predict --box/--point``), zero-shot LiteMedSAM on a real CT slice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adasam.cli import main
from adasam.errors import ConfigError
from adasam.manual import parse_box, parse_point

CT = Path(__file__).resolve().parents[2] / "assets" / "examples" / "CT_small.dcm"
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def test_parse_box_and_point() -> None:
    assert parse_box("1,2,30,40", (64, 64)).tolist() == [1, 2, 30, 40]
    c = parse_point("5,6,neg", (64, 64))
    assert (c.x, c.y, c.positive) == (5, 6, False)
    assert parse_point("5,6", (64, 64)).positive
    for bad in ("1,2,3", "a,b,c,d", "30,2,1,40", "0,0,64,10", "nan,0,1,1"):
        with pytest.raises(ConfigError):
            parse_box(bad, (64, 64))
    for bad in ("1", "1,2,maybe", "70,1"):
        with pytest.raises(ConfigError):
            parse_point(bad, (64, 64))


def test_box_on_pydicom_ct_gives_a_vertebra_mask(tmp_path: Path, tiny_bundle_dir: Path) -> None:
    """Zero-shot LiteMedSAM inside a box drawn around the vertebral body of CT_small."""
    out = tmp_path / "out"
    rc = main(
        [
            "predict", str(CT), "--bundle", str(tiny_bundle_dir), "--box", "40,4,86,52",
            "--zero-shot", "yes", "--label", "vertebra", "--out", str(out),
        ]
    )  # fmt: skip
    assert rc == 0
    manual = json.loads((out / "result.json").read_text())["manual"]
    assert manual["model"] == "litemedsam-zero-shot" and manual["label"] == "vertebra"
    (cand,) = manual["candidates"]
    mask = np.asarray(Image.open(out / cand["mask"])) > 0
    ys, xs = np.nonzero(mask)
    # a compact bone region that fills much of the box and stays inside it (± a few pixels)
    assert 0.3 * 47 * 49 < mask.sum() < 47 * 49
    assert xs.min() >= 36 and xs.max() <= 90 and ys.min() >= 0 and ys.max() <= 56
    hu_bone = mask.mean()  # sanity: the slice is 128², mask is a small part of it
    assert hu_bone < 0.2


def test_bad_box_is_one_line_exit_2(tmp_path: Path, tiny_bundle_dir: Path, capsys) -> None:
    rc = main(["predict", str(CT), "--bundle", str(tiny_bundle_dir), "--box", "1,2,3",
               "--out", str(tmp_path / "o")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--box" in err[0]


def test_zero_shot_on_an_exported_backend_segments_like_pytorch_and_still_lends(
    tmp_path: Path,
) -> None:
    """Zero-shot LiteMedSAM takes a backend like a loaded bundle (the studio gives it the one
    ``ADASAM_BACKEND`` picks): the exported fp32 graphs answer a drawn box as PyTorch does, the
    eager encoder and decoder are released, and it still lends and borrows fp32 embeddings."""
    from adasam.backends import Released, make_backend
    from adasam.imaging import load_slice
    from adasam.manual import zero_shot_predictor

    image = load_slice(CT).display
    reference = zero_shot_predictor()
    exported = zero_shot_predictor(
        backend=lambda b: make_backend("onnxruntime-fp32", b, cache_dir=tmp_path)[0]
    )
    assert exported.backend.name == "onnxruntime-fp32"
    sam = exported.bundle.sam
    assert isinstance(sam.image_encoder, Released) and isinstance(sam.mask_decoder, Released)
    box = (40, 4, 86, 52)
    (want,) = reference.segment(image, box=box, multimask=False)
    (got,) = exported.segment(image, box=box, multimask=False)
    both = np.logical_and(want.mask, got.mask).sum()
    assert both / np.logical_or(want.mask, got.mask).sum() > 0.99
    assert abs(want.score - got.score) < 1e-3
    assert exported.shared_encoder() == reference.shared_encoder() is not None
