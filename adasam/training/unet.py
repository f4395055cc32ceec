"""A small U-Net: the fully supervised baseline (and a specialist for online learning later).

Input float ``(B, C_in, H, W)`` (H, W multiples of 2**depth), output logits ``(B, C_out, H, W)``,
one sigmoid channel per structure.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from adasam.training.data import SliceSet, jitter_intensity, random_affine, warp
from adasam.training.losses import dice_bce_per_item
from adasam.training.metrics import auroc, dice, hd95, iou, mean_std


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(True),
    )


class UNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        widths: tuple[int, ...] = (16, 32, 64, 128),
    ) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.down.append(_block(c, w))
            c = w
        self.bottom = _block(widths[-1], widths[-1] * 2)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        c = widths[-1] * 2
        for w in reversed(widths):
            self.up.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.dec.append(_block(2 * w, w))
            c = w
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for blk in self.down:
            x = blk(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


@dataclass(frozen=True)
class UNetConfig:
    steps: int = 300
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    augment: bool = True
    seed: int = 0


def _inputs(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float()


def train_unet(
    data: SliceSet, labeled: list[int], cfg: UNetConfig, progress: bool = False
) -> tuple[UNet, dict[str, float]]:
    """Fully supervised training on the labeled slices only (Dice + BCE per structure)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    net = UNet(3, len(data.structures)).train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    lab = np.asarray(labeled)
    start = time.perf_counter()
    for _ in tqdm(range(cfg.steps), disable=not progress, desc="U-Net"):
        idx = lab[rng.integers(0, len(lab), cfg.batch_size)]
        x = _inputs(data.images[idx])
        y = torch.from_numpy(data.masks(idx)).float()
        if cfg.augment:
            theta = random_affine(len(idx), gen)
            x = jitter_intensity(warp(x, theta), gen)
            y = (warp(y, theta, nearest=True) > 0.5).float()
        logits = net((x - 127.5) / 64.0)
        loss = dice_bce_per_item(logits.flatten(0, 1), y.flatten(0, 1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval(), {"seconds": time.perf_counter() - start, "final_loss": float(loss.detach())}


@torch.no_grad()
def predict_unet(net: UNet, images: np.ndarray, batch: int = 8) -> np.ndarray:
    """Probabilities float32 ``(N, T, H, W)``."""
    out = []
    for i in range(0, len(images), batch):
        out.append(torch.sigmoid(net((_inputs(images[i : i + batch]) - 127.5) / 64.0)))
    return torch.cat(out).numpy()


def evaluate_unet(net: UNet, data: SliceSet, indices: list[int]) -> list[dict[str, object]]:
    """Same metrics and conventions as :mod:`adasam.training.evaluate` (no prompts: the U-Net
    segments the whole slice; a structure is 'found' when any pixel passes 0.5)."""
    probs = predict_unet(net, data.images[indices])
    reports = []
    for t, name in enumerate(data.structures):
        d, j, h, fp, scores, present = [], [], [], [], [], []
        for k, i in enumerate(indices):
            gt = data.masks(i)[t]
            pred = probs[k, t] > 0.5
            scores.append(float(probs[k, t].max()))
            present.append(bool(gt.any()))
            sp = data.spacing[i]
            spacing = None if np.isnan(sp).any() else tuple(sp)
            if gt.any():
                d.append(dice(pred, gt))
                j.append(iou(pred, gt))
                h.append(hd95(pred, gt, spacing))
            else:
                fp.append(float(pred.any()))
        reports.append(
            {
                "name": name,
                "dice": mean_std(d),
                "iou": mean_std(j),
                "hd95": mean_std(h),
                "false_positive_rate": float(np.mean(fp)) if fp else float("nan"),
                "auroc": auroc(scores, present),
            }
        )
    return reports


def save_unet(net: UNet, structures: tuple[str, ...], cfg: UNetConfig, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, str(path / "unet.safetensors")
    )
    (path / "unet.json").write_text(
        json.dumps({"structures": list(structures), "config": asdict(cfg)}) + "\n"
    )


def load_unet(path: Path) -> tuple[UNet, tuple[str, ...]]:
    info = json.loads((path / "unet.json").read_text())
    net = UNet(3, len(info["structures"]))
    net.load_state_dict(load_file(str(path / "unet.safetensors")))
    return net.eval(), tuple(info["structures"])
