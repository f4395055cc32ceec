"""The one window policy (adasam.imaging.model_input): the model's input comes from the pixels
and the bundle's window, never from the display window the user picked; CT, MR and PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adasam.imaging import (
    WINDOW_PRESETS,
    Window,
    apply_window,
    load_slice,
    model_image,
    model_window,
    rewindow,
    with_preferred_window,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "assets" / "examples"
DISPLAY_WINDOWS: list[str | Window] = ["ct-lung", "ct-bone", "auto", Window(10.0, 50.0, "custom")]


def _rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def test_the_policy_windows_hounsfield_units_only() -> None:
    assert model_window("HU", "ct-abdomen") == "ct-abdomen"
    assert model_window("a.u.", "ct-abdomen") is None
    assert model_window("HU", None) is None


def test_ct_in_hu_goes_through_the_bundles_window_whatever_is_displayed() -> None:
    ct = load_slice(EXAMPLES / "CT_small.dcm")
    assert ct.units == "HU"
    expected = _rgb(apply_window(ct.pixels, WINDOW_PRESETS["ct-abdomen"]))
    for display in DISPLAY_WINDOWS:
        shown = rewindow(ct, display)
        assert not np.array_equal(shown.display, expected)  # the user sees something else
        assert np.array_equal(model_image(shown, "ct-abdomen"), expected)
    # a window-less bundle sees the file's own default display, again whatever is shown
    assert np.array_equal(model_image(rewindow(ct, "ct-lung"), None), ct.display)


def test_mr_keeps_its_own_window_even_with_a_ct_bundle() -> None:
    mr = load_slice(EXAMPLES / "MR_small.dcm")
    assert mr.units != "HU" and mr.window is not None
    for display in DISPLAY_WINDOWS:
        shown = rewindow(mr, display)
        for bundle_window in ("ct-abdomen", None):
            assert np.array_equal(model_image(shown, bundle_window), mr.display)
    # the studio used to re-window MR with the model's (CT) window: that image is not the input
    wrong = rewindow(mr, "ct-abdomen").display
    assert not np.array_equal(model_image(mr, "ct-abdomen"), wrong)


@pytest.mark.parametrize("name", ["thigh_mri.png", "liver_ct.png"])
def test_png_is_given_as_it_is(name: str) -> None:
    png = load_slice(EXAMPLES / name)
    native = png.display.copy()
    for display in DISPLAY_WINDOWS:
        shown = rewindow(png, display)
        assert np.array_equal(model_image(shown, "ct-abdomen"), native)
        assert np.array_equal(model_image(shown, None), native)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "thigh_mri.png"])
def test_training_data_and_model_input_agree(name: str) -> None:
    """Training loads slices with their default window and applies with_preferred_window; that
    display is exactly what model_image gives for the slice shown in any other window."""
    trained_on = with_preferred_window(load_slice(EXAMPLES / name), "ct-abdomen").display
    shown = load_slice(EXAMPLES / name, window="ct-bone")
    assert np.array_equal(model_image(shown, "ct-abdomen"), trained_on)
