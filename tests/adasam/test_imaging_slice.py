"""The Slice value object: content hash, immutability, repr, rewindow."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from adasam.imaging import WINDOW_PRESETS, Slice, Window, apply_window, load_slice, rewindow


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _hand_made(pixels: np.ndarray, units: str = "HU") -> Slice:
    display = np.zeros((*pixels.shape, 3), dtype=np.uint8)
    return Slice(
        pixels=pixels.astype(np.float32),
        display=display,
        spacing=(1.0, 1.0),
        modality="CT",
        units=units,
        window=None,
        source_format="npy",
        source_name="x.npy",
    )


def test_content_hash_is_sha256_of_shape_and_float32_bytes() -> None:
    gray = (np.arange(20, dtype=np.uint8) * 9).reshape(4, 5)
    s = load_slice(_png(gray), name="a.png")
    digest = hashlib.sha256(b"float32:4x5:" + gray.astype("<f4").tobytes()).hexdigest()
    assert s.content_hash == digest
    assert len(s.content_hash) == 64


def test_content_hash_depends_on_pixels_only() -> None:
    gray = (np.arange(20, dtype=np.uint8) * 9).reshape(4, 5)
    a = load_slice(_png(gray), name="first.png")
    b = load_slice(_png(gray), name="second.png", window="ct-lung")
    c = load_slice(_npy(gray.astype(np.float64)), name="third.npy")
    assert a.content_hash == b.content_hash == c.content_hash
    assert rewindow(a, "auto").content_hash == a.content_hash
    changed = gray.copy()
    changed[3, 4] += 1
    assert load_slice(_png(changed)).content_hash != a.content_hash
    flat = load_slice(_npy(gray.reshape(2, 10).astype(np.float32)))
    assert flat.content_hash != c.content_hash  # same bytes, other shape


def test_slice_arrays_are_read_only_and_equality_is_identity() -> None:
    s = load_slice(_png(np.zeros((3, 3), dtype=np.uint8)))
    with pytest.raises(ValueError):
        s.pixels[0, 0] = 1.0
    with pytest.raises(ValueError):
        s.display[0, 0, 0] = 1
    with pytest.raises(AttributeError):
        s.units = "HU"  # type: ignore[misc]
    other = load_slice(_png(np.zeros((3, 3), dtype=np.uint8)))
    assert s == s and s != other
    assert len({s, other}) == 2
    assert s.shape == (3, 3) and isinstance(s.shape[0], int)


def test_repr_is_short_and_has_no_pixel_values() -> None:
    values = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) + 0.25
    s = load_slice(_npy(values), name="dir/vol.npy")
    text = repr(s)
    assert text.startswith("Slice(shape=(64, 64), modality='OT', units='a.u.'")
    assert "array" not in text and "1000.25" not in text
    assert "source_name='case-" in text and "vol.npy" not in text and len(text) < 800


def test_slice_validates_its_arrays() -> None:
    with pytest.raises(ValueError, match="float32"):
        Slice(
            pixels=np.zeros((2, 2)),
            display=np.zeros((2, 2, 3), dtype=np.uint8),
            spacing=None,
            modality="OT",
            units="a.u.",
            window=None,
            source_format="npy",
            source_name="x",
        )
    with pytest.raises(ValueError, match="display"):
        Slice(
            pixels=np.zeros((2, 2), dtype=np.float32),
            display=np.zeros((2, 3, 3), dtype=np.uint8),
            spacing=None,
            modality="OT",
            units="a.u.",
            window=None,
            source_format="npy",
            source_name="x",
        )
    with pytest.raises(ValueError, match="finite"):
        _hand_made(np.array([[np.nan, 1.0]]))


def test_rewindow_of_a_hand_made_slice_uses_the_default_by_units() -> None:
    hu = np.array([[-160.0, 40.0, 240.0]])
    s = rewindow(_hand_made(hu), None)
    assert s.window is WINDOW_PRESETS["ct-abdomen"]
    assert s.display[:, :, 0].tolist() == [[0, 128, 255]]
    arbitrary = rewindow(_hand_made(hu, units="a.u."), None)
    assert arbitrary.window is not None and arbitrary.window.name == "auto"
    custom = rewindow(_hand_made(hu), Window(0, 100))
    np.testing.assert_array_equal(custom.display[:, :, 2], apply_window(hu, Window(0, 100)))
    assert custom.default_window is None and custom.spacing == (1.0, 1.0)
