"""Where the image encoder and the classifier run: PyTorch (the reference) or an exported graph.

A backend has two calls, both on the model inputs :class:`~adasam.predictor.Predictor` prepares:

- ``encode(x)``: SAM's preprocessed input float ``(1, 3, S, S)`` → image embedding float32
  tensor ``(1, C, h, w)`` on the predictor's device.
- ``classify(x)``: the image classifier's input float ``(1, 3, S', S')`` (ImageNet-normalised)
  → logits float32 ``(C,)``, raw class activation maps float32 ``(C, h', w')`` (≥ 0) and pooled
  features float32 ``(K,)``, from one forward pass (:func:`adasam.gradcam.cam_logits`; no
  backward pass). Bundles whose classifier reads SAM's embedding (``sam-embedding``) never call
  it: their small head runs in PyTorch on the embedding ``encode`` returned.

:class:`TorchBackend` runs the bundle's own modules (optionally under fp16/bf16 autocast and
``torch.compile`` on CUDA). The exported backends (ONNX Runtime, OpenVINO; fp32, int8, bf16) are
in :mod:`adasam.export` and :mod:`adasam.onnx_backend`; :func:`make_backend` builds any of them
by name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal, Protocol

import numpy as np
import torch

from adasam.bundle import ModelBundle
from adasam.gradcam import cam_logits
from adasam.zerogpu import gpu

Autocast = Literal["float16", "bfloat16"]


class Backend(Protocol):
    """What the predictor calls for the encoder and the classifier (see the module doc)."""

    name: str

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def classify(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


class TorchBackend:
    """The bundle's PyTorch modules (eager fp32 by default: the reference and the fallback).

    Args:
        bundle: the loaded bundle (its modules are used, not copied).
        device: where they run.
        autocast: ``"float16"`` or ``"bfloat16"`` mixed precision (CUDA; bf16 also on CPU), or
            ``None`` for fp32.
        compile: wrap the image encoder in ``torch.compile`` (worth it on CUDA, where the
            first call compiles; not used on the CPU by default).
    """

    def __init__(
        self,
        bundle: ModelBundle,
        device: str | torch.device = "cpu",
        *,
        autocast: Autocast | None = None,
        compile: bool = False,
    ) -> None:
        if autocast not in (None, "float16", "bfloat16"):
            raise ValueError(f"autocast must be float16, bfloat16 or None, got {autocast!r}")
        self.device = torch.device(device)
        self.autocast = autocast
        self.classifier = bundle.classifier
        self.encoder = bundle.sam.image_encoder
        if compile:
            self.encoder = torch.compile(self.encoder)  # type: ignore[assignment]
        self.name = "torch" + (f"-{autocast}" if autocast else "")
        self.name += "-compiled" if compile else ""
        self.encode = gpu(self._encode)  # type: ignore[method-assign]
        self.classify = gpu(self._classify)  # type: ignore[method-assign]

    @contextlib.contextmanager
    def _context(self) -> Iterator[None]:
        with torch.inference_mode():
            if self.autocast is None:
                yield
            else:
                dtype = getattr(torch, self.autocast)
                with torch.autocast(self.device.type, dtype=dtype):
                    yield

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        with self._context():
            return self.encoder(x.to(self.device)).float()

    def _classify(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self._context():
            logits, cam, pooled = cam_logits(self.classifier, x.to(self.device))
        return tuple(t[0].float().cpu().numpy() for t in (logits, cam, pooled))  # type: ignore[return-value]

    def encode_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Volumes: ``(B, 3, S, S)`` → ``(B, C, h, w)`` in one call (batched on the GPU)."""
        return self._encode(x)
