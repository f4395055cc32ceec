"""AuxOL: an online specialist beside SAM, updated after every corrected case.

Auxiliary Online Learning (Huang et al.; reference code ``qianxihaoyue/AuxOL`` ``main.py``): a
small U-Net, the *specialist*, sees the crop around the prompt box resized to 128×128 (the
slice's 3 display channels + SAM's binary mask as a 4th channel) and predicts the structure's
logits in the crop. After each case a clinician corrected, it takes **one AdamW step**
(lr 5e-4, weight decay 5e-4) on a FIFO batch of the **last 32** corrected crops. Its logits are
fused with SAM's as ``p = σ(α·SAM + (1−α)·specialist)``; ``α`` is the mean of the per-case best
``α`` (grid 0, 0.05, …, 1, by Dice against the final mask) over the **previous 5** corrected
cases, and SAM is used alone (``α = 1``) until 5 exist.

Conventions: images are uint8 ``(H, W, 3)``; boxes XYXY in original pixels (inclusive pixel
coordinates, as :mod:`adasam.prompts`); SAM logits float32 ``(H, W)`` at the original size;
masks bool ``(H, W)``. Inside the crop window the fused mask replaces SAM's; outside it SAM's
mask is kept.

Departures from the reference, on purpose: GroupNorm instead of BatchNorm (the batch starts at
one crop and running statistics of a few steps are meaningless in eval mode); a narrow U-Net
(8/16/32 channels) run at half the crop size after a strided stem, with a full-resolution head,
so one step on 32 crops stays cheap on a CPU; among equally good ``α`` on a case the largest
(closest to SAM) is taken.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adasam.errors import ConfigError
from adasam.frame import ModelFrame

STATE_FORMAT = 1


@dataclass(frozen=True)
class AuxOLConfig:
    """Settings of the online specialist (defaults: the AuxOL paper and code)."""

    crop_size: int = field(default=128, metadata={"help": "side of the specialist's input crop"})
    fifo_size: int = field(default=32, metadata={"help": "corrected crops kept for each step"})
    lr: float = field(default=5e-4, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=5e-4, metadata={"help": "AdamW weight decay"})
    alpha_cases: int = field(
        default=5, metadata={"help": "previous cases whose best α are averaged (SAM alone before)"}
    )
    alpha_step: float = field(default=0.05, metadata={"help": "step of the α grid on [0, 1]"})
    margin: float = field(
        default=0.1, metadata={"help": "crop = box grown by this share of its size on each side"}
    )
    min_margin: int = field(default=4, metadata={"help": "…and by at least this many pixels"})
    widths: tuple[int, ...] = field(
        default=(8, 16, 32), metadata={"help": "U-Net channels per level"}
    )
    stem_stride: int = field(
        default=2, metadata={"help": "1: U-Net at the crop size; 2: at half of it (4× cheaper)"}
    )
    seed: int = field(default=0, metadata={"help": "initial weights"})

    def __post_init__(self) -> None:
        if self.stem_stride not in (1, 2):
            raise ConfigError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        multiple = self.stem_stride * 2 ** len(self.widths)
        if self.crop_size < 16 or self.crop_size % multiple:
            raise ConfigError(
                f"crop_size must be ≥ 16 and a multiple of {multiple}, got {self.crop_size}"
            )
        if self.fifo_size < 1 or self.alpha_cases < 1:
            raise ConfigError("fifo_size and alpha_cases must be ≥ 1")
        if not 0 < self.alpha_step <= 1:
            raise ConfigError(f"alpha_step must be in (0, 1], got {self.alpha_step}")
        if self.lr <= 0 or self.weight_decay < 0 or self.margin < 0 or self.min_margin < 0:
            raise ConfigError("lr must be > 0; weight_decay, margin, min_margin ≥ 0")
        if not self.widths or any(w < 4 for w in self.widths):
            raise ConfigError(f"widths must be ≥ 4 channels each, got {self.widths}")

    @property
    def alpha_grid(self) -> np.ndarray:
        """The α values tried per case: 0, step, …, 1."""
        n = round(1.0 / self.alpha_step)
        return np.linspace(0.0, 1.0, n + 1)


def _block(cin: int, cout: int) -> nn.Sequential:
    groups = 4 if cout % 4 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.GroupNorm(groups, cout),
        nn.ReLU(True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.GroupNorm(groups, cout),
        nn.ReLU(True),
    )


class SpecialistUNet(nn.Module):
    """U-Net ``(B, 4, S, S)`` float (RGB in [0, 1] + SAM mask 0/1) → ``(B, 1, S, S)`` logits.

    With ``stem_stride`` 2 the U-Net runs at ``S/2`` after a strided convolution, and a light
    full-resolution head (upsampled features + the input itself) gives the output at ``S``:
    4× cheaper, which is what keeps a 32-crop step fast on a CPU.
    """

    def __init__(
        self, widths: tuple[int, ...] = (8, 16, 32), in_channels: int = 4, stem_stride: int = 2
    ) -> None:
        super().__init__()
        self.stem_stride = stem_stride
        c = in_channels
        if stem_stride == 2:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, widths[0], 3, stride=2, padding=1, bias=False),
                nn.GroupNorm(4 if widths[0] % 4 == 0 else 1, widths[0]),
                nn.ReLU(True),
            )
            c = widths[0]
        self.down = nn.ModuleList()
        for w in widths:
            self.down.append(_block(c, w))
            c = w
        self.bottom = _block(c, 2 * c)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        c = 2 * c
        for w in reversed(widths):
            self.up.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.dec.append(_block(2 * w, w))
            c = w
        if stem_stride == 2:
            self.lift = nn.ConvTranspose2d(widths[0], 4, 2, stride=2)
            self.head = nn.Conv2d(4 + in_channels, 1, 3, padding=1)
        else:
            self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp = x
        if self.stem_stride == 2:
            x = self.stem(x)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = dec(torch.cat([up(x), skip], 1))
        if self.stem_stride == 2:
            x = torch.cat([F.relu(self.lift(x)), inp], 1)
        return self.head(x)


# -- crops --------------------------------------------------------------------------------------
def crop_window(
    box: np.ndarray | tuple[float, ...], hw: tuple[int, int], margin: float, min_margin: int
) -> tuple[int, int, int, int]:
    """The crop ``(y0, y1, x0, x1)`` (half-open, clipped to the image) around an XYXY box grown
    by ``margin`` × its size (at least ``min_margin`` px) on each side."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 >= x0 and y1 >= y0):
        raise ValueError(f"box must be XYXY with x0 ≤ x1 and y0 ≤ y1, got {list(box)}")
    h, w = hw
    mx = max(min_margin, margin * (x1 - x0 + 1))
    my = max(min_margin, margin * (y1 - y0 + 1))
    cx0, cx1 = max(0, int(np.floor(x0 - mx))), min(w, int(np.ceil(x1 + mx)) + 1)
    cy0, cy1 = max(0, int(np.floor(y0 - my))), min(h, int(np.ceil(y1 + my)) + 1)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"box {list(box)} lies outside the {h}×{w} image")
    return cy0, cy1, cx0, cx1


def _resize(x: torch.Tensor, size: tuple[int, int], nearest: bool = False) -> torch.Tensor:
    if nearest:
        return F.interpolate(x, size, mode="nearest")
    return F.interpolate(x, size, mode="bilinear", align_corners=False)


@dataclass(frozen=True, eq=False)
class Crop:
    """One case's crop at the specialist's size.

    ``image`` uint8 ``(3, S, S)``; ``sam_logits`` float32 ``(S, S)``; ``window`` the
    ``(y0, y1, x0, x1)`` it came from.
    """

    image: np.ndarray
    sam_logits: np.ndarray
    window: tuple[int, int, int, int]

    def net_input(self) -> torch.Tensor:
        """float ``(4, S, S)``: RGB in [0, 1] and SAM's binary mask."""
        rgb = torch.from_numpy(self.image).float() / 255.0
        mask = torch.from_numpy(self.sam_logits > 0).float()[None]
        return torch.cat([rgb, mask], 0)


def make_crop(
    image: np.ndarray, box: np.ndarray | tuple[float, ...], sam_logits: np.ndarray, cfg: AuxOLConfig
) -> Crop:
    """Cut and resize the crop of ``image`` (uint8 ``(H, W, 3)``) and SAM's full-size logits."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.shape} {image.dtype}")
    if sam_logits.shape != image.shape[:2]:
        raise ValueError(f"SAM logits {sam_logits.shape} do not match the image {image.shape[:2]}")
    window = crop_window(box, image.shape[:2], cfg.margin, cfg.min_margin)
    y0, y1, x0, x1 = window
    s = (cfg.crop_size, cfg.crop_size)
    img = torch.from_numpy(np.array(image[y0:y1, x0:x1])).permute(2, 0, 1)[None]
    img = _resize(img.float(), s).round().clamp(0, 255).to(torch.uint8)[0].numpy()
    logit = torch.from_numpy(np.array(sam_logits[y0:y1, x0:x1], np.float32))
    logit = _resize(logit[None, None], s)[0, 0].numpy()
    return Crop(img, logit, window)


def crop_mask(mask: np.ndarray, window: tuple[int, int, int, int], size: int) -> np.ndarray:
    """bool ``(size, size)``: a full-size bool mask cut to ``window`` and resized (nearest)."""
    y0, y1, x0, x1 = window
    t = torch.from_numpy(np.array(mask[y0:y1, x0:x1])).float()[None, None]
    return _resize(t, (size, size), nearest=True)[0, 0].numpy() > 0.5


def fuse_logits(sam: np.ndarray, specialist: np.ndarray, alpha: float) -> np.ndarray:
    """``α·SAM + (1−α)·specialist`` (logits; the fused probability is its sigmoid)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return alpha * sam + (1.0 - alpha) * specialist


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def best_alpha(
    sam: np.ndarray, specialist: np.ndarray, target: np.ndarray, grid: np.ndarray
) -> float:
    """The α of ``grid`` whose fused mask (logits > 0) has the highest Dice with ``target``
    (all ``(S, S)``); ties go to the largest α (closest to SAM)."""
    scores = np.array([_dice(fuse_logits(sam, specialist, a) > 0, target) for a in grid])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(grid[best[-1]])


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return dice.mean() + F.binary_cross_entropy_with_logits(logits, target)


@dataclass(frozen=True)
class Fusion:
    """The fused result of one case.

    ``mask`` bool ``(H, W)``: the fused mask in the crop window, SAM's outside; ``alpha`` the α
    used (1.0: SAM alone); ``sam_only`` True while fewer than ``alpha_cases`` cases exist.
    """

    mask: np.ndarray
    alpha: float
    sam_only: bool
    window: tuple[int, int, int, int]


@dataclass(frozen=True)
class UpdateReport:
    """What one online update did: the case's best α, the loss of the step, the batch size."""

    best_alpha: float
    loss: float
    batch: int
    cases: int


class AuxOL:
    """The online specialist and its fusion rule (thread-safe; CPU by default).

    ``fuse`` is what the studio shows for a new case; ``update`` is called once per submitted
    correction with the final mask. ``save`` / ``load`` keep weights, optimizer moments, the
    FIFO and the α history, so learning survives a restart.
    """

    def __init__(self, cfg: AuxOLConfig | None = None, device: str = "cpu") -> None:
        self.cfg = cfg or AuxOLConfig()
        self.device = torch.device(device)
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(self.cfg.seed)
        self.net = SpecialistUNet(self.cfg.widths, stem_stride=self.cfg.stem_stride).to(self.device)
        torch.random.set_rng_state(gen_state)
        self.opt = torch.optim.AdamW(
            self.net.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )
        self.fifo: deque[tuple[Crop, np.ndarray]] = deque(maxlen=self.cfg.fifo_size)
        self.alphas: deque[float] = deque(maxlen=self.cfg.alpha_cases)
        self.cases = 0
        self._lock = threading.RLock()

    # -- inference ----------------------------------------------------------------------------
    @property
    def alpha(self) -> float | None:
        """The α the next fusion uses, or None (SAM alone) before ``alpha_cases`` cases."""
        with self._lock:
            if len(self.alphas) < self.cfg.alpha_cases:
                return None
            return float(np.mean(self.alphas))

    def specialist_logits(self, crop: Crop) -> np.ndarray:
        """float32 ``(S, S)``: the specialist's logits on one crop."""
        with self._lock, torch.inference_mode():
            self.net.eval()
            x = crop.net_input()[None].to(self.device)
            return self.net(x)[0, 0].float().cpu().numpy()

    def fuse(
        self, image: np.ndarray, box: np.ndarray | tuple[float, ...], sam_logits: np.ndarray
    ) -> Fusion:
        """The fused mask for one case (SAM's own mask while ``alpha`` is None)."""
        crop = make_crop(image, box, sam_logits, self.cfg)
        sam_mask = sam_logits > 0
        alpha = self.alpha
        if alpha is None:
            return Fusion(sam_mask, 1.0, True, crop.window)
        fused = fuse_logits(crop.sam_logits, self.specialist_logits(crop), alpha)
        y0, y1, x0, x1 = crop.window
        t = torch.from_numpy(fused)[None, None]
        back = _resize(t, (y1 - y0, x1 - x0))[0, 0].numpy() > 0
        mask = sam_mask.copy()
        mask[y0:y1, x0:x1] = back
        return Fusion(mask, alpha, False, crop.window)

    # -- learning -----------------------------------------------------------------------------
    def update(
        self,
        image: np.ndarray,
        box: np.ndarray | tuple[float, ...],
        sam_logits: np.ndarray,
        final_mask: np.ndarray,
    ) -> UpdateReport:
        """Learn from one corrected case: record its best α (with the specialist as it was when
        the case was shown), add it to the FIFO, take one AdamW step on the whole FIFO."""
        if final_mask.shape != image.shape[:2]:
            raise ValueError(f"final mask {final_mask.shape} does not match {image.shape[:2]}")
        crop = make_crop(image, box, sam_logits, self.cfg)
        target = crop_mask(final_mask.astype(bool), crop.window, self.cfg.crop_size)
        with self._lock:
            alpha = best_alpha(
                crop.sam_logits, self.specialist_logits(crop), target, self.cfg.alpha_grid
            )
            self.alphas.append(alpha)
            self.fifo.append((crop, target))
            self.cases += 1
            loss = self._step()
            return UpdateReport(alpha, loss, len(self.fifo), self.cases)

    def _step(self) -> float:
        x = torch.stack([c.net_input() for c, _ in self.fifo]).to(self.device)
        y = torch.stack([torch.from_numpy(t).float()[None] for _, t in self.fifo]).to(self.device)
        self.net.train()
        with torch.enable_grad():
            loss = _loss(self.net(x), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        self.net.eval()
        return float(loss.detach())

    # -- persistence --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to resume (tensors, lists and numbers only)."""
        with self._lock:
            crops = list(self.fifo)
            empty = (0, self.cfg.crop_size, self.cfg.crop_size)
            return {
                "format": STATE_FORMAT,
                "config": {
                    k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.cfg).items()
                },
                "net": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "optimizer": self.opt.state_dict(),
                "fifo_images": torch.from_numpy(np.stack([c.image for c, _ in crops]))
                if crops
                else torch.zeros((0, 3, *empty[1:]), dtype=torch.uint8),
                "fifo_logits": torch.from_numpy(np.stack([c.sam_logits for c, _ in crops]))
                if crops
                else torch.zeros(empty),
                "fifo_targets": torch.from_numpy(np.stack([t for _, t in crops]))
                if crops
                else torch.zeros(empty, dtype=torch.bool),
                "fifo_windows": [list(c.window) for c, _ in crops],
                "alphas": list(self.alphas),
                "cases": self.cases,
            }

    def save(self, path: str | Path) -> Path:
        """Write the state to ``path`` atomically (a temporary sibling, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            torch.save(self.state(), tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> AuxOL:
        """Resume from :meth:`save`'s file (a ConfigError names what is wrong with it)."""
        try:
            saved = torch.load(Path(path), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise ConfigError(f"{path} is not a readable AuxOL state: {exc}") from None
        if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
            raise ConfigError(f"{path} is not an AuxOL state of format {STATE_FORMAT}")
        raw = dict(saved["config"])
        raw["widths"] = tuple(raw["widths"])
        out = cls(AuxOLConfig(**raw), device)
        with out._lock:
            out.net.load_state_dict(saved["net"])
            out.opt.load_state_dict(saved["optimizer"])
            for img, logit, target, window in zip(
                saved["fifo_images"].numpy(),
                saved["fifo_logits"].numpy(),
                saved["fifo_targets"].numpy(),
                saved["fifo_windows"],
                strict=True,
            ):
                out.fifo.append((Crop(img, logit, tuple(window)), target))  # type: ignore[arg-type]
            out.alphas.extend(float(a) for a in saved["alphas"])
            out.cases = int(saved["cases"])
        return out

    def inherit(self) -> AuxOL:
        """A copy for a new SAM version: same specialist, optimizer and FIFO, α history
        cleared (the best α measured against the old SAM does not hold for the new one)."""
        with self._lock:
            state = self.state()
        fresh = AuxOL(self.cfg, str(self.device))
        fresh.net.load_state_dict(state["net"])
        fresh.opt.load_state_dict(state["optimizer"])
        fresh.fifo.extend(self.fifo)
        fresh.cases = self.cases
        return fresh


def sam_logits_at_original(low: np.ndarray, frame: ModelFrame) -> np.ndarray:
    """SAM's low-resolution logits ``(L, L)`` (padded frame) → float32 ``(H, W)`` at the
    original size, through the slice's ``frame``."""
    t = torch.from_numpy(np.ascontiguousarray(low, dtype=np.float32))[None, None]
    return frame.lowres_to_original(t)[0, 0].numpy()
