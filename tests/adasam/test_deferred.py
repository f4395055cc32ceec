"""A serving predictor's image encoder is deferred: its weights are held, its module is built
only when PyTorch runs it, and every hash and answer is the built encoder's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from adasam.backends import Released, TorchBackend
from adasam.bundle import create_bundle, load_bundle, save_bundle
from adasam.config import LoraSettings
from adasam.deferred import DeferredEncoder, ensure_encoder
from adasam.embedding_store import encoder_identity
from adasam.export import bundle_hash
from adasam.onnx_backend import build_exported
from adasam.predictor import Predictor
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def frozen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny bundle whose image encoder has no LoRA (as LiteMedSAM's demo bundles)."""
    config = tiny_config(lora=LoraSettings(r=4, encoder=False, decoder=True))
    return save_bundle(create_bundle(config, seed=4), tmp_path_factory.mktemp("def") / "b")


def _image(seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((70, 90, 3)) * 255).astype(np.uint8)


def test_a_deferred_encoder_hashes_like_the_built_one(frozen_dir: Path) -> None:
    lazy = load_bundle(frozen_dir, merged=True, defer_encoder=True)
    eager = load_bundle(frozen_dir, merged=True)
    assert isinstance(lazy.sam.image_encoder, DeferredEncoder)
    assert lazy.sam.image_encoder.img_size == eager.sam.image_encoder.img_size
    assert bundle_hash(lazy) == bundle_hash(eager)
    assert encoder_identity(lazy.config, lazy.sam) == encoder_identity(eager.config, eager.sam)
    a, b = lazy.sam.state_dict(), eager.sam.state_dict()
    assert sorted(a) == sorted(b)  # (file order: every hash sorts the keys)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_an_encoder_with_lora_is_built_on_load(tiny_bundle_dir: Path) -> None:
    """LoRA in the encoder is merged into its module on load, so there is nothing to defer."""
    bundle = load_bundle(tiny_bundle_dir, merged=True, defer_encoder=True)
    assert bundle.config.lora.encoder
    assert not isinstance(bundle.sam.image_encoder, DeferredEncoder)


def test_running_it_unbuilt_says_what_to_call(frozen_dir: Path) -> None:
    lazy = load_bundle(frozen_dir, merged=True, defer_encoder=True)
    with pytest.raises(RuntimeError, match="ensure_encoder"):
        lazy.sam.image_encoder(torch.zeros(1, 3, 128, 128))


def test_ensure_encoder_builds_it_once_with_the_bundles_weights(frozen_dir: Path) -> None:
    lazy = load_bundle(frozen_dir, merged=True, defer_encoder=True)
    eager = load_bundle(frozen_dir, merged=True)
    built = ensure_encoder(lazy.sam)
    assert built is lazy.sam.image_encoder and not isinstance(built, DeferredEncoder)
    assert ensure_encoder(lazy.sam) is built  # kept, not built again
    x = torch.rand(1, 3, 128, 128)
    with torch.inference_mode():
        torch.testing.assert_close(built(x), eager.sam.image_encoder(x), rtol=0, atol=0)


def test_a_damaged_encoder_weight_is_caught_when_it_is_built(frozen_dir: Path) -> None:
    lazy = load_bundle(frozen_dir, merged=True, defer_encoder=True)
    state = lazy.sam.image_encoder._state
    state.pop(next(iter(state)))
    with pytest.raises(Exception, match="missing key"):
        ensure_encoder(lazy.sam)


def test_the_pytorch_predictor_builds_it_and_answers_as_before(frozen_dir: Path) -> None:
    served = Predictor.from_dir(frozen_dir)  # no backend given: PyTorch
    reference = Predictor(load_bundle(frozen_dir, merged=True))
    image = _image(2)
    for sa, sb in zip(
        served.predict(image).structures, reference.predict(image).structures, strict=True
    ):
        for ca, cb in zip(sa.candidates, sb.candidates, strict=True):
            np.testing.assert_array_equal(ca.logits, cb.logits)
    assert not isinstance(served.bundle.sam.image_encoder, DeferredEncoder)  # built to encode


def test_a_torch_backend_builds_it_on_its_first_slice_only(frozen_dir: Path) -> None:
    served = Predictor.from_dir(frozen_dir, backend=lambda b: TorchBackend(b))
    assert isinstance(served.bundle.sam.image_encoder, DeferredEncoder)  # nothing encoded yet
    assert served.predict(_image(3)).structures
    assert not isinstance(served.bundle.sam.image_encoder, DeferredEncoder)


def test_under_an_exported_backend_with_cached_graphs_it_is_never_built(
    frozen_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def factory(bundle):
        return build_exported(bundle, "onnxruntime-fp32", tmp_path, threads=1)

    Predictor.from_dir(frozen_dir, backend=factory)  # exports (builds the encoder once)
    built: list[object] = []
    original = DeferredEncoder.build
    monkeypatch.setattr(DeferredEncoder, "build", lambda self: built.append(1) or original(self))
    served = Predictor.from_dir(frozen_dir, backend=factory)  # graphs from the cache
    assert built == []
    assert isinstance(served.bundle.sam.image_encoder, Released)
    assert served.predict(_image(4)).structures


def test_serving_litemedsam_imports_neither_timm_nor_torchvision() -> None:
    """The shipped LiteMedSAM demo bundle: loaded deferred and hashed (what a studio does before
    it finds its cached graphs), no TinyViT, timm, torchvision or torch._dynamo import; the hash
    equals the eagerly built bundle's, computed afterwards in the same process."""
    code = (
        "import sys\n"
        "from adasam.bundle import load_bundle\n"
        "from adasam.export import bundle_hash\n"
        "from adasam.settings import DEMO_BUNDLES\n"
        "path = DEMO_BUNDLES['thigh-mri']\n"
        "lazy = bundle_hash(load_bundle(path, merged=True, defer_encoder=True))\n"
        "heavy = [m for m in ('timm', 'torchvision', 'torch._dynamo') if m in sys.modules]\n"
        "eager = bundle_hash(load_bundle(path, merged=True))\n"
        "print(heavy, lazy == eager, 'timm' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip().splitlines()[-1] == "[] True True", out.stdout + out.stderr
