from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adasam.config import LoraSettings
from adasam.errors import BundleError
from adasam.sam import (
    adapter_state_dict,
    add_lora,
    base_state_dict,
    build_lora_sam,
    build_sam,
    load_adapter,
    load_strict,
    read_public_checkpoint,
)
from tests.conftest import TINY_SAM


def test_lora_on_encoder_qkv_only_adapters_trainable() -> None:
    sam = add_lora(build_sam(TINY_SAM), LoraSettings(r=4))
    trainable = [n for n, p in sam.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(".attn.qkv." in n for n in trainable)
    assert len(trainable) == 2 * TINY_SAM.encoder_depth
    a = dict(sam.named_parameters())["image_encoder.blocks.0.attn.qkv.lora_A.default.weight"]
    assert a.shape == (4, TINY_SAM.encoder_embed_dim)


def test_lora_on_decoder_attention_when_asked() -> None:
    sam = add_lora(build_sam(TINY_SAM), LoraSettings(decoder=True))
    names = [n for n, p in sam.named_parameters() if p.requires_grad]
    dec = [n for n in names if n.startswith("mask_decoder")]
    # 2 layers × 3 attentions + final attention, × 4 projections, × (A, B)
    assert len(dec) == (2 * 3 + 1) * 4 * 2


def test_fresh_lora_leaves_outputs_unchanged_and_base_keys_round_trip() -> None:
    torch.manual_seed(0)
    plain = build_sam(TINY_SAM)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        ref = plain.image_encoder(x)
    lora = build_lora_sam(TINY_SAM, LoraSettings(), plain.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(lora.image_encoder(x), ref)
    assert set(base_state_dict(lora)) == set(plain.state_dict())


def test_adapter_round_trip_and_strictness() -> None:
    sam = build_lora_sam(TINY_SAM, LoraSettings(), None)
    state = {k: torch.randn_like(v) for k, v in adapter_state_dict(sam).items()}
    other = build_lora_sam(TINY_SAM, LoraSettings(), None)
    load_adapter(other, state)
    for k, v in adapter_state_dict(other).items():
        torch.testing.assert_close(v, state[k])
    missing = dict(state)
    key = next(iter(missing))
    del missing[key]
    with pytest.raises(BundleError, match=key.replace(".", r"\.")):
        load_adapter(other, missing)
    with pytest.raises(BundleError, match="lora.r"):
        load_adapter(build_lora_sam(TINY_SAM, LoraSettings(r=2), None), state)


def test_load_strict_names_missing_unexpected_and_shape() -> None:
    sam = build_sam(TINY_SAM)
    state = dict(sam.state_dict())
    state.pop("mask_decoder.iou_token.weight")
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(BundleError, match="'mask_decoder.iou_token.weight'.*'extra.weight'"):
        load_strict(sam, state, "weights")
    state = dict(sam.state_dict())
    state["mask_decoder.iou_token.weight"] = torch.zeros(2, 2)
    with pytest.raises(BundleError, match="iou_token.weight.*shape"):
        load_strict(sam, state, "weights")


def test_public_checkpoint_from_file_and_hub(tmp_path: Path, monkeypatch) -> None:
    from dataclasses import replace

    sam = build_sam(TINY_SAM)
    ckpt = tmp_path / "sam_tiny.pth"
    torch.save(sam.state_dict(), ckpt)
    state = read_public_checkpoint(replace(TINY_SAM, checkpoint=str(ckpt)))
    assert set(state) == set(sam.state_dict())

    calls = []

    def fake_download(repo_id: str, filename: str, cache_dir=None) -> str:
        calls.append((repo_id, filename))
        return str(ckpt)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    cfg = replace(TINY_SAM, hub_repo="org/sam", hub_filename="sam_tiny.pth")
    assert set(read_public_checkpoint(cfg)) == set(state)
    assert calls == [("org/sam", "sam_tiny.pth")]

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(BundleError, match="could not fetch SAM weights.*org/sam"):
        read_public_checkpoint(cfg)
    with pytest.raises(BundleError, match="does not exist"):
        read_public_checkpoint(replace(TINY_SAM, checkpoint=str(tmp_path / "nope.pth")))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(BundleError, match="not a readable"):
        read_public_checkpoint(replace(TINY_SAM, checkpoint=str(tmp_path / "junk.pth")))


def test_train_decoder_adapter_holds_the_whole_decoder() -> None:
    sam = build_lora_sam(TINY_SAM, LoraSettings(train_decoder=True), None)
    plain_keys = set(adapter_state_dict(sam))
    full = adapter_state_dict(sam, train_decoder=True)
    decoder = {k for k in sam.state_dict() if k.startswith("mask_decoder.")}
    assert decoder <= set(full) and plain_keys < set(full)
    assert not any(k.startswith("image_encoder.") and "lora_" not in k for k in full)
    state = {k: torch.randn_like(v) for k, v in full.items()}
    other = build_lora_sam(TINY_SAM, LoraSettings(train_decoder=True), None)
    load_adapter(other, state, train_decoder=True)
    for k, v in adapter_state_dict(other, train_decoder=True).items():
        torch.testing.assert_close(v, state[k])
    with pytest.raises(BundleError, match="train_decoder"):
        load_adapter(other, state)  # decoder weights where only LoRA is expected
