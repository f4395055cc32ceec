from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from adasam import bench
from adasam.bundle import create_bundle
from adasam.predictor import Predictor
from tests.conftest import tiny_config


def _image() -> np.ndarray:
    return (np.random.default_rng(0).random((96, 96, 3)) * 255).astype(np.uint8)


def test_stage_that_did_not_run_says_so_and_the_fixed_box_is_timed() -> None:
    bundle = create_bundle(tiny_config(), seed=0)
    p = Predictor(bundle)
    # presence 0.999: the random classifier finds nothing, so the decoder never runs in predict
    stages, total, click, fixed, notes = bench.bench_predictor(
        p, _image(), ["liver", "kidney"], 1, 0.999
    )
    assert stages["decode"] is None and fixed is not None and fixed.median > 0
    assert total.median > 0 and click.median > 0 and "fixed box" in notes[0]
    row = bench.Row("tiny", "torch", stages, total, click, fixed)
    table = bench.format_table([row], {"tiny": total}, 96, 1)
    assert "did not run; fixed box" in table and "| 0 |" not in table and "cores" in table


def test_found_structures_are_decoded_in_the_predict() -> None:
    p = Predictor(create_bundle(tiny_config(), seed=0))
    stages, *_, fixed, notes = bench.bench_predictor(p, _image(), ["liver", "kidney"], 1, 1e-6)
    assert stages["decode"] is not None and stages["decode"].median > 0 and fixed is None
    assert notes == []


def test_bench_main_prints_every_backend_with_ratios(monkeypatch, capsys, tmp_path) -> None:
    bundle = create_bundle(tiny_config(), seed=0)
    monkeypatch.setattr(bench, "models", lambda args: {"tiny": (bundle, False)})
    monkeypatch.setattr(bench, "bench_slice", lambda size, kind: _image())
    monkeypatch.setattr("adasam.guard.guard_images", lambda n: [_image()])
    args = argparse.Namespace(
        runs=1,
        size=96,
        threads=0,
        backends=["torch", "onnxruntime-fp32"],
        memory=False,
        cache_dir=tmp_path,
        cache_bytes=1 << 20,
        guard_per_kind=1,
    )
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "| tiny, 2 | torch |" in out and "| tiny, 2 | onnxruntime-fp32 |" in out
    assert "pass" in out and "SamPredictor" in out and "×eager" in out
    # the click: median (spread) and its ratio to the eager click of the same run (1.00 there)
    assert "click ×eager" in out and "the eager click" in out
    torch_row = next(line for line in out.splitlines() if line.startswith("| tiny, 2 | torch |"))
    assert torch_row.split("|")[-3].strip() == "1.00"
    assert list((tmp_path / "guard").glob("*.json"))  # the record auto reads


def test_sub_millisecond_stages_are_not_printed_as_zero() -> None:
    assert bench.Stat(0.2, 0.1, 0.6).text() == "<1 (<1–1)"
    assert bench.Stat(12.4, 11.6, 30.0).text() == "12 (12–30)"


def test_memory_probe_reports_its_own_peak_not_its_parents() -> None:
    """A probe started by a big process (the bench, models loaded) must not report the
    parent's size: Linux keeps ``ru_maxrss`` across exec, which is what the first bench's
    5830 MiB was."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from adasam.memory import peak_rss_mib

    big = np.ones(400 * 1024 * 1024 // 8)  # 400 MiB touched in this (the parent) process
    parent = peak_rss_mib()
    code = (
        "import json, resource; from adasam.memory import peak_rss_mib; "
        "print(json.dumps([peak_rss_mib(), "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=root
    )
    own, inherited = json.loads(out.stdout)
    assert big.sum() > 0 and parent > 400
    assert 0 < own < 200  # a bare interpreter
    if sys.platform == "linux":
        assert inherited >= 400  # what getrusage says there: the parent's high-water mark


@pytest.mark.parametrize("kind", ["liver-ct", "thigh-mri"])
def test_the_bench_slice_shows_every_target_of_its_kind(kind: str) -> None:
    """Seed 0's first liver case has no liver: the bench must not time a slice on which the
    classifier rightly finds nothing (the decoder would not run)."""
    from adasam.guard import phantom_display
    from adasam.phantoms import TARGETS, generate

    cases = list(generate(kind, 16, 0, 64))
    first = next(i for i, c in enumerate(cases) if all(c.present[t] for t in TARGETS[kind]))
    if kind == "liver-ct":
        assert first > 0  # the case this test guards against
    expected = phantom_display(cases[first].image, kind)
    np.testing.assert_array_equal(bench.bench_slice(64, kind), expected)


def test_memory_only_runs_just_the_probe_in_the_studios_cache_dtype(monkeypatch, capsys) -> None:
    calls = []

    def probe(backend, cache_dir, cache_bytes, cache_dtype):
        calls.append((backend, cache_dtype))
        return {
            "peak_mb": 1430.0,
            "models": {"thigh-mri": ["torch", 16, 33554432]},
            "held": 1,
            "imported": ["timm"] if backend == "torch" else [],
        }

    monkeypatch.setattr(bench, "peak_memory", probe)
    monkeypatch.setattr(bench, "models", lambda args: pytest.fail("no timing run wanted"))
    args = argparse.Namespace(
        threads=0, memory_only=True, cache_dir="c", cache_bytes=1 << 20, cache_dtype="float16"
    )
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert calls == [("torch", "float16"), ("auto", "float16")]
    assert "16-slice float16 caches, backend auto: 1430 MiB = 1.499 GB" in out
    assert "heavy imports held: timm" in out and "heavy imports held: none" in out


def test_training_encode_prints_the_ratio_and_the_difference_per_engine(capsys) -> None:
    """On the shipped LiteMedSAM encoder: eager against the exported graph, in one run."""
    import re

    from adasam.onnx_backend import available

    args = argparse.Namespace(threads=0, runs=2, size=64, training_encode=True)
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"torch \(eager\) \d+ ms/slice", out)
    engines = ["onnxruntime-fp32"] + (["openvino-fp32"] if available("openvino-fp32")[0] else [])
    for engine in engines:
        found = re.search(engine + r": \d+ ms/slice, ×[\d.]+ .* difference ([\d.e+-]+)", out)
        assert found, out
        assert float(found.group(1)) < 1e-3


def test_the_zero_shot_model_is_benchmarked_and_its_guard_record_ships() -> None:
    """The studio's zero-shot LiteMedSAM gets its own bench row and shipped guard record, found
    again on the next start: its bundle (seeded, untrained classifier) hashes the same each time."""
    from adasam.export import bundle_hash
    from adasam.manual import ZERO_SHOT_NAME, zero_shot_bundle

    args = argparse.Namespace(skip_litemedsam=False, bundles=["none"], vit_b=False)
    got = bench.models(args)
    bundle, trained = got[bench.ZERO_SHOT_LABEL]
    assert bundle.config.name == ZERO_SHOT_NAME and not trained
    assert bench.ZERO_SHOT_LABEL in args.shipped
    assert bundle_hash(bundle) == bundle_hash(zero_shot_bundle())
    skipped = argparse.Namespace(skip_litemedsam=True, bundles=["none"], vit_b=False)
    assert bench.models(skipped) == {} and skipped.shipped == set()
