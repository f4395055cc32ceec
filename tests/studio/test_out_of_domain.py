"""The studio outside a model's domain: no automatic prompt, a plain message, and drawn boxes
answered by plain LiteMedSAM (zero-shot), whose mask can be submitted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from adasam.bundle import load_bundle, save_bundle
from adasam.config import DomainSettings
from adasam.domain import DomainModel
from studio import pipeline
from studio.config import StudioSettings
from studio.segment_handlers import SegmentHandlers
from studio.services import build_services
from tests.studio.conftest import make_settings, new_case

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture
def ood_services(tmp_path: Path, studio_bundle_dir: Path):
    bundle = load_bundle(studio_bundle_dir)
    dim = bundle.classifier.head.in_features
    settings_ = DomainSettings("synthetic test phantoms only", "CT", "HU", 1e-6, 10, 5, 90, 30)
    strict = replace(
        bundle,
        config=replace(bundle.config, domain=settings_),
        domain=DomainModel(np.zeros(dim), np.eye(dim), 1e-6),  # nothing is in its domain
    )
    path = save_bundle(strict, tmp_path / "strict")
    built = build_services(
        make_settings(tmp_path / "data", path), StudioSettings(identity="name", seed_worklist=False)
    )
    yield built
    built.close()


def test_ct_small_outside_the_domain_gets_a_box_by_hand(ood_services) -> None:
    handlers = SegmentHandlers(ood_services)
    key = ood_services.catalog.default(ood_services.catalog.choices()).key
    state = handlers.run_state(new_case(), key, ["liver"])
    assert state.domain is not None and not state.domain.in_domain
    assert all(not w.found and not w.candidates for w in state.works)  # nothing automatic
    choice = ood_services.catalog.choice(key)
    note = pipeline.out_of_domain_note(state, choice.trained_on)
    assert note and "synthetic test phantoms only" in note and "Draw a box" in note
    # two corners of a box around CT_small's vertebral body → plain LiteMedSAM's mask
    state, _ = handlers.refine_state(state, 40, 4, "box")
    state, changed = handlers.refine_state(state, 86, 52, "box")
    work = state.work
    assert changed and work is not None and work.candidates
    mask = work.mask
    assert mask is not None and 0.3 * 47 * 49 < mask.sum() < 47 * 49
    ys, xs = np.nonzero(mask)
    assert xs.min() >= 36 and xs.max() <= 90 and ys.max() <= 56


def test_the_drawn_box_reuses_the_demo_bundles_embedding(
    tmp_path: Path, studio_bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The liver demo bundle (frozen LiteMedSAM encoder) finds CT_small outside its domain;
    the box drawn then is answered by zero-shot LiteMedSAM from the embedding the bundle's
    predictor computed for the pipeline, not from a second encoder pass."""
    built = build_services(
        make_settings(tmp_path / "data", studio_bundle_dir),
        StudioSettings(identity="name", seed_worklist=False),
    )
    try:
        handlers = SegmentHandlers(built)
        state = handlers.run_state(new_case(), "liver-ct", ["liver"])
        assert state.domain is not None and not state.domain.in_domain
        zero_shot = built.catalog.zero_shot()

        def no_encoder(*_a: object) -> None:
            raise AssertionError("the liver bundle encoded this slice already")

        monkeypatch.setattr(zero_shot.backend, "encode", no_encoder)
        state, _ = handlers.refine_state(state, 40, 4, "box")
        state, changed = handlers.refine_state(state, 86, 52, "box")
        assert changed and zero_shot.embedding_store.lent == 1  # type: ignore[union-attr]
        mask = state.work.mask if state.work is not None else None
        assert mask is not None and 0.3 * 47 * 49 < mask.sum() < 47 * 49
    finally:
        built.close()


def test_zero_shot_gets_its_backend_like_every_model(ood_services) -> None:
    """Zero-shot LiteMedSAM is built with the catalog's backend factory (``ADASAM_BACKEND``;
    ``auto``: the fastest the guard passed for it), so a slice it must encode itself does not
    fall back to eager PyTorch when a faster backend passed for it."""
    from adasam.backends import TorchBackend
    from adasam.manual import ZERO_SHOT_NAME

    catalog = ood_services.catalog
    built: list[str] = []

    def factory(bundle):
        built.append(bundle.config.name)
        return TorchBackend(bundle)

    catalog._backend = factory  # the factory build_services gave it, recorded
    zero_shot = catalog.zero_shot()
    assert built == [ZERO_SHOT_NAME] and zero_shot.backend.name == "torch"
    assert catalog.zero_shot() is zero_shot and built == [ZERO_SHOT_NAME]  # built once
