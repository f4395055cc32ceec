"""The studio and ``adasam predict`` give the model the same image for a slice, computed by
``adasam.imaging.model_image`` from the pixels and the bundle's window, whatever display
window the user picked (the studio's window drop-down, the CLI's ``--window``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from adasam.bundle import load_bundle, save_bundle, with_version
from adasam.cli import main
from adasam.imaging import load_slice, model_image
from adasam.predictor import Predictor
from studio.case_handlers import CaseHandlers
from studio.config import StudioSettings
from studio.segment_handlers import SegmentHandlers
from studio.services import Services, build_services
from tests.studio.conftest import CT_SMALL, EXAMPLES, make_settings

MR_SMALL = EXAMPLES / "MR_small.dcm"


@pytest.fixture(scope="module")
def ct_bundle(studio_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny studio bundle, recorded as trained through the ``ct-abdomen`` window."""
    bundle = with_version(load_bundle(studio_bundle_dir), "w", window="ct-abdomen")
    return save_bundle(bundle, tmp_path_factory.mktemp("windowed") / "ct")


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Every image a predictor is asked to predict or refine on."""
    images: list[np.ndarray] = []
    predict, refine = Predictor.predict, Predictor.refine

    def spy_predict(self, image, *args, **kwargs):  # type: ignore[no-untyped-def]
        images.append(np.array(image))
        return predict(self, image, *args, **kwargs)

    def spy_refine(self, image, *args, **kwargs):  # type: ignore[no-untyped-def]
        images.append(np.array(image))
        return refine(self, image, *args, **kwargs)

    monkeypatch.setattr(Predictor, "predict", spy_predict)
    monkeypatch.setattr(Predictor, "refine", spy_refine)
    return images


@pytest.fixture
def studio(tmp_path: Path, ct_bundle: Path) -> Iterator[tuple[Services, str]]:
    services = build_services(
        make_settings(tmp_path / "data", ct_bundle),
        StudioSettings(identity="name", seed_worklist=False, auxol=False, refine_guard=False),
    )
    yield services, services.catalog.default().key
    services.close()


@pytest.mark.parametrize("path", [CT_SMALL, MR_SMALL])
def test_the_studio_feeds_the_model_the_same_image_in_any_display_window(
    studio, seen, path: Path
) -> None:
    services, key = studio
    cases, segment = CaseHandlers(services), SegmentHandlers(services)
    expected = model_image(load_slice(path), "ct-abdomen")
    state = cases.load_upload(str(path), 2, key)["state"]
    for window in ("ct-lung", "auto"):
        shown = cases.change_window(state, window, None, None)["state"]
        assert not np.array_equal(shown.slice.display, expected)
        ran = segment.run(shown, key, ["liver"])["state"]
        segment.refine_state(ran, 20, 20, "add")
    assert len(seen) == 4
    for image in seen:
        assert np.array_equal(image, expected)


def test_predict_cli_feeds_the_model_the_same_image_as_the_studio(
    ct_bundle: Path, seen, tmp_path: Path, capsys
) -> None:
    for window in ("ct-lung", None):
        args = ["predict", str(CT_SMALL), "--bundle", str(ct_bundle), "--out", str(tmp_path)]
        assert main([*args, *(["--window", window] if window else [])]) == 0
    capsys.readouterr()
    expected = model_image(load_slice(CT_SMALL), "ct-abdomen")
    assert len(seen) == 2
    for image in seen:
        assert np.array_equal(image, expected)
