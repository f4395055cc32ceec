"""Embeddings for training from the frozen encoder's exported fp32 graph instead of eager PyTorch.

A training run that freezes SAM's image encoder encodes each slice once into the embedding store
(:mod:`adasam.embedding_store`); with LiteMedSAM that is most of a few-label run on two CPU cores
(about 1.25 s per slice eager). The same encoder exported to ONNX and run in fp32 by OpenVINO or
ONNX Runtime gives the same embeddings to float rounding, several times faster
(``python -m adasam bench --training-encode`` prints the ratio on this machine). fp32 only: a
training set's embeddings are the reference its models learn from, so no bf16 or int8 here.

The graph is exported once per encoder into the store's own folder (named by the encoder's
identity, :func:`adasam.embedding_store.encoder_identity`) and checked on the first slice of every
fill against the eager encoder: a relative difference above :data:`TOLERANCE` means the eager
encoder is used for that fill, and the reason is printed (never a silent switch).
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

ENGINES = ("auto", "torch", "openvino-fp32", "onnxruntime-fp32")
"""``auto``: OpenVINO when installed, else ONNX Runtime; ``torch``: the eager encoder."""
TOLERANCE = 1e-3
"""Largest ``max |exported − eager| / max |eager|`` accepted on a fill's first slice."""
GRAPH_NAME = "encoder.fp32.onnx"


def resolve_engine(engine: str) -> str:
    """The engine ``engine`` names here (``auto`` resolved); raises on an unknown name."""
    if engine not in ENGINES:
        raise ValueError(f"unknown encoder engine {engine!r}; one of {', '.join(ENGINES)}")
    if engine == "auto":
        has_openvino = importlib.util.find_spec("openvino") is not None
        return "openvino-fp32" if has_openvino else "onnxruntime-fp32"
    return engine


def export_encoder(encoder: nn.Module, image_size: int, folder: Path) -> Path:
    """``folder/encoder.fp32.onnx`` of ``encoder`` (a copy exported; written atomically once)."""
    from adasam.export import ENCODER_INPUT, ENCODER_OUTPUT, _export

    path = Path(folder) / GRAPH_NAME
    if not path.is_file():
        x = torch.zeros(1, 3, image_size, image_size)
        _export(copy.deepcopy(encoder), x, path, [ENCODER_INPUT], [ENCODER_OUTPUT])
    return path


class ExportedEncoder:
    """The exported encoder graph: float ``(B, 3, S, S)`` (SAM's preprocessed input) →
    float32 ``(B, C, e, e)``, one slice per call of the fixed-batch graph."""

    def __init__(self, path: Path, engine: str, threads: int | None = None) -> None:
        from adasam.onnx_backend import _OrtRunner, _OvRunner

        self.engine = resolve_engine(engine)
        if self.engine == "torch":
            raise ValueError("the torch engine is the eager encoder, not an exported graph")
        n = threads or torch.get_num_threads()
        self._run: Callable[[np.ndarray], list[np.ndarray]] = (
            _OvRunner(path, n, "fp32") if self.engine == "openvino-fp32" else _OrtRunner(path, n)
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch = np.ascontiguousarray(x.detach().float().cpu().numpy())
        out = [self._run(batch[i : i + 1])[0] for i in range(len(batch))]
        return torch.from_numpy(np.concatenate(out).astype(np.float32, copy=False))


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a − b| / max |b|`` (b the reference)."""
    scale = float(b.abs().max().clamp(min=1e-12))
    return float((a.float() - b.float()).abs().max()) / scale


__all__ = [
    "ENGINES",
    "GRAPH_NAME",
    "TOLERANCE",
    "ExportedEncoder",
    "export_encoder",
    "relative_difference",
    "resolve_engine",
]
