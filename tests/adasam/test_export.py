"""Exported backends: the ONNX graphs equal PyTorch on a tiny bundle; the cache is keyed by the
bundle's weights; the accuracy guard and the default choice."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from adasam import export, guard
from adasam.backends import TorchBackend, make_backend
from adasam.bundle import create_bundle, with_version
from adasam.onnx_backend import OnnxBackend, available, build_exported
from adasam.predictor import Predictor
from tests.conftest import tiny_config


def _lora_bundle(seed: int = 0):
    """A tiny bundle whose LoRA is not zero (so merging it matters)."""
    bundle = create_bundle(tiny_config(), seed=seed)
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in bundle.sam.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return bundle


@pytest.fixture(scope="module")
def bundle():
    return _lora_bundle()


def test_merged_encoder_equals_the_lora_encoder(bundle) -> None:
    merged = export.merged_encoder(bundle)
    x = torch.randn(1, 3, 128, 128)
    assert not any("lora_" in k for k in merged.state_dict())
    with torch.no_grad():
        ref = bundle.sam.image_encoder(x)
        base = export.merged_encoder(create_bundle(tiny_config(), seed=0))(x)
        torch.testing.assert_close(merged(x), ref, atol=1e-5, rtol=1e-4)
    assert (base - ref).abs().max() > 1e-3  # the LoRA changed the output; the merge kept it


def test_onnxruntime_fp32_equals_pytorch(bundle, tmp_path) -> None:
    ours = build_exported(bundle, "onnxruntime-fp32", tmp_path, threads=1)
    ref = TorchBackend(bundle)
    x = torch.randn(1, 3, 128, 128)
    torch.testing.assert_close(ours.encode(x), ref.encode(x), atol=1e-4, rtol=1e-4)
    xc = torch.randn(1, 3, 64, 64)
    for a, b in zip(ours.classify(xc), ref.classify(xc), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    image = (np.random.default_rng(1).random((60, 80, 3)) * 255).astype(np.uint8)
    pa = Predictor(bundle, backend=ours).predict(image)
    pb = Predictor(bundle).predict(image)
    for sa, sb in zip(pa.structures, pb.structures, strict=True):
        np.testing.assert_allclose(sa.heatmap, sb.heatmap, atol=1e-4)
        for ca, cb in zip(sa.candidates, sb.candidates, strict=True):
            assert abs(ca.score - cb.score) < 1e-4 and guard.iou(ca.mask, cb.mask) > 0.99
    assert pa.model["backend"] == "onnxruntime-fp32"


def test_export_is_cached_by_hash_and_redone_when_the_bundle_changes(bundle, tmp_path) -> None:
    first = export.export_fp32(bundle, tmp_path)
    stamp = first["encoder"].stat().st_mtime_ns
    again = export.export_fp32(bundle, tmp_path)
    assert again == first and again["encoder"].stat().st_mtime_ns == stamp  # reused
    meta = json.loads((first["encoder"].parent / "meta.json").read_text())
    assert meta["hash"] == export.bundle_hash(bundle)
    changed = _lora_bundle(seed=5)  # other weights, same config
    assert export.bundle_hash(changed) != export.bundle_hash(bundle)
    assert export.export_fp32(changed, tmp_path)["encoder"] != first["encoder"]
    renamed = with_version(bundle, "2")  # same weights, new version: new key too
    assert export.bundle_hash(renamed) != export.bundle_hash(bundle)
    # a stale graph under the old key is not used for the changed bundle
    x = torch.randn(1, 3, 128, 128)
    fresh = build_exported(changed, "onnxruntime-fp32", tmp_path, threads=1)
    torch.testing.assert_close(
        fresh.encode(x), TorchBackend(changed).encode(x), atol=1e-4, rtol=1e-4
    )


def test_int8_backend_runs_close_to_pytorch(bundle, tmp_path) -> None:
    ours = build_exported(bundle, "onnxruntime-int8", tmp_path, threads=1)
    assert (tmp_path / "onnx").rglob("encoder.int8.onnx")
    x = torch.randn(1, 3, 128, 128)
    got, ref = ours.encode(x), TorchBackend(bundle).encode(x)
    assert got.shape == ref.shape and got.dtype == torch.float32
    corr = np.corrcoef(got.flatten().numpy(), ref.flatten().numpy())[0, 1]
    assert corr > 0.9  # quantised: close, not equal (the guard decides if it is close enough)


def test_guard_passes_fp32_and_records_the_choice(bundle, tmp_path) -> None:
    images = [
        (np.random.default_rng(s).random((64, 64, 3)) * 255).astype(np.uint8) for s in range(2)
    ]
    ref = Predictor(bundle)
    ours = Predictor(bundle, backend=build_exported(bundle, "onnxruntime-fp32", tmp_path))
    result = guard.compare(ref, ours, images)
    assert result.passed and result.mean_iou > 0.99 and result.masks >= 6
    digest = export.bundle_hash(bundle)
    assert guard.choose(tmp_path, digest)[0] == "torch"  # no record yet
    guard.write_record(tmp_path, digest, [result], {"torch": 100.0, "onnxruntime-fp32": 40.0})
    name, reason = guard.choose(tmp_path, digest)
    assert name == "onnxruntime-fp32" and "40 ms vs PyTorch 100 ms" in reason
    backend, why = make_backend("auto", bundle, cache_dir=tmp_path)
    assert "fastest" in why
    assert isinstance(backend, OnnxBackend) and backend.name == "onnxruntime-fp32"
    failed = guard.GuardResult("onnxruntime-int8", 2, 6, 0.9, 0.5, 0.1, 1.0, False)
    guard.write_record(tmp_path, digest, [failed], {"torch": 100.0, "onnxruntime-int8": 10.0})
    name, reason = guard.choose(tmp_path, digest)
    assert name == "torch" and "passed" in reason  # the fast one failed the guard


def test_guard_fails_a_backend_that_segments_differently(bundle, tmp_path) -> None:
    other = _lora_bundle(seed=7)  # different encoder weights: a "broken" export
    images = [(np.random.default_rng(3).random((64, 64, 3)) * 255).astype(np.uint8)]
    wrong = Predictor(bundle, backend=TorchBackend(other))
    wrong.backend.name = "broken"
    result = guard.compare(Predictor(bundle), wrong, images)
    assert not result.passed


def test_guard_fails_a_click_decoder_that_is_wrong_only_after_two_clicks(bundle, tmp_path) -> None:
    """Predictions and a first click agree; the second click (box + 2 clicks = 4 sparse tokens)
    answers wrongly: the guard's click session catches it."""
    images = [(np.random.default_rng(s).random((64, 64, 3)) * 255).astype(np.uint8) for s in (1, 2)]
    backend = build_exported(bundle, "onnxruntime-fp32", tmp_path)
    right = backend.decode

    def wrong_after_two_clicks(emb, sparse, dense):
        masks, iou = right(emb, sparse, dense)
        return (-masks, iou + 0.5) if sparse.shape[1] >= 4 else (masks, iou)

    good = guard.compare(Predictor(bundle), Predictor(bundle, backend=backend), images)
    assert good.passed and good.decoder == "onnxruntime-fp32"
    assert good.masks >= len(images) * (3 + len(guard.GUARD_CLICKS))  # box candidates + clicks
    backend.decode = wrong_after_two_clicks
    bad = guard.compare(Predictor(bundle), Predictor(bundle, backend=backend), images)
    assert not bad.passed and bad.max_score_diff >= 0.5


def test_unknown_or_unavailable_backends_are_refused(bundle, tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("tensorrt", bundle, cache_dir=tmp_path)
    assert available("nope")[0] is False


def test_embedding_cache_is_bounded_in_bytes() -> None:
    bundle = create_bundle(tiny_config(), seed=0)
    p = Predictor(bundle, cache_size=16)
    rng = np.random.default_rng(0)
    images = [(rng.random((40, 40, 3)) * 255).astype(np.uint8) for _ in range(5)]
    one = p.embedding(images[0])[0]
    per = one.numel() * one.element_size()
    bounded = Predictor(bundle, cache_size=16, cache_bytes=2 * per + 1)
    for im in images:
        bounded.embedding(im)
    assert len(bounded._cache) == 2 and bounded.cache_nbytes() <= 2 * per + 1
    assert bounded.embedding(images[-1])[1] and not bounded.embedding(images[0])[1]
    tiny = Predictor(bundle, cache_bytes=1)  # smaller than one embedding: keeps the newest
    tiny.embedding(images[0])
    assert len(tiny._cache) == 1
    with pytest.raises(ValueError):
        Predictor(bundle, cache_bytes=0)
