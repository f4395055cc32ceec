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
