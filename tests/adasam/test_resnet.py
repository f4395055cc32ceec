"""adasam.resnet builds torchvision's ResNets without importing torchvision: the same state-dict
keys and shapes, the same outputs for the same weights, the same weights for the same seed."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torchvision

from adasam.resnet import LAYOUTS, resnet


def _torchvision(backbone: str) -> torch.nn.Module:
    if backbone == "resnet10":
        return torchvision.models.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
    return getattr(torchvision.models, backbone)(weights=None)


@pytest.mark.parametrize("backbone", list(LAYOUTS))
def test_same_seed_same_weights_and_same_outputs_as_torchvision(backbone: str) -> None:
    torch.manual_seed(5)
    ours = resnet(backbone).eval()
    torch.manual_seed(5)
    theirs = _torchvision(backbone).eval()
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_a_torchvision_state_dict_loads_strictly() -> None:
    theirs = _torchvision("resnet18")
    ours = resnet("resnet18")
    ours.load_state_dict(theirs.state_dict(), strict=True)


def test_an_unknown_backbone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown ResNet 'resnet101'"):
        resnet("resnet101")


def test_building_the_classifier_does_not_import_torchvision() -> None:
    code = (
        "import sys\n"
        "from adasam.classifier import build_classifier\n"
        "from adasam.config import ClassifierConfig\n"
        "build_classifier(ClassifierConfig(backbone='resnet10'), 2, 256)\n"
        "print('torchvision' in sys.modules, 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["False", "False"], out.stdout
