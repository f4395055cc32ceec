from __future__ import annotations

import numpy as np
import pytest

from studio.editor import (
    ADD_RGB,
    ALPHA_THRESHOLD,
    REMOVE_RGB,
    apply_strokes,
    editor_value,
)
from studio.errors import StudioError


def _layer(h: int, w: int) -> np.ndarray:
    return np.zeros((h, w, 4), np.uint8)


def test_editor_value_is_the_tinted_slice_as_an_opaque_background() -> None:
    display = np.full((20, 30, 3), 100, np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:10, 5:10] = True
    value = editor_value(display, mask)
    bg = value["background"]
    assert bg.shape == (20, 30, 4) and bg.dtype == np.uint8 and (bg[..., 3] == 255).all()
    assert value["layers"] == []
    assert not np.array_equal(bg[7, 7, :3], display[7, 7]), "the mask is tinted"
    assert np.array_equal(bg[0, 0, :3], display[0, 0]), "outside the mask the slice is unchanged"


def test_blue_strokes_add_red_strokes_remove_and_faint_pixels_are_ignored() -> None:
    mask = np.zeros((10, 10), bool)
    mask[2:6, 2:6] = True
    layer = _layer(10, 10)
    layer[8, 0:3] = (*ADD_RGB, 153)  # add
    layer[3, 3] = (*REMOVE_RGB, 153)  # remove
    layer[0, 9] = (*ADD_RGB, ALPHA_THRESHOLD - 1)  # anti-aliased fringe: ignored
    out = apply_strokes(mask, {"background": None, "layers": [layer], "composite": None})
    assert out.dtype == bool and out.shape == (10, 10)
    expected = mask.copy()
    expected[8, 0:3] = True
    expected[3, 3] = False
    assert np.array_equal(out, expected)
    assert mask[3, 3], "the input mask is not modified"


def test_a_layer_at_another_size_is_mapped_back_to_the_slice_shape() -> None:
    mask = np.zeros((10, 20), bool)
    layer = _layer(20, 40)  # the editor returned the layer at twice the size
    layer[0:10, 0:20] = (*ADD_RGB, 255)  # top-left quarter of the picture
    out = apply_strokes(mask, {"layers": [layer]})
    assert out.shape == (10, 20)
    assert out[0:5, 0:10].all() and not out[5:, :].any() and not out[:, 10:].any()


def test_no_editor_value_means_no_stroke() -> None:
    mask = np.eye(5, dtype=bool)
    for value in (None, {}, {"layers": []}, {"layers": [None]}):
        out = apply_strokes(mask, value)
        assert np.array_equal(out, mask) and out is not mask


def test_a_layer_without_alpha_is_refused_in_plain_words() -> None:
    with pytest.raises(StudioError, match="transparency"):
        apply_strokes(np.zeros((4, 4), bool), {"layers": [np.zeros((4, 4, 3), np.uint8)]})
