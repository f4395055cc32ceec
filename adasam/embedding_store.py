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
    ) -> np.ndarray:
        """Embeddings ``(N, C, e, e)`` float32 of ``images``, computing (in batches, with a
        progress bar) and storing only those not yet stored. ``should_stop`` cancels."""
        found: list[np.ndarray | None] = [self.get(im) for im in images]
        todo = [i for i, e in enumerate(found) if e is None]
        with tqdm(
            total=len(todo), disable=not progress or not todo, desc="encode", unit="slice"
        ) as bar:
            for start in range(0, len(todo), batch_size):
                if should_stop is not None and should_stop():
                    raise KeyboardInterrupt("encoding cancelled")
                chunk = todo[start : start + batch_size]
                embs = encode_images(sam, config, [images[i] for i in chunk], device)
                for i, emb in zip(chunk, embs, strict=True):
                    self.put(images[i], emb)
                    found[i] = emb
                bar.update(len(chunk))
        return np.stack(found)  # type: ignore[arg-type]


def frozen_store(bundle: ModelBundle, root: str | Path | None) -> EmbeddingStore | None:
    """The store under ``root`` for ``bundle``'s encoder, or None when ``root`` is None or the
    encoder carries LoRA (its embeddings change with training). Versions fine-tuned from one
    frozen base share one identity, so they share the embeddings of a slice."""
    if root is None or bundle.config.lora.encoder:
        return None
    return EmbeddingStore(root, encoder_identity(bundle.config, bundle.sam))


def encode_images(
    sam: torch.nn.Module, config: BundleConfig, images: Sequence[np.ndarray], device: str = "cpu"
) -> np.ndarray:
    """Embeddings ``(B, C, e, e)`` of same-sized uint8 ``(H, W, 3)`` images, through the same
    :class:`ModelFrame` and ``preprocess`` as :class:`~adasam.predictor.Predictor`."""
    frame = ModelFrame.for_sam(images[0].shape[:2], config.sam)
    with torch.inference_mode():
        x = torch.cat([frame.image_to_input(im, device) for im in images])
        encoder = ensure_encoder(sam)
        return encoder(sam.preprocess(x)).float().cpu().numpy()  # type: ignore[operator]
