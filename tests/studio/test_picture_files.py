"""PNG files for ``gr.Image``: named by content, written once and whole, never rewritten."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.picture_files import png_file


def _picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def test_the_file_holds_the_picture(tmp_path: Path) -> None:
    path = png_file(_picture(0), tmp_path / "views")
    np.testing.assert_array_equal(np.asarray(Image.open(path)), _picture(0))
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left


def test_the_same_picture_is_not_written_again(tmp_path: Path) -> None:
    first = png_file(_picture(1), tmp_path)
    first.write_bytes(b"marker")  # a rewrite would put the PNG back
    again = png_file(_picture(1), tmp_path)
    assert again == first
    assert again.read_bytes() == b"marker"


def test_another_picture_gets_another_file(tmp_path: Path) -> None:
    a, b = png_file(_picture(2), tmp_path), png_file(_picture(3), tmp_path)
    assert a != b and a.read_bytes() != b.read_bytes()


def test_the_correction_canvas_is_a_file_written_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Annotate tab's canvas goes to the page as a content-named file: an unchanged canvas
    (a refused click, a box's first corner) is the same file, never rewritten in place."""
    import studio.picture_files as picture_files
    from studio import views
    from studio.screens import canvas_picture

    monkeypatch.setattr(picture_files, "gradio_upload_root", lambda: tmp_path)
    display = np.zeros((40, 60, 3), np.uint8)
    display[10:20, 5:30] = 200
    first = canvas_picture(None, display)
    assert Path(first).parent == tmp_path / "canvas-views"
    expected = views.upscale(views.correction_view(None, display))
    assert np.array_equal(np.asarray(Image.open(first)), expected)
    marker = Path(first).stat().st_mtime_ns
    again = canvas_picture(None, display)
    assert again == first and Path(first).stat().st_mtime_ns == marker
