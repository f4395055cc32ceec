"""ONNX graphs of a bundle's image encoder (LoRA merged) and image classifier, cached on disk.

Layout under the cache directory (``Settings.cache_dir``)::

    CACHE/onnx/<bundle hash[:20]>/
      encoder.fp32.onnx      SAM's image encoder, LoRA merged into the base weights
      classifier.fp32.onnx   the image classifier → logits, raw CAMs, pooled features
      encoder.int8.onnx      ONNX Runtime static quantisation (QDQ; Conv/MatMul/Gemm) of the
      classifier.int8.onnx   above, calibrated on phantom slices
      meta.json              what was exported, with which versions
    CACHE/onnx/decoder-<decoder hash[:20]>/
      decoder.fp32.onnx      SAM's mask decoder (LoRA merged, dense positional encoding
                             folded in as a constant): embedding + prompt embeddings → the four
                             low-resolution masks and their IoU scores (:class:`DecoderGraph`)

The key is :func:`bundle_hash` (the decoder's: :func:`decoder_hash`): the sha256 of the config
and of every weight of the exported modules (after the merge), plus the exporter's versions, so
a retrained bundle (or another torch / ONNX Runtime) gets fresh graphs and an unchanged one
reuses them. Files are written to a temporary name and renamed, so a crash never leaves a
half-written graph under a valid name. Encoder graphs take batch 1 (one slice per call); volumes
batch on the GPU in PyTorch instead.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from adasam.bundle import ModelBundle
from adasam.classifier import takes_embedding
from adasam.deferred import ensure_encoder
from adasam.gradcam import cam_logits

EXPORT_FORMAT = 1
OPSET = 17
ENCODER_INPUT, ENCODER_OUTPUT = "image", "embedding"
CLASSIFIER_INPUT = "image"
CLASSIFIER_OUTPUTS = ("logits", "cam", "pooled")
QUANT_OPS = ("Conv", "MatMul", "Gemm")


def merged_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with every peft LoRA layer merged into its base layer
    (``W + B·A·alpha/r``) and replaced by it: plain modules, same outputs, exportable.
    A module without LoRA layers (a bundle loaded ``merged=True``) is simply copied."""
    out = copy.deepcopy(module).eval()
    LoraLayer = _lora_layer_type()
    if LoraLayer is None:
        return out
    for name, sub in list(out.named_modules()):
        if isinstance(sub, LoraLayer):
            sub.merge()
            parent_name, _, child = name.rpartition(".")
            parent = out.get_submodule(parent_name) if parent_name else out
            setattr(parent, child, sub.get_base_layer())
    return out


def merged_encoder(bundle: ModelBundle) -> nn.Module:
    """A copy of SAM's image encoder with its LoRA layers merged (:func:`merged_copy`)."""
    return merged_copy(ensure_encoder(bundle.sam))


DECODER_INPUTS = ("embedding", "sparse", "dense")
DECODER_OUTPUTS = ("masks", "iou")


class DecoderGraph(nn.Module):
    """SAM's mask decoder as one graph, exactly ``MaskDecoder.predict_masks`` for one image.

    Inputs: the image ``embedding`` ``(1, C, e, e)``, the prompt encoder's ``sparse``
    ``(N, T, C)`` and ``dense`` ``(N, C, e, e)`` embeddings of N prompts (one image, N
    objects: the embedding is broadcast instead of repeated). Outputs: all four low-resolution
    mask logits ``(N, 4, m, m)`` (index 0 the single-mask answer, 1–3 the multimask ones) and
    their IoU predictions ``(N, 4)``. The dense positional encoding (``get_dense_pe()``, a
    function of the prompt encoder's fixed random matrix only) is a constant of the graph.
    """

    def __init__(self, mask_decoder: nn.Module, image_pe: torch.Tensor) -> None:
        super().__init__()
        self.decoder = mask_decoder
        self.register_buffer("image_pe", image_pe.detach().clone())

    def forward(
        self, embedding: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.decoder
        output_tokens = torch.cat([d.iou_token.weight, d.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
        tokens = torch.cat((output_tokens, sparse), dim=1)
        src = embedding + dense  # broadcast over the N prompts (predict_masks repeats)
        b, c, h, w = src.shape
        hs, src = d.transformer(src, self.image_pe, tokens)
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1 : (1 + d.num_mask_tokens), :]
        src = src.transpose(1, 2).reshape(b, c, h, w)
        upscaled = d.output_upscaling(src)
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(d.output_hypernetworks_mlps)],
            dim=1,
        )
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, c, h * w)).reshape(b, -1, h, w)
        return masks, d.iou_prediction_head(iou_token_out)


def decoder_graph(bundle: ModelBundle) -> DecoderGraph:
    """The bundle's mask decoder (LoRA merged, a copy) as a :class:`DecoderGraph`."""
    sam = bundle.sam
    with torch.no_grad():
        pe = sam.prompt_encoder.get_dense_pe().cpu()
    return DecoderGraph(merged_copy(sam.mask_decoder).cpu(), pe).eval()


def decoder_hash(bundle: ModelBundle) -> str:
    """sha256 (hex) of the merged mask decoder's weights, the positional encoding, the
    decoder-relevant config and the exporter's versions: the key of the decoder graph."""
    h = hashlib.sha256()
    h.update(repr(bundle.config.sam).encode())  # a dataclass: its fields, in order
    h.update(json.dumps(_versions(), sort_keys=True).encode())
    decoder = bundle.sam.mask_decoder
    if has_lora(decoder):
        state = decoder_graph(bundle).state_dict()  # merged, a copy
    else:  # the same keys and values as the graph's, without copying the decoder
        with torch.no_grad():
            pe = bundle.sam.prompt_encoder.get_dense_pe()
        state = {f"decoder.{k}": v for k, v in decoder.state_dict().items()} | {"image_pe": pe}
    for key, value in sorted(state.items()):
        h.update((key + str(tuple(value.shape)) + str(value.dtype)).encode())
        h.update(np.ascontiguousarray(value.detach().cpu().numpy()))  # no bytes copy
    return h.hexdigest()


def export_decoder(bundle: ModelBundle, cache_dir: Path) -> Path:
    """The fp32 decoder graph of ``bundle`` (exported once, then read from the cache):
    dynamic number of prompts N and of sparse tokens T."""
    digest = decoder_hash(bundle)
    path = Path(cache_dir) / "onnx" / f"decoder-{digest[:20]}" / "decoder.fp32.onnx"
    if path.is_file():
        return path
    graph = decoder_graph(bundle)
    c, e = bundle.config.sam.prompt_embed_dim, bundle.config.sam.embedding_size
    example = (torch.zeros(1, c, e, e), torch.zeros(1, 3, c), torch.zeros(1, c, e, e))

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                example,
                str(tmp),
                dynamo=False,
                opset_version=OPSET,
                input_names=list(DECODER_INPUTS),
                output_names=list(DECODER_OUTPUTS),
                dynamic_axes={
                    "sparse": {0: "n", 1: "t"},
                    "dense": {0: "n"},
                    "masks": {0: "n"},
                    "iou": {0: "n"},
                },
                external_data=False,
            )

    return _atomic(path, write)


class ClassifierGraph(nn.Module):
    """The image classifier as one graph: ``(1, 3, S, S)`` → logits ``(1, C)``, raw CAMs
    ``(1, C, h, w)`` and pooled features ``(1, K)`` (:func:`adasam.gradcam.cam_logits`)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return cam_logits(self.classifier, x)  # type: ignore[arg-type]


def _versions() -> dict[str, str]:
    import onnxruntime

    return {
        "format": str(EXPORT_FORMAT),
        "opset": str(OPSET),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def bundle_hash(bundle: ModelBundle) -> str:
    """sha256 (hex) of the bundle's config, the merged encoder's and the classifier's weights
    and the exporter's versions: the key of the exported graphs."""
    h = hashlib.sha256()
    h.update(json.dumps(bundle.config.to_dict(), sort_keys=True, default=str).encode())
    h.update(json.dumps(_versions(), sort_keys=True).encode())
    encoder = bundle.sam.image_encoder
    if has_lora(encoder):  # hashed as exported: merged (a copy; the bundle keeps its LoRA)
        encoder = merged_encoder(bundle)
    for prefix, module in (("encoder.", encoder), ("classifier.", bundle.classifier)):
        for key, value in sorted(module.state_dict().items()):
            h.update((prefix + key + str(tuple(value.shape)) + str(value.dtype)).encode())
            h.update(np.ascontiguousarray(value.detach().cpu().numpy()))  # no bytes copy
    return h.hexdigest()


def _lora_layer_type() -> type | None:
    """peft's ``LoraLayer`` class, or None when peft was never imported in this process (then
    no module is a LoRA layer, and peft is not imported just to find out)."""
    peft_lora = sys.modules.get("peft.tuners.lora")
    return None if peft_lora is None else peft_lora.LoraLayer


def has_lora(module: nn.Module) -> bool:
    """Whether ``module`` holds a peft LoRA layer (not merged yet)."""
    LoraLayer = _lora_layer_type()
    return LoraLayer is not None and any(isinstance(sub, LoraLayer) for sub in module.modules())


def export_dir(cache_dir: Path, digest: str) -> Path:
    return Path(cache_dir) / "onnx" / digest[:20]


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` into a temporary file beside ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _export(module: nn.Module, x: torch.Tensor, path: Path, inputs: list[str], outputs: list[str]):
    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.cpu().eval(),
                (x,),
                str(tmp),
                dynamo=False,
                opset_version=OPSET,
                input_names=inputs,
                output_names=outputs,
                external_data=False,
            )

    return _atomic(path, write)


def encoder_input_size(bundle: ModelBundle) -> int:
    """Side of the (square) input of SAM's image encoder."""
    return int(bundle.config.sam.image_size)


def export_fp32(bundle: ModelBundle, cache_dir: Path) -> dict[str, Path]:
    """The fp32 graphs of ``bundle`` (exported once, then read from the cache).

    Returns ``{"encoder": path, "classifier": path}`` (no ``classifier`` when the bundle's
    classifier reads SAM's embedding: that small head stays in PyTorch).
    """
    digest = bundle_hash(bundle)
    out = export_dir(cache_dir, digest)
    paths = {"encoder": out / "encoder.fp32.onnx"}
    if not paths["encoder"].is_file():
        s = encoder_input_size(bundle)
        _export(
            merged_encoder(bundle),
            torch.zeros(1, 3, s, s),
            paths["encoder"],
            [ENCODER_INPUT],
            [ENCODER_OUTPUT],
        )
    if not takes_embedding(bundle.classifier):
        paths["classifier"] = out / "classifier.fp32.onnx"
        if not paths["classifier"].is_file():
            s = int(bundle.config.classifier.image_size)
            graph = ClassifierGraph(copy.deepcopy(bundle.classifier))
            _export(
                graph,
                torch.zeros(1, 3, s, s),
                paths["classifier"],
                [CLASSIFIER_INPUT],
                list(CLASSIFIER_OUTPUTS),
            )
    _write_meta(out, bundle, digest)
    return paths


def _write_meta(out: Path, bundle: ModelBundle, digest: str) -> None:
    meta = {
        "bundle": bundle.config.name,
        "version": bundle.config.version,
        "hash": digest,
        "versions": _versions(),
        "files": sorted(p.name for p in out.glob("*.onnx")),
    }
    _atomic(out / "meta.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))


def quantize_int8(fp32: Path, name: str, calibration: Sequence[np.ndarray], out: Path) -> Path:
    """ONNX Runtime static quantisation of one graph (QDQ, per-channel int8 weights, uint8
    activations, MinMax calibration on ``calibration``: float32 inputs of its input ``name``);
    only Conv, MatMul and Gemm are quantised (norms and softmax stay fp32)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError("int8 quantisation needs at least one calibration input")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{name: np.ascontiguousarray(a, np.float32)} for a in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as work:
            pre = Path(work) / "pre.onnx"
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            quantize_static(
                str(pre),
                str(tmp),
                Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=list(QUANT_OPS),
            )

    return _atomic(out, write)
