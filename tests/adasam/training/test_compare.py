"""``python -m adasam compare`` end to end on tiny phantoms with the test suite's tiny SAM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from adasam.cli import main
from adasam.sam import build_sam
from adasam.training import compare
from tests.conftest import TINY_SAM


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
        "--backbone", "resnet10", "--sam", "small", "--sam-base", str(base), "--threads", "1",
        "--work", str(tmp_path / "work"), "--out", str(out),
    ]  # fmt: skip
    assert main(["compare", *argv]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| thigh-mri")]
    assert len(rows) == 2 * len(compare.METHODS)
    for method in compare.METHODS:
        assert sum(f"| {method} |" in r for r in rows) == 2
    assert "| 3 | 3 |" in text  # labeled spec and exact count
    stored = json.loads(out.with_suffix(".json").read_text())
    assert {r["method"] for r in stored} == set(compare.METHODS)
    for r in stored:
        for mean, _std in r["dice"].values():
            assert 0.0 <= mean <= 1.0 or mean != mean  # a number in range, or nan (never found)
    # a second run reuses every stored row: nothing is trained again
    capsys.readouterr()
    assert main(["compare", *argv]) == 0
    assert "(" not in "".join(
        line for line in capsys.readouterr().out.splitlines() if line.startswith("thigh-mri")
    )
    assert out.read_text() == text


def test_compare_refuses_an_unknown_method(tmp_path: Path, capsys) -> None:
    argv = ["compare", "--sam-base", "x", "--methods", "U-Net;nnU-Net", "--work", str(tmp_path)]
    assert main(argv) == 2
    assert "unknown method" in capsys.readouterr().err
