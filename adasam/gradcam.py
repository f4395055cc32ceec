"""GradCAM heatmaps for display and inference, via pytorch-grad-cam.

"What to explain" is a target object (``ClassifierOutputTarget(index)``) and the hooks are
released by pytorch-grad-cam's context manager. Its ``__exit__`` silently swallows an
``IndexError`` raised inside the block; :func:`gradcam_heatmaps` detects that case and raises
instead of returning nothing.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from adasam.classifier import StructureClassifier


def gradcam_heatmaps(
    model: StructureClassifier, x: torch.Tensor, indices: list[int], out_hw: tuple[int, int]
) -> np.ndarray:
    """GradCAM of each structure index for one image.

    Args:
        model: the classifier (eval mode).
        x: float ``(1, 3, S, S)`` classifier input (see :func:`adasam.classifier.to_input`).
        indices: structure indices to explain.
        out_hw: ``(H, W)`` of the slice; heatmaps are resized to it (bilinear).
    Returns:
        float32 ``(len(indices), H, W)`` heatmaps in [0, 1] (each min-max normalised).
    """
    if not indices:
        return np.zeros((0, *out_hw), dtype=np.float32)
    batch = x.expand(len(indices), -1, -1, -1)
    cams: np.ndarray | None = None
    with GradCAM(model=model, target_layers=[model.cam_layer]) as cam:
        cams = cam(input_tensor=batch, targets=[ClassifierOutputTarget(i) for i in indices])
    if cams is None:
        raise RuntimeError("GradCAM failed inside pytorch-grad-cam (an IndexError was swallowed)")
    t = torch.from_numpy(np.ascontiguousarray(cams, dtype=np.float32))[:, None]
    t = F.interpolate(t, out_hw, mode="bilinear", align_corners=False)[:, 0]
    return t.clamp_(0.0, 1.0).numpy()
