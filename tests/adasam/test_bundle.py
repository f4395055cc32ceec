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


def _lora_everywhere(**lora: object):
    cfg = tiny_config()
    return replace(cfg, lora=replace(cfg.lora, decoder=True, **lora))


@pytest.mark.parametrize("train_decoder", [False, True])
def test_merged_load_equals_peft_merge_bit_for_bit(tmp_path: Path, train_decoder: bool) -> None:
    """Inference loading merges every LoRA pair itself: the same weights as peft's merge,
    the same bundle hash (so guard records and graph caches still match), the same masks."""
    from adasam.export import bundle_hash, merged_copy
    from adasam.predictor import Predictor

    bundle = create_bundle(_lora_everywhere(train_decoder=train_decoder), seed=3)
    _randomise_lora(bundle)
    if train_decoder:
        with torch.no_grad():  # a trained decoder weight under a LoRA layer (peft's base_layer)
            bundle.sam.mask_decoder.transformer.layers[0].self_attn.q_proj.base_layer.weight.add_(
                0.1
            )
    path = save_bundle(bundle, tmp_path / "b")
    peft_loaded, merged = load_bundle(path), load_bundle(path, merged=True)
    want, got = merged_copy(peft_loaded.sam).state_dict(), merged.sam.state_dict()
    assert sorted(want) == sorted(got)
    assert not any("lora_" in k or "base_layer" in k for k in got)
    assert [k for k in want if not torch.equal(want[k], got[k])] == []
    assert bundle_hash(peft_loaded) == bundle_hash(merged)
    image = (np.random.default_rng(0).random((96, 80, 3)) * 255).astype(np.uint8)
    a = Predictor(peft_loaded).segment(image, box=[10, 10, 60, 70])
    b = Predictor(merged).segment(image, box=[10, 10, 60, 70])
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.mask, y.mask)
        assert x.score == pytest.approx(y.score, abs=1e-5)


def test_merged_load_is_strict_and_cannot_be_saved(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    bundle = create_bundle(_lora_everywhere(), seed=3)
    path = save_bundle(bundle, tmp_path / "b")
    merged = load_bundle(path, merged=True)
    with pytest.raises(BundleError, match="merged=False to train or save"):
        save_bundle(merged, tmp_path / "again")
    assert not (tmp_path / "again").exists()
    assert load_bundle(path).config == bundle.config  # what was stored is untouched

    state = load_file(str(path / ADAPTER_FILE))
    dropped = next(k for k in state if "lora_B" in k)
    save_file({k: v for k, v in state.items() if k != dropped}, str(path / ADAPTER_FILE))
    with pytest.raises(BundleError, match="missing .*lora_B"):
        load_bundle(path, merged=True)
    save_file({**state, "mask_decoder.extra.weight": torch.zeros(2)}, str(path / ADAPTER_FILE))
    with pytest.raises(BundleError, match="unexpected .*mask_decoder.extra"):
        load_bundle(path, merged=True)
    key_a = next(k for k in state if "lora_A" in k)
    wrong = {**state, key_a: torch.zeros(state[key_a].shape[0] + 1, state[key_a].shape[1])}
    save_file(wrong, str(path / ADAPTER_FILE))
    with pytest.raises(BundleError, match="does not fit"):
        load_bundle(path, merged=True)


def test_serving_a_bundle_does_not_import_peft(tiny_bundle_dir: Path) -> None:
    """The studio and `predict` load with Predictor.from_dir: no peft (nor transformers,
    accelerate) in that process: about 70 MiB of resident memory (see the README's bench)."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np\n"
        "from adasam.predictor import Predictor\n"
        f"p = Predictor.from_dir({str(tiny_bundle_dir)!r})\n"
        "p.predict(np.zeros((64, 64, 3), np.uint8))\n"
        "from adasam.export import bundle_hash, merged_copy\n"
        "bundle_hash(p.bundle)\n"
        "print(sorted(m for m in ('peft', 'transformers', 'accelerate') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
