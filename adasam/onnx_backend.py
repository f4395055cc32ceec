"""Exported backends: the bundle's graphs (:mod:`adasam.export`) on ONNX Runtime or OpenVINO.

Backend names are ``<runtime>-<precision>``:

- ``onnxruntime-fp32``, ``onnxruntime-int8`` (ONNX Runtime's CPU provider; int8 is the static
  QDQ quantisation calibrated on phantom slices);
- ``openvino-fp32``, ``openvino-bf16`` (OpenVINO's CPU plugin with the bf16 inference
  precision hint: AMX/AVX-512-BF16 where the CPU has it), ``openvino-bf16-clicks`` (the same,
  and the click decoder in bf16 too), ``openvino-int8`` (OpenVINO running the same QDQ int8
  graph). OpenVINO is optional: without the package these names say so.

Every exported backend also runs SAM's mask decoder (the click path) as an ONNX graph
(:class:`DecoderRunner`; :func:`adasam.export.export_decoder`) with dynamic prompt and token
counts: on ONNX Runtime in fp32 (its logits match the eager decoder to about 1e-4), except
under ``openvino-bf16-clicks``, where OpenVINO runs it in bf16 (:func:`decoder_engine`; on the
Intel Xeon with AMX a click took 29 ms instead of 40; on the demo bundles' 5-click sessions
from the ground-truth box its IoU to the truth stayed within 0.0035 of the fp32 decoder's on
liver, 0.021 on thigh). Static shapes would be faster still, but OpenVINO's fused attention
then answers wrongly in bf16 (a score off by 0.79), so shapes stay dynamic. The accuracy guard
compares clicks as well, so ``auto`` takes the bf16 decoder only where it segments like
PyTorch. The prompt encoder stays in PyTorch (about 1 ms).

Outputs are converted back to float32 torch tensors / numpy arrays so the predictor cannot tell
a backend from another, except by :attr:`name`.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adasam.bundle import ModelBundle
from adasam.export import (
    CLASSIFIER_INPUT,
    DECODER_INPUTS,
    ENCODER_INPUT,
    export_decoder,
    export_dir,
    export_fp32,
    quantize_int8,
)
from adasam.workspace import ACTIVE, BusyCount

EXPORTED = (
    "onnxruntime-fp32",
    "onnxruntime-int8",
    "openvino-fp32",
    "openvino-bf16",
    "openvino-bf16-clicks",
    "openvino-int8",
)
CALIBRATION_SEED = 11
"""Phantom seed of the int8 calibration slices (not the accuracy guard's held-out seed)."""
CALIBRATION_PER_KIND = 4


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def available(name: str) -> tuple[bool, str]:
    """Whether backend ``name`` can run here, and why not."""
    if name not in EXPORTED:
        return False, f"unknown backend {name!r}"
    if name.startswith("openvino") and not openvino_available():
        return False, "the openvino package is not installed (optional: pip install openvino)"
    if name.startswith("openvino-bf16") and "BF16" not in _openvino_caps():
        return False, "this CPU has no bf16 support in OpenVINO"
    return True, ""


def _openvino_caps() -> list[str]:
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class _OrtRunner:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return list(self._session.run(None, {self._input: x}))


class _OvRunner:
    def __init__(self, path: Path, threads: int, precision: str, *, inputs: int = 1) -> None:
        import openvino as ov

        config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        self._compiled = ov.Core().compile_model(str(path), "CPU", config)
        self._local = threading.local()  # one infer request per thread: calls run in parallel
        self._n = len(self._compiled.outputs)
        self._inputs = inputs
        self.busy = BusyCount()

    def release_memory(self) -> int:
        """Free the intermediate tensors (1), unless an inference is running (0)."""
        return int(self.busy.release_if_idle(self._compiled.release_memory))

    def __call__(self, *xs: np.ndarray) -> list[np.ndarray]:
        if len(xs) != self._inputs:
            raise ValueError(f"this graph takes {self._inputs} input(s), got {len(xs)}")
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        with self.busy:
            request.infer(dict(enumerate(xs)))
            return [np.array(request.get_output_tensor(i).data) for i in range(self._n)]


DECODER_ENGINES = ("onnxruntime-fp32", "openvino-bf16")


def decoder_engine(backend: str) -> str:
    """What runs the click decoder under exported backend ``backend`` (see the module doc)."""
    return "openvino-bf16" if backend == "openvino-bf16-clicks" else "onnxruntime-fp32"


class DecoderRunner:
    """The mask decoder graph (:class:`adasam.export.DecoderGraph`) on ONNX Runtime (fp32) or
    OpenVINO (bf16), ``engine`` one of :data:`DECODER_ENGINES`.

    ``decode(embedding, sparse, dense)``: float tensors ``(1, C, e, e)``, ``(N, T, C)``,
    ``(N, C, e, e)`` → all four mask logits ``(N, 4, m, m)`` and IoU predictions ``(N, 4)``,
    float32 tensors on ``device``. Concurrent calls run in parallel (one ONNX Runtime session;
    one OpenVINO infer request per thread).
    """

    def __init__(
        self,
        path: Path,
        threads: int,
        device: str | torch.device = "cpu",
        *,
        spinning: bool = False,
        engine: str = "onnxruntime-fp32",
    ) -> None:
        if engine not in DECODER_ENGINES:
            raise ValueError(f"unknown decoder engine {engine!r}; one of {DECODER_ENGINES}")
        self.engine = engine
        self.device = torch.device(device)
        self._ov = (
            _OvRunner(path, threads, "bf16", inputs=len(DECODER_INPUTS))
            if engine == "openvino-bf16"
            else None
        )
        self._run = self._ov or _ort_session(path, threads, spinning)

    def release_memory(self) -> int:
        """Free OpenVINO's intermediate tensors (ONNX Runtime's arena stays); how many."""
        return 0 if self._ov is None else self._ov.release_memory()

    def decode(
        self, embedding: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        feed = [
            np.ascontiguousarray(t.detach().float().cpu().numpy(), np.float32)
            for t in (embedding, sparse, dense)
        ]
        masks, iou = self._run(*feed)
        return torch.from_numpy(masks).to(self.device), torch.from_numpy(iou).to(self.device)


def _ort_session(path: Path, threads: int, spinning: bool) -> Callable[..., list[np.ndarray]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # by default no busy-waiting after a call: PyTorch's prompt encoder and upsampling run
    # right before and after it on the same cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(*arrays: np.ndarray) -> list[np.ndarray]:
        return list(session.run(None, dict(zip(DECODER_INPUTS, arrays, strict=True))))

    return run


class OnnxBackend:
    """Encoder (and image classifier) graphs on ONNX Runtime or OpenVINO.

    Args:
        paths: ``{"encoder": path, "classifier": path, "decoder": path}`` (``classifier``
            optional: bundles whose classifier reads the embedding run that head in PyTorch;
            ``decoder`` optional: without it the predictor runs the eager decoder).
        name: one of :data:`EXPORTED`.
        device: where returned embeddings go (the decoder's device).
        threads: intra-op threads (default: PyTorch's current thread count).
    """

    def __init__(
        self,
        paths: dict[str, Path],
        name: str,
        device: str | torch.device = "cpu",
        threads: int | None = None,
    ) -> None:
        ok, why = available(name)
        if not ok:
            raise ValueError(f"backend {name} cannot run here: {why}")
        self.name = name
        self.device = torch.device(device)
        runtime, precision = name.split("-")[:2]
        n = threads or torch.get_num_threads()
        self._releasable: list[_OvRunner | DecoderRunner] = []
        ACTIVE.use(self)  # the model in use before frees its workspaces before this compiles

        def runner(path: Path) -> _OrtRunner | _OvRunner:
            if runtime == "onnxruntime":
                return _OrtRunner(path, n)
            made = _OvRunner(path, n, precision)
            self._releasable.append(made)
            return made

        self._encoder = runner(paths["encoder"])
        self._classifier = runner(paths["classifier"]) if "classifier" in paths else None
        self.decoder_engine: str | None = None
        # the eager modules it makes unnecessary (the classifier stays: the studio's
        # explanation methods run it in PyTorch)
        self.replaces: tuple[str, ...] = ("image_encoder",)
        if "decoder" in paths:
            self.replaces += ("mask_decoder",)
            self.decoder_engine = decoder_engine(name)
            self._decoder = DecoderRunner(paths["decoder"], n, device, engine=self.decoder_engine)
            self._releasable.append(self._decoder)
            self.decode = self._decode

    def release_memory(self) -> int:
        """Free the OpenVINO workspaces of this backend's graphs that are idle now (see
        :mod:`adasam.workspace`); returns how many were released. The next call re-allocates."""
        return sum(r.release_memory() for r in self._releasable)

    def _decode(
        self, embedding: torch.Tensor, sparse: torch.Tensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ACTIVE.use(self)
        return self._decoder.decode(embedding, sparse, dense)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        ACTIVE.use(self)
        (emb,) = self._encoder(np.ascontiguousarray(x.detach().cpu().numpy(), np.float32))
        return torch.from_numpy(np.asarray(emb, np.float32)).to(self.device)

    def classify(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._classifier is None:
            raise RuntimeError(f"{self.name}: this bundle's classifier reads the embedding")
        ACTIVE.use(self)
        logits, cam, pooled = self._classifier(
            np.ascontiguousarray(x.detach().cpu().numpy(), np.float32)
        )
        return tuple(np.asarray(a[0], np.float32) for a in (logits, cam, pooled))  # type: ignore[return-value]


def calibration_inputs(bundle: ModelBundle) -> dict[str, list[np.ndarray]]:
    """Encoder and classifier inputs of phantom slices (seed :data:`CALIBRATION_SEED`), taken
    from the predictor's own preprocessing by recording what it hands the backend."""
    from adasam.backends import TorchBackend
    from adasam.guard import phantom_images
    from adasam.predictor import Predictor

    seen: dict[str, list[np.ndarray]] = {"encoder": [], "classifier": []}
    torch_backend = TorchBackend(bundle)

    class Recorder:
        name = "torch-recording"

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            seen["encoder"].append(x.detach().cpu().numpy().astype(np.float32))
            return torch_backend.encode(x)

        def classify(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            seen["classifier"].append(x.detach().cpu().numpy().astype(np.float32))
            return torch_backend.classify(x)

    predictor = Predictor(bundle, cache_size=1, backend=Recorder())
    for image in phantom_images(CALIBRATION_SEED, CALIBRATION_PER_KIND):
        predictor.predict(image)
    return seen


def export_paths(bundle: ModelBundle, name: str, cache_dir: Path) -> dict[str, Path]:
    """The graphs backend ``name`` runs (exported and quantised on first use, then cached);
    every one also gets the fp32 decoder graph."""
    paths = export_fp32(bundle, cache_dir)
    decoder = {"decoder": export_decoder(bundle, cache_dir)}
    if not name.endswith("int8"):
        return {**paths, **decoder}
    out = paths["encoder"].parent
    int8 = {k: out / f"{k}.int8.onnx" for k in paths}
    if not all(p.is_file() for p in int8.values()):
        calib = calibration_inputs(bundle)
        inputs = {"encoder": ENCODER_INPUT, "classifier": CLASSIFIER_INPUT}
        for key, target in int8.items():
            if not target.is_file():
                quantize_int8(paths[key], inputs[key], calib[key], target)
    return {**int8, **decoder}


def build_exported(
    bundle: ModelBundle,
    name: str,
    cache_dir: Path,
    device: str | torch.device = "cpu",
    threads: int | None = None,
) -> OnnxBackend:
    """Backend ``name`` for ``bundle``, graphs under ``cache_dir`` (:mod:`adasam.export`)."""
    ok, why = available(name)
    if not ok:
        raise ValueError(f"backend {name} cannot run here: {why}")
    return OnnxBackend(export_paths(bundle, name, cache_dir), name, device, threads)


__all__ = [
    "DECODER_ENGINES",
    "EXPORTED",
    "DecoderRunner",
    "OnnxBackend",
    "available",
    "build_exported",
    "decoder_engine",
    "export_dir",
]
