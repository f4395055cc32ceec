"""AuxOL in the studio: a submission teaches the specialist, its state survives a restart,
the page shows SAM's and the fused mask, and ADASAM_AUXOL=0 switches it off."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from adasam.auxol import AuxOL, AuxOLConfig
from studio.auxol_view import OnlineSpecialists, fused_view
from studio.config import StudioSettings
from studio.services import Services, build_services
from tests.studio.conftest import CT_SMALL, make_settings
from tests.studio.test_handlers import Studio, _ran


def _submit(studio: Studio, services: Services) -> None:
    state = _ran(studio, CT_SMALL)
    studio.api.submit(state, "dr.a", 3, "major_edits", "", "", gr.Request(), None)


def _wait(services: Services) -> None:
    assert services.specialists is not None
    services.specialists._worker.submit(lambda: None).result(timeout=60)


def test_a_submission_teaches_the_specialist_and_survives_a_restart(
    tmp_path: Path, studio_bundle_dir: Path
) -> None:
    settings = make_settings(tmp_path / "data", studio_bundle_dir)
    services = build_services(settings, StudioSettings(identity="name", seed_worklist=False))
    studio = Studio(services)
    _submit(studio, services)
    _wait(services)
    saved = list((tmp_path / "data" / "auxol").glob("*.pt"))
    assert len(saved) == 1
    assert AuxOL.load(saved[0]).cases == 1
    image, text = fused_view(services, _ran(studio, CT_SMALL))
    assert image is not None and image.shape == (128, 128, 3)
    assert "learned from 1 corrected case" in text and "SAM alone until 5" in text
    services.close()

    again = build_services(settings, StudioSettings(identity="name", seed_worklist=False))
    state = _ran(Studio(again), CT_SMALL)
    assert again.specialists is not None
    assert again.specialists.get(state.model_name, state.model_version).cases == 1
    again.close()


def test_after_five_cases_the_page_shows_the_fused_mask(
    tmp_path: Path, studio_bundle_dir: Path
) -> None:
    services = build_services(
        make_settings(tmp_path / "data", studio_bundle_dir),
        StudioSettings(identity="name", seed_worklist=False),
    )
    assert services.specialists is not None
    services.specialists.cfg = AuxOLConfig(crop_size=32, widths=(4, 8))
    studio = Studio(services)
    state = _ran(studio, CT_SMALL)
    final = np.zeros(state.slice.shape, bool)
    final[40:80, 40:80] = True
    for _ in range(5):
        services.specialists.learn(state, final).result(timeout=60)  # type: ignore[union-attr]
    image, text = fused_view(services, state)
    assert "α = " in text and "learned from 5 corrected cases" in text
    assert image is not None
    services.close()


def test_auxol_can_be_switched_off(tmp_path: Path, studio_bundle_dir: Path) -> None:
    assert StudioSettings.from_env({"ADASAM_AUXOL": "0"}).auxol is False
    assert StudioSettings.from_env({}).auxol is True
    services = build_services(
        make_settings(tmp_path / "data", studio_bundle_dir),
        StudioSettings(identity="name", seed_worklist=False, auxol=False),
    )
    studio = Studio(services)
    _submit(studio, services)
    _wait(services)
    assert not (tmp_path / "data" / "auxol").exists()
    image, text = fused_view(services, _ran(studio, CT_SMALL))
    assert image is None and "switched off" in text
    services.close()


def test_a_new_version_inherits_its_parents_specialist(tmp_path: Path) -> None:
    specialists = OnlineSpecialists(tmp_path, cfg=AuxOLConfig(crop_size=32, widths=(4, 8)))
    parent = specialists.get("m", "1")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 40, 3)).astype(np.uint8)
    logits = rng.normal(size=(40, 40)).astype(np.float32)
    parent.update(image, (5, 5, 30, 30), logits, logits > 0.3)
    parent.save(specialists.path("m", "1"))
    child = OnlineSpecialists(tmp_path).get("m", "2", parent_version="1")
    assert child.cases == 1 and child.alpha is None
    specialists.close()
