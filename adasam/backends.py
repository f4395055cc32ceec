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
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch

from adasam.bundle import ModelBundle
from adasam.deferred import ensure_encoder
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

    replaces: tuple[str, ...] = ()  # it runs the bundle's own modules

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
        self._sam = bundle.sam
        self._compile = compile
        self._encoder: torch.nn.Module | None = None
        self._building = threading.Lock()
        self.name = "torch" + (f"-{autocast}" if autocast else "")
        self.name += "-compiled" if compile else ""
        self.encode = gpu(self._encode)  # type: ignore[method-assign]
        self.classify = gpu(self._classify)  # type: ignore[method-assign]

    @property
    def encoder(self) -> torch.nn.Module:
        """SAM's image encoder, built on first use (a deferred one,
        :func:`adasam.deferred.ensure_encoder`): a predictor whose embeddings all come from
        elsewhere never builds it."""
        if self._encoder is None:
            with self._building:
                if self._encoder is None:
                    encoder = ensure_encoder(self._sam)
                    if self._compile:
                        encoder = torch.compile(encoder)  # type: ignore[assignment]
                    self._encoder = encoder
        return self._encoder

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


class Released(torch.nn.Module):
    """Stands in for an eager PyTorch module whose work an exported backend does, so that its
    weights are freed (:meth:`adasam.predictor.Predictor.from_dir`). Calling it is an error
    that says so; ``img_size`` is kept for an image encoder (``Sam.preprocess`` pads to it)."""

    def __init__(self, what: str, backend: str, img_size: int | None = None) -> None:
        super().__init__()
        self.what, self.backend = what, backend
        if img_size is not None:
            self.img_size = img_size

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        raise RuntimeError(
            f"the eager {self.what} of this predictor was released: backend {self.backend} "
            "runs it (adasam.bundle.load_bundle gives a bundle with every PyTorch module)"
        )


def release_replaced(bundle: ModelBundle, backend: object) -> list[str]:
    """Replace the modules of ``bundle.sam`` that ``backend`` runs itself (its ``replaces``:
    ``"image_encoder"``, ``"mask_decoder"``) by :class:`Released` stand-ins, freeing their
    weights; returns their names. Only for a bundle nothing else uses (a predictor's own)."""
    released = []
    for attr in getattr(backend, "replaces", ()):
        module = getattr(bundle.sam, attr)
        if isinstance(module, Released):
            continue
        size = getattr(module, "img_size", None)
        name = getattr(backend, "name", type(backend).__name__)
        setattr(bundle.sam, attr, Released(attr.replace("_", " "), name, size))
        released.append(attr)
    return released


BACKENDS = (
    "torch",
    "onnxruntime-fp32",
    "onnxruntime-int8",
    "openvino-fp32",
    "openvino-bf16",
    "openvino-bf16-clicks",
    "openvino-int8",
)
"""Names ``ADASAM_BACKEND`` accepts besides ``auto``."""


def make_backend(
    name: str,
    bundle: ModelBundle,
    *,
    cache_dir: Path,
    device: str | torch.device = "cpu",
    threads: int | None = None,
) -> tuple[Backend, str]:
    """The backend ``name`` (or ``auto``) for ``bundle`` and why it was chosen.

    ``auto`` takes the fastest backend that passed the accuracy guard for this bundle on this
    machine (:func:`adasam.guard.choose`), PyTorch when there is none, and PyTorch on CUDA
    (the exported graphs are CPU graphs). A named exported backend that cannot run here
    (OpenVINO not installed) is an error, not a silent fallback.
    """
    if name not in ("auto", *BACKENDS):
        raise ValueError(f"unknown backend {name!r}; choose auto or one of {', '.join(BACKENDS)}")
    if torch.device(device).type != "cpu":
        if name not in ("auto", "torch"):
            raise ValueError(f"backend {name} runs on the CPU; the device is {device}")
        return TorchBackend(bundle, device), f"PyTorch on {device}"
    if name == "auto":
        from adasam.export import bundle_hash
        from adasam.guard import choose

        name, reason = choose(cache_dir, bundle_hash(bundle))
    else:
        reason = "set by ADASAM_BACKEND"
    if name == "torch":
        return TorchBackend(bundle, device), reason
    from adasam.onnx_backend import build_exported

    return build_exported(bundle, name, cache_dir, device, threads), reason


def startup_report(name: str, cache_dir: Path, device: str = "cpu") -> list[str]:
    """Lines for the start-up log: the backend setting and, for ``auto`` on the CPU, what
    each model with an accuracy-guard record of this machine will get and why (read from the
    records; nothing is loaded). The choice is made again, hash checked, when a model loads."""
    head = f"encoder backend: ADASAM_BACKEND={name}"
    if name != "auto":
        return [f"{head} (set explicitly; every model uses it)"]
    if torch.device(device).type != "cpu":
        return [f"{head}: PyTorch on {device} (the exported graphs are CPU graphs)"]
    from adasam.guard import summary

    lines = summary(cache_dir)
    if not lines:
        return [
            f"{head}: no accuracy-guard record for this machine, so PyTorch for every model "
            "(python -m adasam bench --bundle DIR measures one)"
        ]
    return [f"{head}: the fastest backend that passed the accuracy guard here, per model:"] + [
        f"  {line}" for line in lines
    ]


def backend_factory(
    name: str, cache_dir: Path, device: str, report: Callable[[str], None] = print
) -> Callable[[ModelBundle], Backend]:
    """For :meth:`Predictor.from_dir`: builds the backend of each loaded bundle and reports
    the choice and its reason (printed at start-up / model load)."""

    def build(bundle: ModelBundle) -> Backend:
        start = time.perf_counter()
        backend, reason = make_backend(name, bundle, cache_dir=cache_dir, device=device)
        took = time.perf_counter() - start
        ready = f"; built in {took:.0f} s (graphs exported once, then cached)" if took > 10 else ""
        report(
            f"model {bundle.config.name} v{bundle.version}: backend {backend.name} "
            f"({reason}){ready}"
        )
        return backend

    return build
