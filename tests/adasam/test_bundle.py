from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from adasam.bundle import (
    ADAPTER_FILE,
    CLASSIFIER_FILE,
    SAM_BASE_FILE,
    create_bundle,
    load_bundle,
    read_config,
    save_bundle,
    with_version,
)
from adasam.errors import BundleError
from adasam.sam import build_sam
from tests.conftest import TINY_SAM, tiny_config


def _outputs(bundle) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        return bundle.sam.image_encoder(x), bundle.classifier(torch.randn(1, 3, 64, 64))


def _randomise_lora(bundle) -> None:
    with torch.no_grad():
        for n, p in bundle.sam.named_parameters():
            if "lora_" in n:
                p.normal_(0, 0.05)


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    bundle = create_bundle(tiny_config(), seed=3)
    _randomise_lora(bundle)
    path = save_bundle(bundle, tmp_path / "b")
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["config.json", CLASSIFIER_FILE, ADAPTER_FILE, SAM_BASE_FILE]
    )
    loaded = load_bundle(path)
    assert loaded.config == bundle.config
    for a, b in zip(_outputs(bundle), _outputs(loaded), strict=True):
        torch.testing.assert_close(a, b)


def test_float16_bundle_is_smaller_and_close(tmp_path: Path) -> None:
    bundle = create_bundle(tiny_config(weights_dtype="float16"), seed=3)
    p16 = save_bundle(bundle, tmp_path / "b16")
    p32 = save_bundle(create_bundle(tiny_config(), seed=3), tmp_path / "b32")
    size = lambda p: sum(f.stat().st_size for f in p.iterdir())  # noqa: E731
    assert size(p16) < 0.6 * size(p32)
    loaded = load_bundle(p16)
    for a, b in zip(_outputs(bundle), _outputs(loaded), strict=True):
        torch.testing.assert_close(a, b, atol=5e-2, rtol=5e-2)


def test_resave_replaces_atomically_and_versions(tmp_path: Path) -> None:
    bundle = create_bundle(tiny_config(), seed=0)
    save_bundle(bundle, tmp_path / "b")
    v2 = with_version(bundle, "2", trained=True)
    save_bundle(v2, tmp_path / "b")
    cfg = read_config(tmp_path / "b")
    assert (cfg.version, cfg.parent_version, cfg.trained) == ("2", "0", True)
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_public_base_is_not_copied_into_the_bundle(tmp_path: Path) -> None:
    ckpt = tmp_path / "sam_tiny.pth"
    torch.save(build_sam(TINY_SAM).state_dict(), ckpt)
    cfg = tiny_config(sam=replace(TINY_SAM, checkpoint=str(ckpt)))
    path = save_bundle(create_bundle(cfg), tmp_path / "pub")
    assert not (path / SAM_BASE_FILE).exists()
    loaded = load_bundle(path)
    ref = torch.load(ckpt, weights_only=True)
    got = loaded.sam.state_dict()["image_encoder.blocks.0.attn.qkv.base_layer.weight"]
    torch.testing.assert_close(got, ref["image_encoder.blocks.0.attn.qkv.weight"])


def test_clear_errors_for_broken_bundles(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="config.json is missing"):
        load_bundle(tmp_path / "empty")
    good = save_bundle(create_bundle(tiny_config()), tmp_path / "good")

    bad_json = save_bundle(create_bundle(tiny_config()), tmp_path / "badjson")
    (bad_json / "config.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(bad_json)

    typo = save_bundle(create_bundle(tiny_config()), tmp_path / "typo")
    data = json.loads((typo / "config.json").read_text())
    data["lora"]["rank"] = 4
    (typo / "config.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="rank"):
        load_bundle(typo)

    (good / ADAPTER_FILE).unlink()
    with pytest.raises(BundleError, match="adapter.safetensors is missing"):
        load_bundle(good)

    corrupt = save_bundle(create_bundle(tiny_config()), tmp_path / "corrupt")
    data = (corrupt / CLASSIFIER_FILE).read_bytes()
    (corrupt / CLASSIFIER_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="not a readable safetensors"):
        load_bundle(corrupt)

    other = save_bundle(create_bundle(tiny_config(structures=("a", "b", "c"))), tmp_path / "o")
    mismatch = save_bundle(create_bundle(tiny_config()), tmp_path / "mismatch")
    (mismatch / CLASSIFIER_FILE).write_bytes((other / CLASSIFIER_FILE).read_bytes())
    with pytest.raises(BundleError, match="head.weight.*shape"):
        load_bundle(mismatch)


def test_bundle_weights_have_no_nan(tmp_path: Path) -> None:
    b = load_bundle(save_bundle(create_bundle(tiny_config()), tmp_path / "b"))
    for t in list(b.sam.state_dict().values()) + list(b.classifier.state_dict().values()):
        if t.is_floating_point():
            assert np.isfinite(t.numpy()).all()


def test_trained_decoder_survives_a_public_base(tmp_path: Path) -> None:
    """With a public checkpoint only the adapter file is ours: a trained decoder must be in it."""
    ckpt = tmp_path / "sam_tiny.pth"
    torch.save(build_sam(TINY_SAM).state_dict(), ckpt)
    cfg = tiny_config(sam=replace(TINY_SAM, checkpoint=str(ckpt)))
    cfg = replace(cfg, lora=replace(cfg.lora, train_decoder=True))
    bundle = create_bundle(cfg)
    with torch.no_grad():
        bundle.sam.mask_decoder.iou_prediction_head.layers[0].weight.add_(1.0)
    loaded = load_bundle(save_bundle(bundle, tmp_path / "pub"))
    torch.testing.assert_close(
        loaded.sam.mask_decoder.iou_prediction_head.layers[0].weight,
        bundle.sam.mask_decoder.iou_prediction_head.layers[0].weight,
    )
    # the same edit without train_decoder is (correctly) not kept: the base comes from ckpt
    plain = create_bundle(tiny_config(sam=replace(TINY_SAM, checkpoint=str(ckpt))))
    with torch.no_grad():
        plain.sam.mask_decoder.iou_prediction_head.layers[0].weight.add_(1.0)
    reloaded = load_bundle(save_bundle(plain, tmp_path / "pub2"))
    assert not torch.equal(
        reloaded.sam.mask_decoder.iou_prediction_head.layers[0].weight,
        plain.sam.mask_decoder.iou_prediction_head.layers[0].weight,
    )
