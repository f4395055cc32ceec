"""The forward-pass CAM on the hot path equals pytorch-grad-cam's GradCAM (GAP + linear head)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adasam.bundle import create_bundle
from adasam.classifier import StructureClassifier, to_input
from adasam.config import ClassifierConfig
from adasam.gradcam import EXPLANATIONS, explain, forward_cam, gradcam_heatmaps
from adasam.predictor import Predictor
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def model() -> StructureClassifier:
    torch.manual_seed(0)
    return StructureClassifier(
        ClassifierConfig(backbone="resnet10", image_size=128, output_stride=16), 3
    ).eval()


@pytest.mark.parametrize("out_hw", [(128, 128), (50, 90)])
def test_forward_cam_equals_gradcam(model: StructureClassifier, out_hw: tuple[int, int]) -> None:
    torch.manual_seed(3)
    x = torch.randn(1, 3, 128, 128)
    probs, heat = forward_cam(model, x, [0, 1, 2], out_hw)
    ref = gradcam_heatmaps(model, x, [0, 1, 2], out_hw)
    assert heat.shape == ref.shape == (3, *out_hw) and heat.dtype == np.float32
    assert heat[1].max() > 0.9 and heat[1].min() < 0.01  # a real map (0 and 2 are all-zero)
    np.testing.assert_allclose(heat, ref, atol=1e-4)
    with torch.no_grad():
        np.testing.assert_allclose(probs, torch.sigmoid(model(x))[0].numpy(), rtol=1e-5)


def test_forward_cam_needs_no_gradient(model: StructureClassifier) -> None:
    for p in model.parameters():
        p.grad = None
    forward_cam(model, torch.randn(1, 3, 128, 128), [1], (32, 32))
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("method", sorted(EXPLANATIONS))
def test_every_explanation_method_gives_a_heatmap(model: StructureClassifier, method: str) -> None:
    heat = explain(model, torch.randn(1, 3, 128, 128), [0, 1], (40, 30), method)
    assert heat.shape == (2, 40, 30) and heat.min() >= 0.0 and heat.max() <= 1.0
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks


def test_unknown_explanation_is_refused(model: StructureClassifier) -> None:
    with pytest.raises(ValueError, match="gradcam"):
        explain(model, torch.randn(1, 3, 128, 128), [0], (8, 8), "saliency")


def test_predictor_heatmaps_are_gradcam_without_a_backward_pass(monkeypatch) -> None:
    bundle = create_bundle(tiny_config(), seed=0)
    predictor = Predictor(bundle, cache_size=2)
    image = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)

    def no_backward(*args: object, **kwargs: object) -> None:
        raise AssertionError("a backward pass ran on the predict path")

    monkeypatch.setattr(torch.Tensor, "backward", no_backward)
    monkeypatch.setattr(torch.autograd, "backward", no_backward)
    pred = predictor.predict(image)
    monkeypatch.undo()
    x = to_input(image, bundle.config.classifier.image_size)
    ref = gradcam_heatmaps(bundle.classifier, x, [0, 1], (70, 90))
    got = np.stack([s.heatmap for s in pred.structures])
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert pred.model["backend"] == "torch"


def test_the_hot_path_does_not_import_pytorch_grad_cam() -> None:
    """pytorch-grad-cam pulls in scikit-learn and matplotlib (about 130 MB resident): the
    predictor and the backends must not import it until an explanation is asked for."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; import adasam.predictor, adasam.backends, adasam.bench; "
        "print('pytorch_grad_cam' in sys.modules, 'sklearn' in sys.modules)"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=root
    )
    assert out.stdout.split() == ["False", "False"]
