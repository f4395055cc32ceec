"""Under an exported backend a predictor loaded from a folder frees the eager image encoder
and mask decoder the backend runs itself, and answers exactly as with them (tiny bundle)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from adasam.backends import Released, TorchBackend, make_backend, release_replaced
from adasam.bundle import create_bundle, load_bundle, save_bundle
from adasam.embedding_store import encoder_identity
from adasam.onnx_backend import build_exported
from adasam.predictor import Click, Predictor
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_bundle(create_bundle(tiny_config(), seed=3), tmp_path_factory.mktemp("rel") / "b")


def _image(seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((70, 90, 3)) * 255).astype(np.uint8)


def test_an_exported_backend_frees_the_eager_modules_and_answers_the_same(
    bundle_dir: Path, tmp_path: Path
) -> None:
    def factory(bundle):
        return build_exported(bundle, "onnxruntime-fp32", tmp_path, threads=1)

    lean = Predictor.from_dir(bundle_dir, backend=factory)
    sam = lean.bundle.sam
    assert isinstance(sam.image_encoder, Released) and isinstance(sam.mask_decoder, Released)
    assert sam.image_encoder.img_size == 128  # Sam.preprocess still pads to it
    assert sum(p.numel() for p in sam.image_encoder.parameters()) == 0
    full_bundle = load_bundle(bundle_dir, merged=True)
    full = Predictor(full_bundle, backend=factory(full_bundle))  # same graphs, modules kept
    image = _image(1)
    a, b = lean.predict(image), full.predict(image)
    for sa, sb in zip(a.structures, b.structures, strict=True):
        for ca, cb in zip(sa.candidates, sb.candidates, strict=True):
            np.testing.assert_array_equal(ca.logits, cb.logits)
    box = [10, 10, 60, 50]
    first = lean.segment(image, box=box, multimask=False)[0]
    again = full.segment(image, box=box, multimask=False)[0]
    np.testing.assert_array_equal(
        lean.refine(image, [Click(30, 30)], first.logits, box).logits,
        full.refine(image, [Click(30, 30)], again.logits, box).logits,
    )
    with pytest.raises(RuntimeError, match="released: backend onnxruntime-fp32 runs it"):
        sam.image_encoder(torch.zeros(1, 3, 128, 128))
    with pytest.raises(ValueError, match="holds no weights"):  # never a wrong store name
        config = lean.bundle.config
        encoder_identity(replace(config, lora=replace(config.lora, encoder=False)), sam)


def test_embed_batch_runs_the_exported_encoder_once_per_image(
    bundle_dir: Path, tmp_path: Path
) -> None:
    lean = Predictor.from_dir(
        bundle_dir,
        cache_size=4,
        backend=lambda b: build_exported(b, "onnxruntime-fp32", tmp_path, threads=1),
    )
    images = [_image(s) for s in (4, 5, 6)]
    assert lean.embed_batch(images) == 3
    batched = [lean.embedding(im) for im in images]
    assert all(hit for _, hit in batched)
    lean.clear_cache()
    for (emb, _), image in zip(batched, images, strict=True):
        torch.testing.assert_close(lean.embedding(image)[0], emb)


def test_the_pytorch_backend_keeps_every_module(bundle_dir: Path, tmp_path: Path) -> None:
    p = Predictor.from_dir(
        bundle_dir, backend=lambda b: make_backend("torch", b, cache_dir=tmp_path)[0]
    )
    assert not isinstance(p.bundle.sam.image_encoder, Released)
    assert not isinstance(p.bundle.sam.mask_decoder, Released)
    bundle = load_bundle(bundle_dir)
    assert release_replaced(bundle, TorchBackend(bundle)) == []
