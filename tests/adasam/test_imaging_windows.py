"""Display windows: presets, the auto window, the mapping formula."""

from __future__ import annotations

import numpy as np
import pytest

from adasam.errors import IngestError
from adasam.imaging import (
    WINDOW_CHOICES,
    WINDOW_PRESETS,
    Window,
    apply_window,
    auto_window,
    resolve_window,
)


def test_presets_have_the_standard_level_and_width() -> None:
    expected = {
        "ct-abdomen": (40.0, 400.0),
        "ct-liver": (40.0, 400.0),
        "ct-bone": (400.0, 1800.0),
        "ct-lung": (-600.0, 1500.0),
        "ct-brain": (40.0, 80.0),
    }
    for name, (level, width) in expected.items():
        preset = WINDOW_PRESETS[name]
        assert (preset.level, preset.width, preset.name) == (level, width, name)
    assert "auto" not in WINDOW_PRESETS
    assert WINDOW_CHOICES[0] == "auto"
    assert set(expected) <= set(WINDOW_CHOICES)


def test_liver_window_maps_its_edges_exactly() -> None:
    values = np.array([[-1000.0, -160.0, 40.0, 240.0, 3000.0, -60.0]], dtype=np.float32)
    out = apply_window(values, WINDOW_PRESETS["ct-abdomen"])
    assert out.dtype == np.uint8
    # -160 → 0, 240 → 255, 40 → 127.5 → 128 (ties to even), -60 → 63.75 → 64
    assert out.tolist() == [[0, 0, 128, 255, 255, 64]]
    assert WINDOW_PRESETS["ct-liver"].low == -160.0
    assert WINDOW_PRESETS["ct-liver"].high == 240.0


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("ct-lung", -1350.0, 150.0), ("ct-brain", 0.0, 80.0), ("ct-bone", -500.0, 1300.0)],
)
def test_each_preset_maps_low_to_black_and_high_to_white(
    name: str, low: float, high: float
) -> None:
    out = apply_window(
        np.array([low - 1, low, high, high + 1], dtype=np.float32), WINDOW_PRESETS[name]
    )
    assert out.tolist() == [0, 0, 255, 255]


def test_window_validates_width_and_level() -> None:
    with pytest.raises(IngestError, match="width"):
        Window(40, 0)
    with pytest.raises(IngestError, match="width"):
        Window(40, -5)
    with pytest.raises(IngestError, match="width"):
        Window(40, float("nan"))
    with pytest.raises(IngestError, match="level"):
        Window(float("inf"), 10)
    with pytest.raises(IngestError, match="numbers"):
        Window("high", 10)  # type: ignore[arg-type]
    window = Window(np.int16(3), np.float32(2))  # type: ignore[arg-type]
    assert type(window.level) is float and type(window.width) is float
    assert window.name == "custom"


def test_auto_window_is_the_half_percent_percentile_range() -> None:
    values = np.arange(1001, dtype=np.float32)  # 0..1000
    window = auto_window(values.reshape(7, 143))
    lo, hi = np.percentile(values, [0.5, 99.5])
    assert window.name == "auto"
    assert window.low == pytest.approx(lo) and window.high == pytest.approx(hi)
    assert (window.low, window.high) == pytest.approx((5.0, 995.0))


def test_auto_window_of_a_constant_image_is_mid_grey() -> None:
    window = auto_window(np.full((4, 4), 7.0, dtype=np.float32))
    assert (window.level, window.width) == (7.0, 1.0)
    assert apply_window(np.full((2, 2), 7.0), window).tolist() == [[128, 128], [128, 128]]


def test_resolve_window_accepts_names_windows_and_auto() -> None:
    values = np.linspace(-100, 100, 201, dtype=np.float32)
    assert resolve_window("CT_Lung", values) is WINDOW_PRESETS["ct-lung"]
    assert resolve_window(" ct-bone ", values) is WINDOW_PRESETS["ct-bone"]
    custom = Window(1, 2)
    assert resolve_window(custom, values) is custom
    assert resolve_window("auto", values) == auto_window(values)
    with pytest.raises(IngestError, match="Unknown display window 'ct-kidney'"):
        resolve_window("ct-kidney", values)
    with pytest.raises(IngestError):
        resolve_window(3, values)  # type: ignore[arg-type]


def test_apply_window_keeps_the_shape_of_colour_arrays() -> None:
    rgb = np.array([[[0, 100, 255]]], dtype=np.uint8)
    out = apply_window(rgb, Window(100, 100))  # 50..150
    assert out.shape == (1, 1, 3)
    assert out.tolist() == [[[0, 128, 255]]]
