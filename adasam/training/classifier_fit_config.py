"""Settings of ``python -m adasam fit-classifier`` (torch-free, so ``--help`` stays fast; the
fit itself is :mod:`adasam.training.classifier_fit`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from adasam.errors import ConfigError


@dataclass(frozen=True)
class ClassifierFitConfig:
    """Settings of ``fit-classifier`` (validated; help text in each field's metadata)."""

    bundle: str = field(metadata={"help": "the trained bundle whose classifier is refitted"})
    data: str = field(metadata={"help": "the bundle's training data (its split names slices)"})
    out: str = field(metadata={"help": "where to write the new bundle version"})
    embedding_cache: str = field(
        default="data/.embeddings", metadata={"help": "embedding store (filled where missing)"}
    )
    split: str | None = field(
        default=None, metadata={"help": "split JSON (default: BUNDLE/training/split.json)"}
    )
    epochs: int = field(default=40, metadata={"help": "passes over the training slices"})
    batch_size: int = field(default=8, metadata={"help": "slices per step"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    w_cam: float = field(
        default=1.0,
        metadata={
            "help": "weight of the CAM-alignment term (soft Dice of the CAM with the mask, on "
            "slices with masks); it shapes the CAM that makes the prompts"
        },
    )
    reinit: bool = field(
        default=False,
        metadata={"help": "start from freshly initialised weights (default: the bundle's own)"},
    )
    calibrate: bool = field(
        default=True,
        metadata={"help": "pick the presence and CAM thresholds on the validation slices after"},
    )
    version: str | None = field(
        default=None, metadata={"help": "version of the new bundle (default: start's + 1)"}
    )
    seed: int = field(default=0, metadata={"help": "random seed (initialisation, batches)"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads"})
    max_minutes: float = field(
        default=30.0, metadata={"help": "stop at the first epoch end past this (keeps the best)"}
    )
    quiet: bool = field(default=False, metadata={"help": "no progress bar"})

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
        positive |= {"threads": self.threads, "max_minutes": self.max_minutes}
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.w_cam < 0 or self.weight_decay < 0:
            raise ConfigError("w_cam and weight_decay must be ≥ 0")
