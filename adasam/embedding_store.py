"""A disk store of image embeddings of a frozen SAM encoder, shared by training and evaluation.

LiteMedSAM's TinyViT costs about 1.5–2 s per slice on two CPU cores, and a training run that
freezes the encoder (``lora.encoder`` off: the decoder, the prompt encoder's mask path and the
classifier train) needs each slice's embedding only once. :class:`EmbeddingStore` keeps them on
disk, one float32 ``.npy`` per slice, named by the slice's content hash and by the encoder's
identity (the base checkpoint's sha256 and the preprocessing), so every run, seed and evaluation
on the same slices reuses them, and a different base never reads a stale file.

The store holds embeddings of (synthetic or de-identified) training pixels only; it never sees a
file name. It is valid only for bundles whose encoder carries no trained weights of its own
(:func:`encoder_identity` refuses others).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from adasam.bundle import ModelBundle
from adasam.config import BundleConfig
from adasam.deferred import ensure_encoder
from adasam.fast_encode import (
    TOLERANCE,
    ExportedEncoder,
    export_encoder,
    relative_difference,
    resolve_engine,
)
from adasam.frame import ModelFrame
from adasam.predictor import image_key


def encoder_identity(config: BundleConfig, sam: torch.nn.Module) -> str:
    """A name for the frozen image encoder of ``sam``: a hash of its weights, the
    preprocessing style and the input size, so a different base never reads stale files.

    Raises:
        ValueError: the encoder carries LoRA (its embeddings change with training), or its
            weights were released (a serving predictor under an exported backend).
    """
    if config.lora.encoder:
        raise ValueError("embeddings can be stored only for a frozen encoder (lora.encoder off)")
    if not sam.image_encoder.state_dict():  # type: ignore[union-attr]
        raise ValueError(
            "this image encoder holds no weights (released under an exported backend): "
            "load the bundle with adasam.bundle.load_bundle to name its embeddings"
        )
    digest = hashlib.sha256(f"{config.sam.preprocessing}:{config.sam.image_size}".encode())
    for name, tensor in sorted(sam.image_encoder.state_dict().items()):  # type: ignore[union-attr]
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class EmbeddingStore:
    """Embeddings ``(C, e, e)`` float32 of uint8 ``(H, W, 3)`` images, under ``root/<identity>/``.

    Args:
        root: the store's folder (created on first write).
        identity: :func:`encoder_identity` of the bundle whose encoder made them.
    """

    def __init__(self, root: str | Path, identity: str) -> None:
        self.folder = Path(root) / identity

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npy"

    def get(self, image: np.ndarray) -> np.ndarray | None:
        path = self._path(image_key(image))
        return np.load(path) if path.is_file() else None

    def put(self, image: np.ndarray, embedding: np.ndarray) -> None:
        """Write atomically (a temporary file, then a rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(embedding, dtype=np.float32))
            os.replace(tmp, self._path(image_key(image)))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def fill(
        self,
        sam: torch.nn.Module,
        config: BundleConfig,
        images: Sequence[np.ndarray],
        batch_size: int = 4,
        progress: bool = True,
        device: str = "cpu",
        should_stop: Callable[[], bool] | None = None,
        engine: str = "auto",
    ) -> np.ndarray:
        """Embeddings ``(N, C, e, e)`` float32 of ``images``, computing (in batches, with a
        progress bar) and storing only those not yet stored. ``should_stop`` cancels.

        ``engine`` (one of :data:`adasam.fast_encode.ENGINES`): on the CPU the encoder's
        exported fp32 graph computes them, checked against the eager encoder on the first
        slice (:meth:`exported_encoder`); ``torch``, or a GPU device, runs the eager encoder.
        """
        found: list[np.ndarray | None] = [self.get(im) for im in images]
        todo = [i for i, e in enumerate(found) if e is None]
        fast = None
        if todo and resolve_engine(engine) != "torch" and torch.device(device).type == "cpu":
            fast = self.exported_encoder(sam, config, images[todo[0]], engine, progress)
        with tqdm(
            total=len(todo), disable=not progress or not todo, desc="encode", unit="slice"
        ) as bar:
            for start in range(0, len(todo), batch_size):
                if should_stop is not None and should_stop():
                    raise KeyboardInterrupt("encoding cancelled")
                chunk = todo[start : start + batch_size]
                embs = encode_images(sam, config, [images[i] for i in chunk], device, fast)
                for i, emb in zip(chunk, embs, strict=True):
                    self.put(images[i], emb)
                    found[i] = emb
                bar.update(len(chunk))
        return np.stack(found)  # type: ignore[arg-type]

    def exported_encoder(
        self,
        sam: torch.nn.Module,
        config: BundleConfig,
        sample: np.ndarray,
        engine: str,
        verbose: bool = True,
    ) -> ExportedEncoder | None:
        """The encoder's exported fp32 graph on ``engine`` (exported into this store's folder
        once), or None, with the reason printed, when it fails or differs from the eager
        encoder on ``sample`` by more than :data:`adasam.fast_encode.TOLERANCE`."""
        name = resolve_engine(engine)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = export_encoder(ensure_encoder(sam), config.sam.image_size, self.folder)
            fast = ExportedEncoder(path, name)
            got = encode_images(sam, config, [sample], "cpu", fast)
            want = encode_images(sam, config, [sample], "cpu")
        except Exception as exc:
            print(
                f"encode: the exported {name} encoder failed ({type(exc).__name__}: {exc}); "
                "using the eager encoder",
                flush=True,
            )
            return None
        diff = relative_difference(torch.from_numpy(got), torch.from_numpy(want))
        if diff > TOLERANCE:
            print(
                f"encode: the exported {name} encoder differs from the eager one by {diff:.1e} "
                f"(more than {TOLERANCE:g}) on the first slice; using the eager encoder",
                flush=True,
            )
            return None
        if verbose:
            print(
                f"encode: the encoder's exported fp32 graph on {name} (relative difference to "
                f"the eager encoder on the first slice {diff:.1e})",
                flush=True,
            )
        return fast


def frozen_store(bundle: ModelBundle, root: str | Path | None) -> EmbeddingStore | None:
    """The store under ``root`` for ``bundle``'s encoder, or None when ``root`` is None or the
    encoder carries LoRA (its embeddings change with training). Versions fine-tuned from one
    frozen base share one identity, so they share the embeddings of a slice."""
    if root is None or bundle.config.lora.encoder:
        return None
    return EmbeddingStore(root, encoder_identity(bundle.config, bundle.sam))


def encode_images(
    sam: torch.nn.Module,
    config: BundleConfig,
    images: Sequence[np.ndarray],
    device: str = "cpu",
    encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> np.ndarray:
    """Embeddings ``(B, C, e, e)`` of same-sized uint8 ``(H, W, 3)`` images, through the same
    :class:`ModelFrame` and ``preprocess`` as :class:`~adasam.predictor.Predictor`; ``encoder``
    (default: SAM's eager image encoder) maps the preprocessed ``(B, 3, S, S)`` input."""
    frame = ModelFrame.for_sam(images[0].shape[:2], config.sam)
    with torch.inference_mode():
        x = torch.cat([frame.image_to_input(im, device) for im in images])
        run = ensure_encoder(sam) if encoder is None else encoder
        return run(sam.preprocess(x)).float().cpu().numpy()  # type: ignore[operator]
