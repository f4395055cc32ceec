"""A predictor lends its cached image embeddings to another that runs the same frozen fp32
encoder (the studio's zero-shot LiteMedSAM borrowing from a demo bundle), and to no other.
The real LiteMedSAM (the checkpoint the installed package ships) plays both sides."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from adasam.bundle import create_bundle
from adasam.deferred import DeferredEncoder
from adasam.manual import zero_shot_predictor
from adasam.predictor import Predictor
from adasam.shared_embeddings import LentEmbeddings
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (96, 80, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def lender(image: np.ndarray) -> Predictor:
    predictor = zero_shot_predictor()
    predictor.embedding(image)  # it encoded this slice (in the studio: the pipeline's predict)
    return predictor


def test_the_borrower_reads_the_lenders_embedding_and_does_not_encode(
    monkeypatch: pytest.MonkeyPatch, lender: Predictor, image: np.ndarray
) -> None:
    borrower = zero_shot_predictor()
    assert borrower.shared_encoder() == lender.shared_encoder() is not None
    lent = LentEmbeddings(borrower.shared_encoder(), lambda: [lender])
    borrower.embedding_store = lent

    def no_encoder(*_a: object) -> None:
        raise AssertionError("the lender holds this slice: the borrower must not encode it")

    with monkeypatch.context() as patch:
        patch.setattr(borrower.backend, "encode", no_encoder)
        got, cached = borrower.embedding(image)
        assert not cached and lent.lent == 1
        own = lender.held_embedding(image)  # the same weights, so what it would compute itself
        torch.testing.assert_close(got[0], torch.from_numpy(own))
        (cand,) = borrower.segment(image, box=(10, 10, 60, 70), multimask=False)
        assert cand.mask.shape == image.shape[:2]
    # it never needed its own encoder, so TinyViT was never built
    assert isinstance(borrower.bundle.sam.image_encoder, DeferredEncoder)
    # a slice the lender has not seen: nothing lent; the borrower builds its encoder for it
    other = image[::-1].copy()
    assert lent.get(other) is None and lent.lent == 1
    mine, _ = borrower.embedding(other)
    assert not isinstance(borrower.bundle.sam.image_encoder, DeferredEncoder)
    torch.testing.assert_close(mine, lender.embedding(other)[0])


@pytest.mark.parametrize("change", ["encoder LoRA", "bf16 backend", "no packaged base"])
def test_no_embedding_is_lent_across_different_encoders(
    change: str, lender: Predictor, image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = lender.shared_encoder()
    if change == "encoder LoRA":
        config = lender.bundle.config
        lora = replace(config.lora, encoder=True)
        monkeypatch.setattr(
            lender, "bundle", replace(lender.bundle, config=replace(config, lora=lora))
        )
    elif change == "bf16 backend":  # its embeddings differ from fp32 beyond what was checked
        monkeypatch.setattr(lender.backend, "name", "openvino-bf16")
    else:  # a phantom-pretrained small SAM: its base is the bundle's own file, not a package's
        other = Predictor(create_bundle(tiny_config(), seed=0), "cpu")
        other.embedding(image)
        monkeypatch.setattr(lender, "bundle", other.bundle)
        monkeypatch.setattr(lender, "held_embedding", other.held_embedding)
    assert lender.shared_encoder() is None
    lent = LentEmbeddings(expected, lambda: [lender])
    assert lent.get(image) is None and lent.lent == 0
    assert LentEmbeddings(None, lambda: [lender]).get(image) is None
