"""Prompts from a class-activation heatmap: region, box, dense mask logits and peak point.

All functions are pure. Heatmaps are float ``(H, W)`` arrays in ``[0, 1]`` at the slice's size;
boxes are XYXY with inclusive pixel indices in original-image pixels (see :mod:`adasam.frame`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
from scipy import ndimage

from adasam.errors import ConfigError
from adasam.frame import ModelFrame

ComponentMode = Literal["largest", "all"]
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class PromptConfig:
    """How a heatmap becomes prompts.

    Attributes:
        threshold: CAM value in (0, 1) at and above which a pixel belongs to the region.
        components: ``"largest"`` keeps the largest connected component (8-connectivity);
            ``"all"`` keeps every component of at least ``min_area`` pixels.
        min_area: smallest component kept, in original pixels (``"all"`` mode), ≥ 1.
        use_point: also give SAM a positive point at the CAM peak inside the region.
        logit_gain: slope of the CAM → mask-logit map: ``gain · (cam − threshold)``, so the
            region's edge sits at logit 0 and the prompt spans about ``±gain/2`` logits.
    """

    threshold: float = 0.4
    components: ComponentMode = "largest"
    min_area: int = 16
    use_point: bool = False
    logit_gain: float = 10.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"prompt threshold must be in (0, 1), got {self.threshold}")
        if self.components not in ("largest", "all"):
            raise ConfigError(f"components must be 'largest' or 'all', got {self.components!r}")
        if self.min_area < 1:
            raise ConfigError(f"min_area must be ≥ 1 pixel, got {self.min_area}")
        if not self.logit_gain > 0:
            raise ConfigError(f"logit_gain must be positive, got {self.logit_gain}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Prompts:
    """Prompts for one structure on one slice.

    Attributes:
        region: bool ``(H, W)``, the thresholded CAM components kept.
        box: float64 ``(4,)`` XYXY box around ``region``, original pixels, inclusive.
        mask_logits: float32 ``(mask_size, mask_size)`` dense prompt in SAM's padded frame.
        point: float64 ``(2,)`` XY of the CAM peak inside the region, or ``None``.
    """

    region: np.ndarray
    box: np.ndarray
    mask_logits: np.ndarray
    point: np.ndarray | None


def cam_region(
    heatmap: np.ndarray, threshold: float, components: ComponentMode = "largest", min_area: int = 1
) -> np.ndarray:
    """Thresholded heatmap → bool ``(H, W)`` region of the kept connected components.

    ``largest`` keeps the largest component (ties broken by the higher peak, then by position);
    ``all`` keeps components with at least ``min_area`` pixels. An empty region is possible.
    """
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must be (H, W), got {heatmap.shape}")
    above = heatmap >= threshold
    labels, n = ndimage.label(above, structure=_EIGHT_CONNECTED)
    if n == 0:
        return np.zeros_like(above)
    index = np.arange(1, n + 1)
    areas = ndimage.sum_labels(above, labels, index)
    if components == "largest":
        peaks = ndimage.maximum(heatmap, labels, index)
        best = max(range(n), key=lambda i: (areas[i], peaks[i], -i))
        return labels == best + 1
    keep = index[areas >= min_area]
    return np.isin(labels, keep)


def mask_to_box(mask: np.ndarray) -> np.ndarray | None:
    """Bool ``(H, W)`` mask → float64 ``(4,)`` XYXY box of inclusive pixel indices, or None."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.float64)


def peak_point(heatmap: np.ndarray, region: np.ndarray) -> np.ndarray | None:
    """XY ``(2,)`` of the highest heatmap value inside ``region`` (first in row-major order)."""
    if not region.any():
        return None
    masked = np.where(region, heatmap, -np.inf)
    row, col = np.unravel_index(int(np.argmax(masked)), masked.shape)
    return np.array([col, row], dtype=np.float64)


def cam_to_mask_logits(
    cam: torch.Tensor,
    region: torch.Tensor | None,
    frame: ModelFrame,
    threshold: float,
    gain: float,
) -> torch.Tensor:
    """Differentiable dense mask prompt: ``gain · (cam·region − threshold)`` in SAM's frame.

    Args:
        cam: float ``(B, h, w)`` heatmaps in ``[0, 1]`` with the slice's aspect ratio (any
            resolution: the classifier's feature grid or the slice's size).
        region: optional bool/float ``(B, h, w)`` of kept components; outside it the CAM counts
            as 0. Not differentiated.
        frame: the slice's model frame.
    Returns:
        float ``(B, 1, mask_size, mask_size)`` logits; padding gets ``−gain · threshold``.
    """
    if region is not None:
        cam = cam * region.to(cam.dtype)
    logits = gain * (cam - threshold)
    return frame.map_to_mask_frame(logits, pad_value=-gain * threshold)


def make_prompts(heatmap: np.ndarray, frame: ModelFrame, config: PromptConfig) -> Prompts | None:
    """Heatmap ``(H, W)`` in [0, 1] at the slice's size → :class:`Prompts`, or None when no
    pixel reaches the threshold (the structure then gets no prompt)."""
    if heatmap.shape != frame.original_hw:
        raise ValueError(f"heatmap {heatmap.shape} does not match the slice {frame.original_hw}")
    region = cam_region(heatmap, config.threshold, config.components, config.min_area)
    box = mask_to_box(region)
    if box is None:
        return None
    logits = cam_to_mask_logits(
        torch.from_numpy(heatmap.astype(np.float32))[None],
        torch.from_numpy(region)[None],
        frame,
        config.threshold,
        config.logit_gain,
    )
    point = peak_point(heatmap, region) if config.use_point else None
    return Prompts(region=region, box=box, mask_logits=logits[0, 0].numpy(), point=point)
