"""Class activation maps: the forward-pass CAM on the hot path, pytorch-grad-cam for explanations.

The classifier's head is global-average-pool + linear, so GradCAM's channel weights (the mean
gradient of logit ``c`` over the last feature maps) are exactly ``w_c / (h·w)`` and GradCAM's map
is ``ReLU(Σ_k w_ck A_k)`` up to that positive factor, which its min-max scaling removes.
:func:`forward_cam` computes it in the same forward pass as the logits, with no backward pass;
:func:`cam_to_heatmaps` scales and resizes exactly as pytorch-grad-cam does (min-max, OpenCV
bilinear resize to the classifier's input, min-max again), then bilinear to the slice.

:func:`explain` keeps pytorch-grad-cam's methods (GradCAM, GradCAM++, LayerCAM, EigenCAM) as an
explanation choice, off the hot path: it needs a backward pass (EigenCAM an SVD). Its context
manager's ``__exit__`` silently swallows an ``IndexError`` raised inside the block; that case is
detected and raised instead of returning nothing.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from adasam.classifier import StructureClassifier

EXPLANATIONS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
}
"""Explanation methods of :func:`explain` (names as shown to users, lower case) → their
pytorch-grad-cam class names. The package is imported on first use only: it pulls in
scikit-learn and matplotlib (about 120 MB resident), which the hot path never needs."""


def cam_logits(
    model: StructureClassifier, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward pass: logits ``(B, C)``, raw CAMs ``ReLU(Σ_k w_ck A_k)`` ``(B, C, h, w)``
    (float, ≥ 0, not normalised; ``h = w = S / output_stride``) and the pooled features
    ``(B, K)`` (the domain model's input)."""
    feats = model.features(x)
    pooled = feats.mean(dim=(2, 3))
    cam = F.relu(torch.einsum("ck,bkhw->bchw", model.head.weight, feats))
    return model.head(pooled), cam, pooled


def _minmax(a: np.ndarray) -> np.ndarray:
    a = a - np.min(a)
    return a / (1e-7 + np.max(a))


def cam_to_heatmaps(cams: np.ndarray, input_size: int, out_hw: tuple[int, int]) -> np.ndarray:
    """Raw CAMs float ``(N, h, w)`` → float32 ``(N, H, W)`` heatmaps in [0, 1].

    Same scaling as pytorch-grad-cam (min-max, ``cv2.resize`` to ``input_size``², min-max
    again), then bilinear (``align_corners=False``) to ``out_hw``; so a GAP + linear head's
    forward CAM equals :func:`explain` with ``"gradcam"`` up to float rounding.
    """
    if len(cams) == 0:
        return np.zeros((0, *out_hw), dtype=np.float32)
    size = (input_size, input_size)
    scaled = np.stack([_minmax(cv2.resize(_minmax(c).astype(np.float32), size)) for c in cams])
    t = torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32))[:, None]
    t = F.interpolate(t, out_hw, mode="bilinear", align_corners=False)[:, 0]
    return t.clamp_(0.0, 1.0).numpy()


def forward_cam(
    model: StructureClassifier, x: torch.Tensor, indices: list[int], out_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and CAM heatmaps of one image in one forward pass (no gradients).

    Args:
        model: the classifier (eval mode).
        x: float ``(1, 3, S, S)`` classifier input (see :func:`adasam.classifier.to_input`).
        indices: structure indices to map.
        out_hw: ``(H, W)`` of the slice.
    Returns:
        sigmoid probabilities float32 ``(C,)`` of every structure, and float32
        ``(len(indices), H, W)`` heatmaps in [0, 1].
    """
    with torch.inference_mode():
        logits, cam, _ = cam_logits(model, x)
    probs = torch.sigmoid(logits[0]).float().cpu().numpy()
    return probs, cam_to_heatmaps(cam[0, indices].float().cpu().numpy(), x.shape[-1], out_hw)


def explain(
    model: StructureClassifier,
    x: torch.Tensor,
    indices: list[int],
    out_hw: tuple[int, int],
    method: str = "gradcam",
) -> np.ndarray:
    """A pytorch-grad-cam explanation of each structure index for one image.

    Args:
        model: the classifier (eval mode).
        x: float ``(1, 3, S, S)`` classifier input (see :func:`adasam.classifier.to_input`).
        indices: structure indices to explain.
        out_hw: ``(H, W)`` of the slice; heatmaps are resized to it (bilinear).
        method: one of :data:`EXPLANATIONS` (``gradcam``, ``gradcam++``, ``layercam``,
            ``eigencam``).
    Returns:
        float32 ``(len(indices), H, W)`` heatmaps in [0, 1] (each min-max normalised).
    """
    if method not in EXPLANATIONS:
        raise ValueError(f"unknown explanation {method!r}; choose one of {sorted(EXPLANATIONS)}")
    if not indices:
        return np.zeros((0, *out_hw), dtype=np.float32)
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    method_cls = getattr(pytorch_grad_cam, EXPLANATIONS[method])
    batch = x.expand(len(indices), -1, -1, -1)
    cams: np.ndarray | None = None
    with method_cls(model=model, target_layers=[model.cam_layer]) as cam:
        cams = cam(input_tensor=batch, targets=[ClassifierOutputTarget(i) for i in indices])
    if cams is None:
        raise RuntimeError(f"{method} failed inside pytorch-grad-cam (an IndexError was swallowed)")
    t = torch.from_numpy(np.ascontiguousarray(cams, dtype=np.float32))[:, None]
    t = F.interpolate(t, out_hw, mode="bilinear", align_corners=False)[:, 0]
    return t.clamp_(0.0, 1.0).numpy()


def gradcam_heatmaps(
    model: StructureClassifier, x: torch.Tensor, indices: list[int], out_hw: tuple[int, int]
) -> np.ndarray:
    """GradCAM via pytorch-grad-cam (a backward pass): :func:`explain` with ``"gradcam"``."""
    return explain(model, x, indices, out_hw, "gradcam")
