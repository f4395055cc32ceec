"""Shared fixtures: tiny models built in-process (never downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adasam.config import BundleConfig, ClassifierConfig, SamConfig

# The suite runs the PyTorch reference unless a test asks for another backend: the shipped
# accuracy-guard records (assets/guard/) would otherwise send the demo bundles to an exported
# backend in CLI and browser tests (an export per fresh data directory, bf16 numerics).
# The exported backends and the auto choice have their own tests (test_export, test_backend_choice).
os.environ.setdefault("ADASAM_BACKEND", "torch")

TINY_SAM = SamConfig(
    image_size=128,
    patch_size=8,
    encoder_embed_dim=32,
    encoder_depth=2,
    encoder_num_heads=2,
    encoder_global_attn_indexes=(1,),
    window_size=4,
    prompt_embed_dim=32,
    decoder_mlp_dim=64,
    decoder_num_heads=2,
    iou_head_hidden_dim=32,
)


def tiny_config(**changes: object) -> BundleConfig:
    base = dict(
        name="tiny",
        structures=("liver", "kidney"),
        sam=TINY_SAM,
        classifier=ClassifierConfig(backbone="resnet10", image_size=64, threshold=0.01),
    )
    base.update(changes)
    return BundleConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tiny_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from adasam.bundle import create_bundle, save_bundle

    return save_bundle(
        create_bundle(tiny_config(), seed=0), tmp_path_factory.mktemp("bundles") / "tiny"
    )
