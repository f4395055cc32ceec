"""The auxiliary classifier: a ResNet (torchvision's layout, :mod:`adasam.resnet`) with a
global-average-pool + linear head.

One sigmoid output per target structure. Because the head is GAP + linear, the class activation
map ``CAM_c = ReLU(Σ_k w_ck · A_k)`` of the last feature maps ``A`` is differentiable in both the
weights and the features: :meth:`StructureClassifier.cam` is that map, and it is what carries the
segmentation gradient back into the classifier during ADA-SAM training. For display, GradCAM
(:mod:`adasam.gradcam`) is used; with this head the two agree up to normalisation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adasam.config import ClassifierConfig
from adasam.resnet import ResNet, resnet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class StructureClassifier(nn.Module):
    """ResNet features → GAP → linear → one logit per structure.

    Input: float ``(B, 3, S, S)`` normalised with ImageNet mean/std (see :func:`to_input`), with
    ``S`` = ``config.image_size``. Output of ``forward``: logits ``(B, n_structures)``.
    """

    takes_embedding = False

    def __init__(self, config: ClassifierConfig, n_structures: int) -> None:
        super().__init__()
        self.config = config
        net: ResNet = resnet(config.backbone)
        if config.output_stride == 16:
            first = net.layer4[0]
            first.conv1.stride = (1, 1) if config.backbone != "resnet50" else first.conv1.stride
            if config.backbone == "resnet50":
                first.conv2.stride = (1, 1)
            first.downsample[0].stride = (1, 1)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.head = nn.Linear(net.fc.in_features, n_structures)

    @property
    def cam_layer(self) -> nn.Module:
        """The module whose output is the CAM's feature maps (GradCAM's target layer)."""
        return self.layer4

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` → last feature maps ``(B, K, S/r, S/r)``, r = output stride."""
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits ``(B, C)``, CAMs (as :meth:`forward_with_cam`) and pooled features
        ``(B, K)`` in one forward pass (no backward pass needed for the CAM)."""
        feats = self.features(x)
        pooled = feats.mean(dim=(2, 3))
        cam = F.relu(torch.einsum("ck,bkhw->bchw", self.head.weight, feats))
        peak = cam.amax(dim=(2, 3), keepdim=True)
        return self.head(pooled), cam / (peak + 1e-6), pooled

    def forward_with_cam(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, C)`` and differentiable CAMs ``(B, C, S/32, S/32)`` in [0, 1].

        Each CAM is ``ReLU(Σ_k w_ck A_k)`` divided by its maximum (plus a small epsilon), so
        gradients reach both the head's weights and every backbone layer.
        """
        feats = self.features(x)
        logits = self.head(feats.mean(dim=(2, 3)))
        cam = F.relu(torch.einsum("ck,bkhw->bchw", self.head.weight, feats))
        peak = cam.amax(dim=(2, 3), keepdim=True)
        return logits, cam / (peak + 1e-6)


class EmbeddingClassifier(nn.Module):
    """A small convolutional head on SAM's image embedding → masked GAP → linear, one logit per
    structure. The image encoder runs once per slice and serves classifier, CAM and decoder.

    Input: the image embedding float ``(B, C, e, e)`` (SAM's padded frame; LiteMedSAM: C = 256,
    e = 64) and optionally ``valid``, bool ``(B, 1, e, e)``: the cells covering image content
    (padding excluded from the pooled features). Two coordinate channels (x, y in [-1, 1]) are
    appended, and the three 3×3 convolutions are dilated 1, 2 and 4 (a 15-cell, 60-pixel field),
    so the head can tell structures that look alike locally apart by where they are (the vastus
    medialis from the lateralis). CAMs come out on the same ``e × e`` grid.
    """

    takes_embedding = True

    def __init__(self, config: ClassifierConfig, n_structures: int, in_channels: int) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        layers: list[nn.Module] = []
        for i, dilation in enumerate((1, 2, 4)):
            layers += [
                nn.Conv2d(
                    in_channels + 2 if i == 0 else h, h, 3, padding=dilation, dilation=dilation
                ),
                nn.GroupNorm(8, h),
                nn.GELU(),
            ]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(h, n_structures)

    @property
    def cam_layer(self) -> nn.Module:
        return self.body

    def features(self, emb: torch.Tensor) -> torch.Tensor:
        b, _, h, w = emb.shape
        ys = torch.linspace(-1.0, 1.0, h, device=emb.device, dtype=emb.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=emb.device, dtype=emb.dtype)
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))[None].expand(b, -1, -1, -1)
        return self.body(torch.cat([emb, grid], dim=1))

    def pooled(self, feats: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """``(B, K, e, e)`` features → ``(B, K)`` averaged over the valid cells."""
        if valid is None:
            return feats.mean(dim=(2, 3))
        w = valid.to(feats.dtype)
        return (feats * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3)).clamp(min=1.0)

    def forward(self, emb: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.pooled(self.features(emb), valid))

    def forward_with_cam(
        self, emb: torch.Tensor, valid: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, C)`` and differentiable CAMs ``(B, C, e, e)`` in [0, 1] (zero on
        padding cells), each ``ReLU(Σ_k w_ck A_k)`` over its peak."""
        logits, cam, _ = self.forward_all(emb, valid)
        return logits, cam

    def forward_all(
        self, emb: torch.Tensor, valid: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, CAMs (as :meth:`forward_with_cam`) and the pooled features ``(B, K)``."""
        feats = self.features(emb)
        pooled = self.pooled(feats, valid)
        cam = F.relu(torch.einsum("ck,bkhw->bchw", self.head.weight, feats))
        if valid is not None:
            cam = cam * valid.to(cam.dtype)
        peak = cam.amax(dim=(2, 3), keepdim=True)
        return self.head(pooled), cam / (peak + 1e-6), pooled


def build_classifier(
    config: ClassifierConfig, n_structures: int, embedding_channels: int
) -> StructureClassifier | EmbeddingClassifier:
    """The configured classifier (``embedding_channels``: SAM's embedding channels, used by
    the ``sam-embedding`` head only)."""
    if config.backbone == "sam-embedding":
        return EmbeddingClassifier(config, n_structures, embedding_channels)
    return StructureClassifier(config, n_structures)


def takes_embedding(classifier: nn.Module) -> bool:
    """Whether the classifier reads SAM's image embedding (else the image)."""
    return bool(getattr(classifier, "takes_embedding", False))


def to_input(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """uint8 RGB ``(H, W, 3)`` or ``(B, H, W, 3)`` (array or tensor, any H, W) → float
    ``(B, 3, size, size)``, resized (squashed, no letterbox) and ImageNet-normalised."""
    if isinstance(images, np.ndarray) and not images.flags.writeable:
        images = images.copy()  # slices are read-only; torch wants writable memory
    t = torch.as_tensor(images)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected (B, H, W, 3) RGB images, got {tuple(t.shape)}")
    return normalise(t.permute(0, 3, 1, 2).float(), size)


def normalise(x: torch.Tensor, size: int) -> torch.Tensor:
    """Float ``(B, 3, H, W)`` in 0..255 → ``(B, 3, size, size)`` ImageNet-normalised
    (differentiable; used in training on augmented batches)."""
    x = x / 255.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, (size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std
