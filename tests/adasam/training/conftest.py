from __future__ import annotations

from pathlib import Path

import pytest

from adasam.phantoms import write_dataset


@pytest.fixture(scope="session")
def thigh_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 thigh phantoms (3 subjects × 8 slices), 64 px, written to disk once."""
    out = tmp_path_factory.mktemp("phantoms") / "thigh"
    write_dataset("thigh-mri", 24, seed=5, out=out, size=64, progress=False)
    return out


def train_tiny_start(data: Path, out: Path, backbone: str, cache: Path) -> Path:
    """A 2-step trained tiny bundle with a frozen encoder (its split names ``data``'s slices),
    written to ``out``; embeddings go to ``cache``. Usable from module-scoped fixtures (it
    patches and restores the SAM config itself)."""
    import adasam.training.loop as loop
    from adasam.training.loop import TrainConfig, train
    from tests.conftest import TINY_SAM

    old, loop.SamConfig = loop.SamConfig, lambda: TINY_SAM
    try:
        cfg = TrainConfig(
            data=str(data), out=str(out), labeled="6", size=64,
            steps_per_epoch=2, max_steps=2, batch_size=2, unlabeled_batch_size=0, val_max=3,
            backbone=backbone, classifier_size=64, val_fraction=0.34, warmup_steps=1,
            sam="small", lora_encoder="off", train_decoder=True, embedding_cache=str(cache),
        )  # fmt: skip
        train(cfg, progress=False)
    finally:
        loop.SamConfig = old
    return out
