"""Settings of ``python -m adasam train-clicks`` (torch-free, so ``--help`` stays fast; the
training itself is :mod:`adasam.training.click_train`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from adasam.errors import ConfigError


@dataclass(frozen=True)
class ClickTrainConfig:
    """Settings of ``train-clicks`` (validated; help text in each field's metadata)."""

    bundle: str = field(metadata={"help": "the trained bundle to start from"})
    data: str = field(metadata={"help": "the bundle's training data (its split names slices)"})
    out: str = field(metadata={"help": "where to write the click-trained bundle"})
    embedding_cache: str = field(
        default="data/.embeddings", metadata={"help": "embedding store (filled where missing)"}
    )
    split: str | None = field(
        default=None, metadata={"help": "split JSON (default: BUNDLE/training/split.json)"}
    )
    steps: int = field(default=300, metadata={"help": "optimizer steps"})
    items: int = field(default=8, metadata={"help": "(slice, structure) items per step"})
    rounds: int = field(default=4, metadata={"help": "corrective clicks per item"})
    grad_rounds: int = field(
        default=2,
        metadata={"help": "rounds per step that carry a gradient (drawn at random; 0: all)"},
    )
    lr: float = field(default=3e-5, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    w_distill: float = field(default=1.0, metadata={"help": "weight of box distillation"})
    distill_boxes: int = field(
        default=4, metadata={"help": "random distillation boxes per step (any training slice)"}
    )
    p_box: float = field(default=0.4, metadata={"help": "first prompt: exact box (weight)"})
    p_jitter_box: float = field(default=0.4, metadata={"help": "first prompt: jittered box"})
    p_point: float = field(default=0.2, metadata={"help": "first prompt: one positive point"})
    p_cam: float = field(
        default=0.0,
        metadata={
            "help": "first prompt: the pipeline's own CAM box and mask prompt (weight; > 0 also "
            "validates from the CAM start and guards its IoU like the box's)"
        },
    )
    jitter: float = field(default=0.15, metadata={"help": "box jitter, fraction of its size"})
    p_ritm: float = field(
        default=0.5, metadata={"help": "share of clicks by the evaluation (RITM) rule"}
    )
    bf16: bool = field(default=True, metadata={"help": "bfloat16 autocast (CPU and CUDA)"})
    val_every: int = field(default=50, metadata={"help": "validate every this many steps"})
    val_items: int = field(default=24, metadata={"help": "validation (slice, structure) items"})
    val_clicks: int = field(default=8, metadata={"help": "clicks per validation item"})
    max_box_drop: float = field(
        default=0.01,
        metadata={
            "help": "largest drop of the IoU before any click (box start; CAM start too with "
            "p_cam > 0) vs the start that a kept checkpoint may have"
        },
    )
    version: str | None = field(
        default=None, metadata={"help": "version of the new bundle (default: start's + 1)"}
    )
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads"})
    max_minutes: float = field(default=60.0, metadata={"help": "stop (and keep the best) after"})
    quiet: bool = field(default=False, metadata={"help": "no progress bar"})

    def __post_init__(self) -> None:
        positive = {"steps": self.steps, "items": self.items, "val_every": self.val_every}
        positive |= {"val_items": self.val_items, "val_clicks": self.val_clicks}
        positive |= {"threads": self.threads, "lr": self.lr, "max_minutes": self.max_minutes}
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.rounds < 1:
            raise ConfigError(
                f"rounds must be ≥ 1 (clicks are what this trains), got {self.rounds}"
            )
        if not 0 <= self.grad_rounds <= self.rounds + 1:
            raise ConfigError(f"grad_rounds must be in [0, rounds + 1], got {self.grad_rounds}")
        weights = (self.p_box, self.p_jitter_box, self.p_point, self.p_cam)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(
                f"p_box, p_jitter_box, p_point, p_cam must be ≥ 0 and not all 0, got {weights}"
            )
        if self.w_distill < 0 or self.distill_boxes < 0 or self.max_box_drop < 0:
            raise ConfigError("w_distill, distill_boxes and max_box_drop must be ≥ 0")
