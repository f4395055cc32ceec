from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from adasam.classifier import StructureClassifier, to_input
from adasam.config import ClassifierConfig
from adasam.gradcam import gradcam_heatmaps


@pytest.fixture(scope="module")
def model() -> StructureClassifier:
    torch.manual_seed(0)
    return StructureClassifier(ClassifierConfig(backbone="resnet10", image_size=64), 3).eval()


def test_to_input_shapes_and_normalisation() -> None:
    img = np.full((30, 50, 3), 255, np.uint8)
    x = to_input(img, 64)
    assert x.shape == (1, 3, 64, 64)
    torch.testing.assert_close(
        x[0, :, 0, 0],
        (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]),
    )
    with pytest.raises(ValueError):
        to_input(np.zeros((4, 4), np.uint8), 64)


@pytest.mark.parametrize("stride,grid", [(32, 2), (16, 4)])
def test_cam_grid_and_output_stride(stride: int, grid: int) -> None:
    m = StructureClassifier(
        ClassifierConfig(backbone="resnet18", image_size=64, output_stride=stride), 2
    )
    logits, cam = m.forward_with_cam(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 2) and cam.shape == (2, 2, grid, grid)
    assert float(cam.detach().min()) >= 0 and float(cam.detach().amax()) <= 1


def test_cam_is_differentiable_into_backbone_and_head(model: StructureClassifier) -> None:
    _, cam = model.forward_with_cam(torch.randn(2, 3, 64, 64))
    model.zero_grad()
    (cam**2).sum().backward()
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0
    conv = model.stem[0].weight.grad
    assert conv is not None and conv.abs().sum() > 0


def test_gradcam_agrees_with_cam_for_gap_linear_head(model: StructureClassifier) -> None:
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 64)
    heat = gradcam_heatmaps(model, x, [0, 2], (64, 64))
    assert heat.shape == (2, 64, 64) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() <= 1
    with torch.no_grad():
        _, cam = model.forward_with_cam(x)
    for k, c in enumerate([0, 2]):
        ours = cam[0, c].numpy()
        ours = (ours - ours.min()) / (ours.max() - ours.min() + 1e-7)
        ref = cv2.resize(ours.astype(np.float32), (64, 64))
        np.testing.assert_allclose(heat[k], ref, atol=2e-3)


def test_gradcam_releases_hooks_and_resizes(model: StructureClassifier) -> None:
    heat = gradcam_heatmaps(model, torch.randn(1, 3, 64, 64), [1], (30, 90))
    assert heat.shape == (1, 30, 90)
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks
    assert gradcam_heatmaps(model, torch.randn(1, 3, 64, 64), [], (5, 6)).shape == (0, 5, 6)
