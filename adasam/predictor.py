"""Encode once, predict many times: classifier + forward CAM → prompts → LoRA-SAM candidates.

:class:`Predictor` owns a loaded bundle and a bounded LRU cache of image embeddings keyed by
(content hash of the model input, model name and version). ``predict`` runs the whole pipeline;
``segment`` and ``refine`` re-run only SAM's prompt encoder and mask decoder on the cached
embedding, which is what makes clicks feel instant. The mask decoder runs in eager PyTorch (the
reference) unless the backend has a ``decode`` (the exported backends: an fp32 ONNX Runtime
graph of the same decoder, LoRA merged; :class:`adasam.onnx_backend.DecoderRunner`); the
dense positional encoding, a constant of the prompt encoder, is computed once.

The predictor holds no per-user state: results are returned, never stored on the object, so one
predictor can serve many sessions. Concurrent calls run in parallel: a lock guards only the
embedding cache, never the models, so the caller decides how many model calls run at once (the
studio: ``ADASAM_MODEL_CONCURRENCY``, enforced by its one model queue). Two concurrent calls
on the same new image may both encode it (the second result is kept).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from adasam.backends import Backend, TorchBackend, release_replaced
from adasam.bundle import ModelBundle, load_bundle
from adasam.classifier import takes_embedding, to_input
from adasam.domain import embedding_features
from adasam.frame import ModelFrame
from adasam.gradcam import cam_to_heatmaps
from adasam.prompts import Prompts, make_prompts

STAGES = ("load", "classify", "cam", "prompts", "encode", "decode")
"""Pipeline stages in the order a ResNet classifier runs them (with the ``sam-embedding``
classifier, ``encode`` runs first: the classifier reads the embedding)."""
CACHE_DTYPES = {"float32": torch.float32, "float16": torch.float16}
"""How the embedding cache may hold embeddings (``ADASAM_EMBED_CACHE_DTYPE``)."""
FP32_ENCODERS = ("torch", "onnxruntime-fp32", "openvino-fp32")
"""Backends whose image embeddings are fp32 (see :meth:`Predictor.shared_encoder`)."""


@dataclass(frozen=True)
class Click:
    """A refinement click at ``(x, y)`` in original-image pixels; ``positive`` adds, else
    removes."""

    x: float
    y: float
    positive: bool = True


@dataclass(frozen=True)
class Candidate:
    """One SAM mask.

    Attributes:
        mask: bool ``(H, W)`` at the slice's size (logits > 0).
        score: SAM's predicted IoU for this mask.
        logits: float32 ``(mask_size, mask_size)`` low-resolution logits in SAM's padded frame,
            to pass back as ``previous_logits`` when refining.
    """

    mask: np.ndarray
    score: float
    logits: np.ndarray


@dataclass(frozen=True)
class StructureResult:
    """Pipeline output for one target structure.

    ``heatmap`` is the classifier's class activation map (equal to GradCAM for its GAP + linear
    head), float32 ``(H, W)`` in [0, 1]. ``prompts`` and ``candidates`` (three, sorted by score,
    best first) are present only when the structure was found (its probability reached the
    classifier threshold and its heatmap gave a region).
    """

    name: str
    probability: float
    found: bool
    heatmap: np.ndarray
    prompts: Prompts | None
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class DomainVerdict:
    """Whether a slice looks like the model's training slices.

    ``score``: Mahalanobis distance of the classifier's pooled features from their training
    distribution; ``threshold``: the calibrated limit (``in_domain = score <= threshold``).
    """

    in_domain: bool
    score: float
    threshold: float

    def to_dict(self) -> dict[str, object]:
        return {"in_domain": self.in_domain, "score": self.score, "threshold": self.threshold}


@dataclass(frozen=True)
class Prediction:
    image_hw: tuple[int, int]
    structures: tuple[StructureResult, ...]
    timings_ms: dict[str, float]
    model: dict[str, object]
    embedding_cached: bool
    domain: DomainVerdict | None = None

    def structure(self, name: str) -> StructureResult:
        for s in self.structures:
            if s.name == name:
                return s
        raise KeyError(f"no structure {name!r}; have {[s.name for s in self.structures]}")


@dataclass
class StageTimer:
    """Per-stage wall times in milliseconds (``with timer.stage("encode"): ...``)."""

    timings_ms: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings_ms[name] = (
                self.timings_ms.get(name, 0.0) + (time.perf_counter() - start) * 1000.0
            )


class EmbeddingSource(Protocol):
    """Precomputed embeddings of a frozen encoder (:class:`adasam.embedding_store.EmbeddingStore`):
    ``get(image)`` gives float32 ``(C, e, e)`` or None; a store that also has ``put(image,
    embedding)`` receives the embeddings the predictor had to compute."""

    def get(self, image: np.ndarray) -> np.ndarray | None: ...


def image_key(image: np.ndarray) -> str:
    """sha256 of a model input image (bytes + shape + dtype)."""
    h = hashlib.sha256()
    h.update(f"{image.shape}{image.dtype}".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def _check_image(image: np.ndarray) -> None:
    if not (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
        and image.shape[0] > 0
        and image.shape[1] > 0
    ):
        got = getattr(image, "shape", type(image).__name__), getattr(image, "dtype", "")
        raise ValueError(f"expected a uint8 (H, W, 3) RGB image, got {got}")


class Predictor:
    """The inference pipeline over one loaded :class:`ModelBundle`.

    Args:
        bundle: models and config (moved to ``device``).
        device: torch device for both models.
        cache_size: number of image embeddings kept (LRU), ≥ 1.
        load_ms: time it took to load the bundle, reported as the ``load`` stage.
        backend: runs the image encoder and the classifier (:mod:`adasam.backends`; default
            the bundle's own PyTorch modules, the reference).
        cache_bytes: bound on the cached embeddings' total size in bytes (``None``: entries
            only); the newest embedding is always kept.
        cache_dtype: how cached embeddings are held: ``torch.float32`` (default, the
            reference) or ``torch.float16`` (half the memory; every decode, cache hit or not,
            reads the fp16-rounded embedding back as float32, so a slice's answers do not
            depend on whether it was cached).
    """

    def __init__(
        self,
        bundle: ModelBundle,
        device: str = "cpu",
        cache_size: int = 16,
        load_ms: float = 0.0,
        embedding_store: EmbeddingSource | None = None,
        *,
        backend: Backend | None = None,
        cache_bytes: int | None = None,
        cache_dtype: torch.dtype = torch.float32,
    ) -> None:
        if cache_dtype not in CACHE_DTYPES.values():
            raise ValueError(f"cache_dtype must be torch.float32 or float16, got {cache_dtype}")
        if cache_size < 1:
            raise ValueError("cache_size must be ≥ 1")
        if cache_bytes is not None and cache_bytes < 1:
            raise ValueError("cache_bytes must be ≥ 1 (or None)")
        self.embedding_store = embedding_store
        self.bundle = bundle.to(device)
        self.device = torch.device(device)
        self.cache_size = cache_size
        self.cache_bytes = cache_bytes
        self.cache_dtype = cache_dtype
        self.load_ms = load_ms
        self.backend = backend if backend is not None else TorchBackend(self.bundle, device)
        self._cache: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
        self._lock = threading.RLock()
        self._pe: tuple[tuple[int, int], torch.Tensor] | None = None

    @classmethod
    def from_dir(
        cls,
        directory: str | Path,
        device: str = "cpu",
        cache_size: int = 16,
        *,
        backend: Callable[[ModelBundle], Backend] | None = None,
        cache_bytes: int | None = None,
        cache_dtype: torch.dtype = torch.float32,
    ) -> Predictor:
        """Load a bundle for inference (LoRA merged: :func:`adasam.bundle.load_bundle` with
        ``merged=True``); ``backend`` builds the encoder/classifier backend from it. The eager
        modules an exported backend runs itself (image encoder, mask decoder) are released
        (:func:`adasam.backends.release_replaced`): this predictor owns the bundle. The image
        encoder's module is not even built unless the backend runs it in PyTorch
        (:class:`adasam.deferred.DeferredEncoder`: no TinyViT, timm or torchvision import)."""
        start = time.perf_counter()
        bundle = load_bundle(directory, device, merged=True, defer_encoder=True)
        made = None if backend is None else backend(bundle)
        if made is not None:
            release_replaced(bundle, made)
        load_ms = (time.perf_counter() - start) * 1000.0
        return cls(
            bundle,
            device,
            cache_size,
            load_ms,
            backend=made,
            cache_bytes=cache_bytes,
            cache_dtype=cache_dtype,
        )

    # -- model info ---------------------------------------------------------------------------
    @property
    def structures(self) -> tuple[str, ...]:
        return self.bundle.config.structures

    @property
    def model_info(self) -> dict[str, object]:
        c = self.bundle.config
        return {
            "name": c.name,
            "version": c.version,
            "trained": c.trained,
            "sam": c.sam.model_type,
            "sam_input": c.sam.image_size,
            "classifier": c.classifier.backbone,
            "lora_r": c.lora.r,
            "backend": self.backend.name,
        }

    def frame(self, image_hw: tuple[int, int]) -> ModelFrame:
        s = self.bundle.config.sam
        return ModelFrame.for_sam(image_hw, s)

    # -- encoder ------------------------------------------------------------------------------
    def embedding(self, image: np.ndarray) -> tuple[torch.Tensor, bool]:
        """Image embedding ``(1, C, h, w)`` float32 of a uint8 ``(H, W, 3)`` image (as held in
        the cache: rounded through ``cache_dtype``) and whether it came from the cache."""
        _check_image(image)
        key = self._cache_key(image)
        with self._lock:  # the cache only: encoders run outside it, in parallel
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit.float(), True
        stored = None if self.embedding_store is None else self.embedding_store.get(image)
        if stored is not None:
            emb = torch.from_numpy(stored)[None].to(self.device)
        else:
            sam = self.bundle.sam
            with torch.inference_mode():
                x = self.frame(image.shape[:2]).image_to_input(image, self.device)
                emb = self.backend.encode(sam.preprocess(x))
            put = getattr(self.embedding_store, "put", None)
            if put is not None:  # a writable store (training data, evaluation): keep it
                put(image, emb[0].float().cpu().numpy())
        held = emb.to(self.cache_dtype)
        with self._lock:
            self._cache[key] = held
            self._evict()
        return held.float(), False

    def embed_batch(self, images: Sequence[np.ndarray]) -> int:
        """Encode several uint8 ``(H, W, 3)`` images of one size in one encoder forward and put
        their embeddings in the cache (images already cached are skipped), so that the next
        :meth:`embedding` / :meth:`segment` calls on them are cache hits. At most
        ``cache_size`` images. Returns how many were encoded."""
        if len(images) > self.cache_size:
            raise ValueError(f"at most cache_size={self.cache_size} images, got {len(images)}")
        for image in images:
            _check_image(image)
        if len({image.shape for image in images}) > 1:
            raise ValueError("embed_batch needs images of one size")
        tag = f"{self.bundle.config.name}:{self.bundle.version}"
        keys = [(image_key(image), tag) for image in images]
        with self._lock:
            todo = [i for i, key in enumerate(keys) if key not in self._cache]
            for key in keys:
                if key in self._cache:
                    self._cache.move_to_end(key)
        if todo:
            sam = self.bundle.sam
            frame = self.frame(images[0].shape[:2])
            with torch.inference_mode():
                x = sam.preprocess(
                    torch.cat([frame.image_to_input(images[i], self.device) for i in todo])
                )
                batched = getattr(self.backend, "encode_batch", None)  # one call (GPU)
                if batched is not None:
                    emb = batched(x)
                else:  # an exported CPU graph of batch 1
                    emb = torch.cat([self.backend.encode(x[k : k + 1]) for k in range(len(x))])
            with self._lock:
                for j, i in enumerate(todo):
                    self._cache[keys[i]] = emb[j : j + 1].to(self.cache_dtype)
                self._evict()
        return len(todo)

    def cache_nbytes(self) -> int:
        """Total size of the cached embeddings in bytes."""
        with self._lock:
            return sum(t.numel() * t.element_size() for t in self._cache.values())

    def held_embedding(self, image: np.ndarray) -> np.ndarray | None:
        """The embedding ``(C, h, w)`` float32 this predictor's cache holds for ``image`` (as
        held: rounded through ``cache_dtype``), or None. Never computes one."""
        with self._lock:
            hit = self._cache.get(self._cache_key(image))
        return None if hit is None else hit[0].float().cpu().numpy()

    def _cache_key(self, image: np.ndarray) -> tuple[str, str]:
        """The embedding cache's key: the image's content and this model's name and version."""
        return image_key(image), f"{self.bundle.config.name}:{self.bundle.version}"

    def shared_encoder(self) -> str | None:
        """A name for this predictor's image encoder when another predictor may reuse its
        embeddings, else None: the encoder is a packaged base checkpoint untouched (no LoRA
        in it: ``lora.encoder`` off; ``sam.base_package`` and ``base_sha256`` recorded, the
        weights verified against them at load: LiteMedSAM) and runs in fp32 (PyTorch without
        autocast, or an fp32 exported graph, which the accuracy guard holds to the eager
        encoder). Equal names give the same embedding of an image."""
        c = self.bundle.config
        if c.lora.encoder or c.sam.base_package is None or c.sam.base_sha256 is None:
            return None
        if self.backend.name not in FP32_ENCODERS:
            return None
        return f"{c.sam.base_sha256}:{c.sam.preprocessing}:{c.sam.image_size}"

    def _evict(self) -> None:
        while len(self._cache) > self.cache_size or (
            self.cache_bytes is not None
            and len(self._cache) > 1
            and self.cache_nbytes() > self.cache_bytes
        ):
            self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # -- decoder ------------------------------------------------------------------------------
    def dense_pe(self) -> torch.Tensor:
        """``prompt_encoder.get_dense_pe()`` ``(1, C, e, e)``, computed once: it depends only on
        the prompt encoder's random Fourier matrix (a buffer, never trained), recomputed if
        that buffer is replaced or changed in place."""
        gauss = self.bundle.sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
        key = (id(gauss), gauss._version)
        cached = self._pe
        if cached is None or cached[0] != key:
            with torch.inference_mode():
                cached = self._pe = (key, self.bundle.sam.prompt_encoder.get_dense_pe())
        return cached[1]

    def _decode(
        self,
        emb: torch.Tensor,
        frame: ModelFrame,
        *,
        boxes: np.ndarray | None,
        points: np.ndarray | None,
        labels: np.ndarray | None,
        mask_logits: np.ndarray | None,
        multimask: bool,
    ) -> list[list[Candidate]]:
        """Prompts for N objects (original pixels) → N lists of candidates, sorted by score."""
        sam = self.bundle.sam
        dev = self.device
        n = next(len(a) for a in (boxes, points, mask_logits) if a is not None)
        box_t = pts = None
        if boxes is not None:
            box_t = torch.as_tensor(frame.boxes_to_model(boxes), dtype=torch.float32, device=dev)
        if points is not None and labels is not None:
            pts = (
                torch.as_tensor(frame.points_to_model(points), dtype=torch.float32, device=dev),
                torch.as_tensor(labels, dtype=torch.int64, device=dev),
            )
        masks_t = None
        if mask_logits is not None:
            masks_t = torch.as_tensor(mask_logits, dtype=torch.float32, device=dev)[:, None]
        exported = getattr(self.backend, "decode", None)
        with torch.inference_mode():
            sparse, dense = sam.prompt_encoder(points=pts, boxes=box_t, masks=masks_t)
            if exported is None:
                low, iou = sam.mask_decoder(
                    image_embeddings=emb,
                    image_pe=self.dense_pe(),
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=multimask,
                )
            else:  # all four masks; pick as MaskDecoder.forward does
                masks, scores = exported(emb, sparse, dense)
                pick = slice(1, None) if multimask else slice(0, 1)
                low, iou = masks[:, pick], scores[:, pick]
            full = frame.lowres_to_original(low) > sam.mask_threshold
        low_np, iou_np, full_np = (
            low.float().cpu().numpy(),
            iou.float().cpu().numpy(),
            full.cpu().numpy(),
        )
        out = []
        for i in range(n):
            order = np.argsort(-iou_np[i], kind="stable")
            out.append([Candidate(full_np[i, j], float(iou_np[i, j]), low_np[i, j]) for j in order])
        return out

    # -- public API ---------------------------------------------------------------------------
    def predict(
        self,
        image: np.ndarray,
        structures: Sequence[str] | None = None,
        *,
        cam_threshold: float | None = None,
        presence_threshold: float | None = None,
        prompt_out_of_domain: bool = False,
    ) -> Prediction:
        """Whole pipeline on a uint8 ``(H, W, 3)`` image.

        Found structures get three candidates (multimask output: the automatic prompt is
        ambiguous about which level of detail is wanted, so SAM's three answers are shown).
        ``cam_threshold`` and ``presence_threshold`` override the bundle's
        ``prompts.threshold`` and ``classifier.threshold`` (both in (0, 1)) for this call.

        When the bundle's domain model says the slice is unlike its training slices
        (``Prediction.domain.in_domain`` False), the classifier's verdict is not trusted: no
        structure counts as found and no automatic prompt is made (the heatmaps are still
        returned, to be shown as such), unless ``prompt_out_of_domain`` asks for them.
        """
        _check_image(image)
        names = list(self.structures if structures is None else structures)
        unknown = [n for n in names if n not in self.structures]
        if unknown:
            raise ValueError(
                f"unknown structure(s) {unknown}; this model segments {list(self.structures)}"
            )
        cfg = self.bundle.config
        prompt_cfg = (
            cfg.prompts if cam_threshold is None else replace(cfg.prompts, threshold=cam_threshold)
        )
        presence = cfg.classifier.threshold if presence_threshold is None else presence_threshold
        if not 0.0 < presence < 1.0:
            raise ValueError(f"presence_threshold must be in (0, 1), got {presence}")
        idx = [self.structures.index(n) for n in names]
        hw = (int(image.shape[0]), int(image.shape[1]))
        frame = self.frame(hw)
        timer = StageTimer({"load": self.load_ms})
        probs, heat, pooled, emb, cached = self._classify(image, idx, frame, timer)
        if self._domain_reads_embedding() and emb is None:
            with timer.stage("encode"):
                emb, cached = self.embedding(image)
        domain = self.domain_verdict(pooled, emb, frame)
        trusted = prompt_out_of_domain or domain is None or domain.in_domain
        with timer.stage("prompts"):
            prompts: list[Prompts | None] = [
                make_prompts(heat[k], frame, prompt_cfg)
                if trusted and probs[i] >= presence
                else None
                for k, i in enumerate(idx)
            ]
        if emb is None:
            with timer.stage("encode"):
                emb, cached = self.embedding(image)
        with timer.stage("decode"):
            decoded = self._decode_prompts(emb, frame, prompts, prompt_cfg.use_point)
        results = tuple(
            StructureResult(
                name=n,
                probability=float(probs[i]),
                found=prompts[k] is not None,
                heatmap=heat[k],
                prompts=prompts[k],
                candidates=tuple(decoded.get(k, ())),
            )
            for k, (n, i) in enumerate(zip(names, idx, strict=True))
        )
        return Prediction(hw, results, dict(timer.timings_ms), self.model_info, cached, domain)

    def _decode_prompts(
        self,
        emb: torch.Tensor,
        frame: ModelFrame,
        prompts: Sequence[Prompts | None],
        use_point: bool,
    ) -> dict[int, list[Candidate]]:
        """SAM's candidates for every structure that has prompts (by index), in one call."""
        todo = [k for k, p in enumerate(prompts) if p is not None]
        if not todo:
            return {}
        ps = [prompts[k] for k in todo]
        res = self._decode(
            emb,
            frame,
            boxes=np.stack([p.box for p in ps]),  # type: ignore[union-attr]
            points=np.stack([p.point for p in ps])[:, None] if use_point else None,  # type: ignore[union-attr,misc]
            labels=np.ones((len(ps), 1)) if use_point else None,
            mask_logits=np.stack([p.mask_logits for p in ps]),  # type: ignore[union-attr]
            multimask=True,
        )
        return dict(zip(todo, res, strict=True))

    def _classify(
        self, image: np.ndarray, idx: list[int], frame: ModelFrame, timer: StageTimer
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor | None, bool]:
        """Probabilities ``(T,)``, heatmaps ``(len(idx), H, W)`` in [0, 1], pooled features
        ``(K,)``, and the image embedding when the classifier needed it (else None)."""
        cls = self.bundle.classifier
        hw = frame.original_hw
        if not takes_embedding(cls):
            size = self.bundle.config.classifier.image_size
            with timer.stage("classify"):
                x = to_input(image, size).to(self.device)
                logits, cams, pooled = self.backend.classify(x)  # one forward, no backward
                probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
            with timer.stage("cam"):  # equals GradCAM for this GAP + linear head
                heat = cam_to_heatmaps(cams[idx], size, hw)
            return probs, heat, pooled, None, False
        with timer.stage("encode"):
            emb, cached = self.embedding(image)
        with timer.stage("classify"), torch.inference_mode():
            valid = torch.from_numpy(frame.embedding_valid(emb.shape[-1]))[None, None]
            logits, cam, pooled = cls.forward_all(emb, valid.to(emb.device))
            probs = torch.sigmoid(logits)[0].float().cpu().numpy()
        with timer.stage("cam"), torch.inference_mode():
            maps = frame.lowres_to_original(cam[:, idx].float())[0]
            peak = maps.flatten(1).amax(dim=1).clamp(min=1e-6)[:, None, None]
            heat = (maps / peak).clamp(0.0, 1.0).cpu().numpy().astype(np.float32)
        return probs, heat, pooled[0].float().cpu().numpy(), emb, cached

    def _domain_reads_embedding(self) -> bool:
        settings = self.bundle.config.domain
        return settings is not None and settings.features == "sam-embedding"

    def domain_verdict(
        self,
        pooled: np.ndarray,
        embedding: torch.Tensor | None = None,
        frame: ModelFrame | None = None,
    ) -> DomainVerdict | None:
        """The bundle's domain model on the features it was fitted on (``config.domain.
        features``): the classifier's pooled features ``(K,)``, or the channel means of the
        image embedding ``(1, C, h, w)`` over ``frame``'s unpadded area. None when the bundle
        has no domain model (older bundles)."""
        model = self.bundle.domain
        if model is None:
            return None
        if self._domain_reads_embedding():
            if embedding is None or frame is None:
                raise ValueError("this bundle's domain model reads the image embedding")
            valid = frame.embedding_valid(embedding.shape[-1])
            score = model.score(embedding_features(embedding, valid)[0])
        else:
            score = model.score(pooled)
        return DomainVerdict(score <= model.threshold, score, model.threshold)

    def segment(
        self,
        image: np.ndarray,
        *,
        box: Sequence[float] | None = None,
        clicks: Sequence[Click] = (),
        mask_logits: np.ndarray | None = None,
        multimask: bool = True,
    ) -> list[Candidate]:
        """SAM on user prompts (a drawn XYXY box and/or clicks, original pixels): candidates
        sorted by score (three with ``multimask``, else one)."""
        _check_image(image)
        if box is None and not clicks and mask_logits is None:
            raise ValueError("give a box, at least one click, or mask logits")
        hw = (int(image.shape[0]), int(image.shape[1]))
        frame = self.frame(hw)
        boxes = None
        if box is not None:
            boxes = np.asarray(box, dtype=np.float64).reshape(1, 4)
            if boxes[0, 2] < boxes[0, 0] or boxes[0, 3] < boxes[0, 1]:
                raise ValueError(f"box must be XYXY with x0 ≤ x1 and y0 ≤ y1, got {list(box)}")
        points = labels = None
        if clicks:
            points = np.array([[[c.x, c.y] for c in clicks]], dtype=np.float64)
            labels = np.array([[1 if c.positive else 0 for c in clicks]])
        masks = None if mask_logits is None else np.asarray(mask_logits, np.float32)[None]
        emb, _ = self.embedding(image)
        return self._decode(
            emb,
            frame,
            boxes=boxes,
            points=points,
            labels=labels,
            mask_logits=masks,
            multimask=multimask,
        )[0]

    def refine(
        self,
        image: np.ndarray,
        clicks: Sequence[Click],
        previous_logits: np.ndarray | None = None,
        box: Sequence[float] | None = None,
    ) -> Candidate:
        """One refined mask from clicks (+ the previous low-res logits and the box, when given).

        Single-mask output: with several prompts at once SAM's own advice is one mask.
        """
        if not clicks and previous_logits is None:
            raise ValueError("refine needs at least one click or previous logits")
        return self.segment(
            image, box=box, clicks=clicks, mask_logits=previous_logits, multimask=False
        )[0]
