"""Fixtures of the studio suite: a tiny untrained bundle, services on a temporary data
directory, and sample slices. Nothing is downloaded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adasam.config import ClassifierConfig
from adasam.imaging import load_slice
from adasam.settings import ASSETS_DIR, Settings
from studio.config import StudioSettings
from studio.services import Services, build_services
from studio.state import CaseSource, CaseState
from tests.conftest import tiny_config

EXAMPLES = ASSETS_DIR / "examples"
CT_SMALL = EXAMPLES / "CT_small.dcm"
THIGH_PNG = EXAMPLES / "thigh_mri.png"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the browser tests measured (latency) and where the screenshots are."""
    from tests.studio.browser_support import REPORT

    if REPORT:
        terminalreporter.section("studio browser tests")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def studio_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained bundle (liver, kidney) whose classifier finds everything (threshold
    1e-6), so every structure gets prompts and three candidates."""
    from adasam.bundle import create_bundle, save_bundle

    config = tiny_config(
        classifier=ClassifierConfig(backbone="resnet10", image_size=64, threshold=1e-6)
    )
    return save_bundle(create_bundle(config, seed=0), tmp_path_factory.mktemp("studio") / "tiny")


def make_settings(data_dir: Path, bundle_dir: Path, **changes: object) -> Settings:
    """Settings for a test: CPU, SQLite in ``data_dir``."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "device": "cpu",
        "bundle_dir": bundle_dir,
        "database_url": f"sqlite:///{data_dir / 'studio.sqlite3'}",
        "max_pixels": 4_000_000,
        "embed_cache_size": 4,
    }
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def services(tmp_path: Path, studio_bundle_dir: Path) -> Iterator[Services]:
    """Services on an empty database (no worklist seeding). The refinement guard is off: the
    tiny bundle is untrained, its refinements are noise the guard would rightly refuse, and
    these tests are about the bookkeeping (tests/studio/test_refine_trust.py tests the guard)."""
    built = build_services(
        make_settings(tmp_path / "data", studio_bundle_dir),
        StudioSettings(identity="name", seed_worklist=False, refine_guard=False),
    )
    yield built
    built.close()


def new_case(path: Path = CT_SMALL) -> CaseState:
    """A freshly loaded case from a file."""
    return CaseState.new(load_slice(path), CaseSource("upload", path, path.name), time.time())


def write_png(path: Path, array: np.ndarray) -> Path:
    """Save a uint8 array as PNG and return the path."""
    Image.fromarray(array).save(path)
    return path
