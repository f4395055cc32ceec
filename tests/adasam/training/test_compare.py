"""``python -m adasam compare`` end to end on tiny phantoms with the test suite's tiny SAM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from adasam.cli import main
from adasam.commands.compare import ZERO_SHOT
from adasam.config import LoraSettings
from adasam.phantoms import TARGETS, write_dataset
from adasam.predictor import Predictor
from adasam.sam import build_sam
from adasam.training import compare
from adasam.training.data import load_folder
from tests.conftest import TINY_SAM, tiny_config


@pytest.fixture(autouse=True)
def _tiny_sam(monkeypatch: pytest.MonkeyPatch) -> None:
    import adasam.training.loop as loop

    monkeypatch.setattr(loop, "SamConfig", lambda: TINY_SAM)


def test_compare_writes_every_row_and_resumes(tmp_path: Path, capsys) -> None:
    base = tmp_path / "base.safetensors"
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in build_sam(TINY_SAM).state_dict().items()}, base)
    out = tmp_path / "results.md"
    argv = [
        "--kinds", "thigh-mri", "--labeled", "3,25%", "--steps", "1", "--unet-steps", "1",
        "--n-train", "24", "--n-test", "4", "--size", "64", "--val-max", "2",
        "--backbone", "resnet10,sam-embedding", "--sam", "small", "--sam-base", str(base),
        "--threads", "1",
        "--work", str(tmp_path / "work"), "--out", str(out),
    ]  # fmt: skip
    assert main(["compare", *argv]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| thigh-mri")]
    trained = [m for m in compare.METHODS if m != ZERO_SHOT]  # zero-shot: LiteMedSAM's row
    with_classifier = ("ADA-SAM", "SAM-Mix")  # once per backbone; the oracle and U-Net once
    assert len(rows) == 2 * (len(trained) + len(with_classifier))
    for method in trained:
        runs = 2 if method in with_classifier else 1
        assert sum(f"| {method} |" in r for r in rows) == 2 * runs
    for method in with_classifier:
        assert sum(f"| {method} | sam-embedding |" in r for r in rows) == 2
    for r in rows:  # classifier rows: an AUROC per structure and the classifier's median ms
        cells = [c.strip() for c in r.split("|")[1:-1]]
        if cells[3] == "U-Net":
            assert cells[4] == cells[-3] == cells[-2] == ""
        else:
            assert len(cells[-3].split(" / ")) == 2 and float(cells[-2]) > 0.0
    assert "| 3 | 3 |" in text  # labeled spec and exact count
    assert "![Dice per method and budget](results.png)" in text
    with Image.open(out.with_suffix(".png")) as picture:  # the same rows as a figure
        assert picture.format == "PNG" and picture.width > 400
    assert f"no {ZERO_SHOT!r} row" in capsys.readouterr().out
    stored = json.loads(out.with_suffix(".json").read_text())
    assert {r["method"] for r in stored} == set(trained)
    assert {r["backbone"] for r in stored} == {"resnet10", "sam-embedding", ""}
    for r in stored:
        for mean, _std in r["dice"].values():
            assert 0.0 <= mean <= 1.0 or mean != mean  # a number in range, or nan (never found)
    # a second run reuses every stored row: nothing is trained again
    capsys.readouterr()
    assert main(["compare", *argv]) == 0
    assert not any(  # a trained row prints "... (12 s)"
        line.endswith(" s)") for line in capsys.readouterr().out.splitlines()
    )
    assert out.read_text() == text
    # past --max-minutes no run starts: the stored rows stay, the new budget is listed as not run
    wider = [a if a != "3,25%" else "3,25%,5" for a in argv]
    assert main(["compare", *wider, "--max-minutes", "1e-9"]) == 0
    limited = out.read_text()
    assert [line for line in limited.splitlines() if line.startswith("| thigh-mri")] == rows
    assert (
        "Not run (the `--max-minutes` limit came first): thigh-mri 5 ADA-SAM (resnet10)" in limited
    )
    assert "thigh-mri 5 U-Net" in limited


def test_compare_refuses_an_unknown_method(tmp_path: Path, capsys) -> None:
    argv = ["compare", "--sam-base", "x", "--methods", "U-Net;nnU-Net", "--work", str(tmp_path)]
    assert main(argv) == 2
    assert "unknown method" in capsys.readouterr().err


def _frozen_tiny_predictor() -> Predictor:
    from adasam.bundle import create_bundle

    config = tiny_config(lora=LoraSettings(r=2, encoder=False, decoder=True))
    return Predictor(create_bundle(config, seed=0), "cpu", cache_size=1)


def test_zero_shot_row_encodes_the_test_set_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The zero-shot row (plain LiteMedSAM; here a tiny frozen-encoder stand-in) scores every
    present structure with its GT box, and the test slices' embeddings land in the shared
    store, so the next predictor reads them instead of running its encoder."""
    write_dataset("thigh-mri", 4, 5, tmp_path / "test", size=64, progress=False)
    test = load_folder(tmp_path / "test", 64, TARGETS["thigh-mri"])
    monkeypatch.setattr(compare, "zero_shot_predictor", _frozen_tiny_predictor)
    scores = compare._zero_shot_dice(test, [0, 1, 2, 3], tmp_path / "emb")
    assert set(scores) == set(test.structures)
    present = {n: int(test.masks(np.arange(4))[:, t].any(axis=(-2, -1)).sum())
               for t, n in enumerate(test.structures)}  # fmt: skip
    for name, (mean, _std) in scores.items():
        assert (0.0 <= mean <= 1.0) if present[name] else mean != mean
    (folder,) = (tmp_path / "emb").iterdir()
    assert len(list(folder.glob("*.npy"))) == 4

    again = _frozen_tiny_predictor()

    def no_encoder(*_a: object) -> None:
        raise AssertionError("the store holds this slice: the encoder must not run")

    monkeypatch.setattr(again.backend, "encode", no_encoder)
    again = compare._with_test_embeddings(again, test, [0, 1, 2, 3], tmp_path / "emb")
    again.predict(test.images[2])
