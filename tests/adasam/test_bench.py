from __future__ import annotations

import argparse

import numpy as np

from adasam import bench
from tests.conftest import TINY_SAM


def test_bench_one_measures_both_pipelines_on_the_same_model() -> None:
    image = bench.test_slice(96)
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    row = bench.bench_one("tiny", TINY_SAM, image, runs=1)
    for key in (
        "encode",
        "decode",
        "classify",
        "cam",
        "prompts",
        "ref_set_image",
        "ref_predict",
        "second_prompt",
        "total",
    ):
        assert row[key] > 0, key
    table = bench.format_table({"tiny": row}, 96, 1)
    assert "| tiny |" in table and "ratio" in table


def test_bench_main_prints_table(monkeypatch, capsys) -> None:
    monkeypatch.setattr(bench, "SamConfig", lambda: TINY_SAM)
    args = argparse.Namespace(runs=1, size=64, skip_vit_b=True, threads=0)
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "SamPredictor" in out and "median of 1 runs" in out
