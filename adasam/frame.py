"""The one object that converts between original-image pixels and SAM's model frame.

SAM resizes an image so its longest side is ``input_size`` (1024 for the public models), keeps the
aspect ratio, and pads bottom/right to a square ``input_size × input_size`` input. The mask decoder
works at a quarter of that (``mask_size``, 256 for the public models): its low-resolution logits
and the dense mask prompt live in that padded low-resolution frame.

Conventions used everywhere in the project:

- images and masks are ``(H, W)`` (rows, columns);
- points are ``(x, y)`` = (column, row) in pixel units, boxes are ``XYXY`` = ``(x0, y0, x1, y1)``
  with inclusive pixel indices of the first and last covered column/row (as segment-anything's
  ``batched_mask_to_box``);
- coordinate scaling is a pure multiplication per axis, exactly as ``ResizeLongestSide`` does, so
  ``to_original(to_model(p)) == p`` up to float rounding.

Two preprocessing styles (``ModelFrame.style``), each exactly as its model was trained:

- ``"sam"`` (segment-anything): bilinear antialiased resize in torch; points scaled per axis by
  ``resized / original`` (``ResizeLongestSide.apply_coords``); ``Sam.preprocess`` then applies
  the pixel mean/std and pads.
- ``"litemedsam"`` (upstream ``CVPR24_LiteMedSAM_infer.py``): ``resize_longest_side`` with
  OpenCV's ``INTER_AREA`` on the uint8 image (new size ``int(side · 256 / max(H, W) + 0.5)``);
  boxes and points scaled by the one factor ``256 / max(H, W)`` (``resize_box_to_256``);
  ``LiteMedSam.preprocess`` then min-max normalises to [0, 1] (no mean/std) and zero-pads
  bottom/right; logits are cropped to the unpadded area and upsampled (``postprocess_masks``),
  exactly as for SAM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F


def resized_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """Shape ``(h, w)`` after resizing so the longest side is ``long_side`` (SAM's rounding)."""
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


@dataclass(frozen=True)
class ModelFrame:
    """Geometry of one image of shape ``original_hw`` in a SAM with the given input size.

    Args:
        original_hw: ``(H, W)`` of the original slice, both ≥ 1.
        input_size: side of SAM's square encoder input (``image_encoder.img_size``).
        mask_size: side of the decoder's low-resolution mask frame
            (``prompt_encoder.mask_input_size``; ``input_size // 4`` in SAM's ViTs,
            ``input_size`` in LiteMedSAM).
        style: ``"sam"`` or ``"litemedsam"``: which model's resize and coordinate rules apply
            (see the module docstring).
    """

    original_hw: tuple[int, int]
    input_size: int
    mask_size: int
    style: Literal["sam", "litemedsam"] = "sam"

    @classmethod
    def for_sam(cls, original_hw: tuple[int, int], sam_config: object) -> ModelFrame:
        """The frame of a :class:`~adasam.config.SamConfig` (its input size, mask size and
        preprocessing style)."""
        return cls(
            (int(original_hw[0]), int(original_hw[1])),
            sam_config.image_size,  # type: ignore[attr-defined]
            sam_config.mask_size,  # type: ignore[attr-defined]
            sam_config.preprocessing,  # type: ignore[attr-defined]
        )

    def __post_init__(self) -> None:
        h, w = self.original_hw
        if h < 1 or w < 1:
            raise ValueError(f"image shape must be positive, got {self.original_hw}")
        if self.input_size < 1 or self.mask_size < 1:
            raise ValueError("input_size and mask_size must be positive")
        if self.style not in ("sam", "litemedsam"):
            raise ValueError(f"style must be 'sam' or 'litemedsam', got {self.style!r}")

    @property
    def resized_hw(self) -> tuple[int, int]:
        """Shape of the image content inside the padded ``input_size`` square."""
        return resized_shape(*self.original_hw, self.input_size)

    @property
    def mask_content_hw(self) -> tuple[int, int]:
        """Shape of the image content inside the padded ``mask_size`` square."""
        rh, rw = self.resized_hw
        f = self.mask_size / self.input_size
        return max(1, round(rh * f)), max(1, round(rw * f))

    def embedding_valid(self, grid: int) -> np.ndarray:
        """bool ``(grid, grid)``: the cells of a ``grid × grid`` map over the padded input
        square (e.g. SAM's image embedding) that cover image content, not padding."""
        rh, rw = self.resized_hw
        valid = np.zeros((grid, grid), dtype=bool)
        valid[
            : max(1, -(-rh * grid // self.input_size)), : max(1, -(-rw * grid // self.input_size))
        ] = True
        return valid

    # -- points and boxes ---------------------------------------------------------------------
    def _axis_scale(self) -> np.ndarray:
        (h, w), (rh, rw) = self.original_hw, self.resized_hw
        if self.style == "litemedsam":
            s = self.input_size / max(h, w)
            return np.array([s, s], dtype=np.float64)
        return np.array([rw / w, rh / h], dtype=np.float64)

    def points_to_model(self, points: np.ndarray) -> np.ndarray:
        """``(..., 2)`` XY points in original pixels → model-input pixels (float64)."""
        return np.asarray(points, dtype=np.float64) * self._axis_scale()

    def points_to_original(self, points: np.ndarray) -> np.ndarray:
        """``(..., 2)`` XY points in model-input pixels → original pixels (float64)."""
        return np.asarray(points, dtype=np.float64) / self._axis_scale()

    def boxes_to_model(self, boxes: np.ndarray) -> np.ndarray:
        """``(..., 4)`` XYXY boxes in original pixels → model-input pixels (float64)."""
        b = np.asarray(boxes, dtype=np.float64)
        return self.points_to_model(b.reshape(*b.shape[:-1], 2, 2)).reshape(b.shape)

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        """``(..., 4)`` XYXY boxes in model-input pixels → original pixels (float64)."""
        b = np.asarray(boxes, dtype=np.float64)
        return self.points_to_original(b.reshape(*b.shape[:-1], 2, 2)).reshape(b.shape)

    # -- images -------------------------------------------------------------------------------
    def image_to_input(self, image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """uint8 ``(H, W, 3)`` RGB image → float ``(1, 3, rh, rw)`` in 0..255, not yet padded.

        Normalisation (SAM's pixel mean/std) and bottom/right padding are ``Sam.preprocess``'s job,
        so the model's own constants are always the ones applied.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != self.original_hw:
            raise ValueError(
                f"expected ({self.original_hw[0]}, {self.original_hw[1]}, 3) image, "
                f"got {image.shape}"
            )
        arr = np.ascontiguousarray(image)
        if self.style == "litemedsam":
            # a fresh float32 array: where no resize runs, a read-only input would otherwise
            # reach torch.from_numpy, which warns (on every `predict` of a 256² slice)
            resized = _area_resize(arr, self.resized_hw).astype(np.float32)
            return torch.from_numpy(resized).to(device).permute(2, 0, 1)[None]
        t = torch.from_numpy(arr if arr.flags.writeable else arr.copy()).to(device)
        return self.resize_input(t.permute(2, 0, 1)[None].float())

    def resize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Float ``(B, 3, H, W)`` in 0..255 → ``(B, 3, rh, rw)``: bilinear, antialiased
        (``"sam"``), or OpenCV ``INTER_AREA`` on the values rounded to uint8 (``"litemedsam"``,
        identical to :meth:`image_to_input` for integer-valued input)."""
        if tuple(x.shape[-2:]) != self.original_hw:
            raise ValueError(
                f"expected images of shape {self.original_hw}, got {tuple(x.shape[-2:])}"
            )
        if self.resized_hw == self.original_hw:
            return x
        if self.style == "litemedsam":
            arr = x.detach().round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()
            out = np.stack([_area_resize(a, self.resized_hw) for a in arr.numpy()])
            return torch.from_numpy(out).permute(0, 3, 1, 2).float().to(x.device)
        return F.interpolate(
            x, self.resized_hw, mode="bilinear", align_corners=False, antialias=True
        ).clamp(0, 255)

    # -- dense maps (heatmaps, masks, logits) -------------------------------------------------
    def map_to_mask_frame(self, values: torch.Tensor, pad_value: float) -> torch.Tensor:
        """Original-resolution maps ``(B, H', W')`` (any resolution with the slice's aspect) →
        ``(B, 1, mask_size, mask_size)`` in the padded low-resolution frame. Differentiable.

        The content is resized (bilinear) to ``mask_content_hw`` and the padding gets
        ``pad_value``.
        """
        if values.ndim != 3:
            raise ValueError(f"expected (B, H, W) maps, got {tuple(values.shape)}")
        ch, cw = self.mask_content_hw
        x = F.interpolate(values[:, None].float(), (ch, cw), mode="bilinear", align_corners=False)
        return F.pad(x, (0, self.mask_size - cw, 0, self.mask_size - ch), value=pad_value)

    def lowres_to_original(self, logits: torch.Tensor) -> torch.Tensor:
        """Decoder logits ``(B, C, mask_size, mask_size)`` → ``(B, C, H, W)`` logits at the
        original size: upsample to the input square, crop the padding, resize (as
        ``Sam.postprocess_masks``)."""
        x = F.interpolate(
            logits, (self.input_size, self.input_size), mode="bilinear", align_corners=False
        )
        rh, rw = self.resized_hw
        x = x[..., :rh, :rw]
        return F.interpolate(x, self.original_hw, mode="bilinear", align_corners=False)

    def lowres_region(self, logits: np.ndarray) -> np.ndarray:
        """Low-resolution logits ``(mask_size, mask_size)`` → bool ``(H, W)`` where they are
        positive at the original size (e.g. the dense mask prompt's region, for display)."""
        t = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))[None, None]
        return self.lowres_to_original(t)[0, 0].numpy() > 0

    def mask_to_lowres(self, mask: np.ndarray) -> np.ndarray:
        """Binary ``(H, W)`` mask → float32 ``(mask_size, mask_size)`` occupancy in [0, 1]
        (area-averaged), zero in the padding. Used to compare masks in the decoder's frame."""
        if mask.shape != self.original_hw:
            raise ValueError(f"mask shape {mask.shape} != image shape {self.original_hw}")
        t = torch.from_numpy(mask.astype(np.float32))[None, None]
        ch, cw = self.mask_content_hw
        t = F.interpolate(t, (ch, cw), mode="area")
        t = F.pad(t, (0, self.mask_size - cw, 0, self.mask_size - ch))
        return t[0, 0].numpy()


def _area_resize(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """uint8 ``(H, W, 3)`` → uint8 ``(h, w, 3)`` with OpenCV's ``INTER_AREA`` (LiteMedSAM)."""
    import cv2

    if image.shape[:2] == hw:
        return np.ascontiguousarray(image)
    return cv2.resize(np.ascontiguousarray(image), (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
