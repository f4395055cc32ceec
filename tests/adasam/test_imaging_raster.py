"""PNG / JPEG / TIFF ingestion: bit depths, colour modes, stacks, decoding by content."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adasam.errors import IngestError
from adasam.imaging import WINDOW_PRESETS, Window, auto_window, load_slice, rewindow, volume_depth


def _save(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _gradient(h: int = 6, w: int = 8) -> np.ndarray:
    return (np.arange(h * w, dtype=np.int32).reshape(h, w) * 5 % 256).astype(np.uint8)


def _rgb(h: int = 5, w: int = 7) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_8bit_grey_is_shown_as_is(fmt: str, tmp_path: Path) -> None:
    gray = _gradient()
    path = tmp_path / f"scan.{fmt.lower()}"
    path.write_bytes(_save(Image.fromarray(gray, mode="L"), fmt))
    s = load_slice(path)
    assert s.source_format == fmt.lower()
    assert s.window is None and s.default_window is None
    assert s.pixels.dtype == np.float32 and s.pixels.shape == (6, 8)
    np.testing.assert_array_equal(s.pixels, gray.astype(np.float32))
    assert s.display.dtype == np.uint8 and s.display.shape == (6, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(s.display[:, :, c], gray)
    assert (s.modality, s.units, s.spacing) == ("OT", "a.u.", None)
    assert (s.slice_index, s.axis, s.num_slices) == (None, None, None)
    assert s.metadata["BitsPerSample"] == 8
    assert s.source_name == f"case-{s.content_hash[:12]}"


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_8bit_rgb_keeps_its_colours(fmt: str) -> None:
    rgb = _rgb()
    s = load_slice(_save(Image.fromarray(rgb, mode="RGB"), fmt), name="photo")
    np.testing.assert_array_equal(s.display, rgb)
    expected = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    np.testing.assert_allclose(s.pixels, expected, rtol=1e-6)
    assert s.window is None


def test_jpeg_grey_and_colour_decode_like_pillow() -> None:
    gray = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (16, 1))
    data = _save(Image.fromarray(gray, mode="L"), "JPEG", quality=95)
    s = load_slice(data, name="x.jpg")
    reference = np.asarray(Image.open(io.BytesIO(data)))
    assert s.source_format == "jpeg"
    np.testing.assert_array_equal(s.display[:, :, 0], reference)
    np.testing.assert_array_equal(s.pixels, reference.astype(np.float32))

    colour = np.zeros((16, 16, 3), dtype=np.uint8)
    colour[:, :8] = (200, 30, 30)
    colour[:, 8:] = (20, 40, 220)
    data = _save(Image.fromarray(colour, mode="RGB"), "JPEG", quality=95)
    s = load_slice(data)
    np.testing.assert_array_equal(
        s.display, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    )
    assert s.display[8, 2, 0] > 150 and s.display[8, 12, 2] > 150  # red left, blue right


def test_rgba_is_composited_on_black() -> None:
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[0, :, 3] = [255, 0, 128]
    rgba[1, :, 3] = [51, 255, 0]
    s = load_slice(_save(Image.fromarray(rgba, mode="RGBA"), "PNG"))
    expected = np.array(
        [
            [[200, 100, 50], [0, 0, 0], [100, 50, 25]],
            [[40, 20, 10], [200, 100, 50], [0, 0, 0]],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(s.display, expected)
    assert s.window is None


def test_grey_with_alpha_is_composited_on_black() -> None:
    image = Image.fromarray(np.array([[200, 200]], dtype=np.uint8), mode="L").convert("LA")
    image.putalpha(Image.fromarray(np.array([[255, 0]], dtype=np.uint8), mode="L"))
    s = load_slice(_save(image, "PNG"))
    assert s.display[0].tolist() == [[200, 200, 200], [0, 0, 0]]


def test_palette_becomes_rgb() -> None:
    indices = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    s = load_slice(_save(image, "PNG"))
    assert s.display.tolist() == [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [0, 255, 0]]]
    assert s.pixels[0, 0] == pytest.approx(0.299 * 255)


def test_palette_with_transparency_is_composited() -> None:
    image = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), mode="P")
    image.putpalette([255, 255, 255, 10, 20, 30] + [0] * (256 * 3 - 6))
    image.info["transparency"] = 0
    s = load_slice(_save(image, "PNG", transparency=0))
    assert s.display.tolist() == [[[0, 0, 0], [10, 20, 30]]]


def test_bilevel_image_becomes_0_and_255() -> None:
    image = Image.fromarray(np.array([[0, 255, 0]], dtype=np.uint8), mode="L").convert("1")
    s = load_slice(_save(image, "PNG"))
    assert s.pixels.tolist() == [[0.0, 255.0, 0.0]]
    assert s.window is None


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_grey_keeps_values_and_uses_the_auto_window(fmt: str) -> None:
    values = (np.arange(40 * 50, dtype=np.uint32).reshape(40, 50) * 30).astype(np.uint16)
    data = _save(Image.fromarray(values), fmt)
    s = load_slice(data)
    np.testing.assert_array_equal(s.pixels, values.astype(np.float32))
    assert s.metadata["BitsPerSample"] == 16
    assert s.window == auto_window(values.astype(np.float32))
    assert s.window is not None and s.window.name == "auto"
    assert s.default_window == s.window
    lo, hi = np.percentile(values.astype(np.float32), [0.5, 99.5])
    assert s.display[0, 0, 0] == 0 and s.display[-1, -1, 0] == 255
    mid = np.unravel_index(np.argmin(np.abs(values - (lo + hi) / 2)), values.shape)
    assert abs(int(s.display[mid][0]) - 128) <= 1


def test_float_tiff_is_read_as_values() -> None:
    values = np.linspace(-5.5, 7.25, 12, dtype=np.float32).reshape(3, 4)
    s = load_slice(_save(Image.fromarray(values, mode="F"), "TIFF"))
    np.testing.assert_array_equal(s.pixels, values)
    assert s.window is not None and s.window.name == "auto"


def test_multi_page_tiff_is_a_stack() -> None:
    pages = [Image.fromarray(np.full((4, 5), 10 * k, dtype=np.uint8), mode="L") for k in range(5)]
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    data = buf.getvalue()
    assert volume_depth(data) == 5
    s = load_slice(data)
    assert (s.slice_index, s.num_slices, s.axis) == (2, 5, None)
    assert float(s.pixels[0, 0]) == 20.0
    assert float(load_slice(data, slice_index=4).pixels[0, 0]) == 40.0
    with pytest.raises(IngestError, match="no page 5: this file has 5 pages"):
        load_slice(data, slice_index=5)


def test_format_is_found_by_content_not_by_extension(tmp_path: Path) -> None:
    gray = _gradient()
    png_named_jpg = tmp_path / "scan.jpg"
    png_named_jpg.write_bytes(_save(Image.fromarray(gray, mode="L"), "PNG"))
    assert load_slice(png_named_jpg).source_format == "png"
    tiff_named_dcm = tmp_path / "image.dcm"
    tiff_named_dcm.write_bytes(_save(Image.fromarray(gray, mode="L"), "TIFF"))
    assert load_slice(tiff_named_dcm).source_format == "tiff"
    no_extension = tmp_path / "upload"
    no_extension.write_bytes(_save(Image.fromarray(gray, mode="L"), "JPEG"))
    assert load_slice(no_extension).source_format == "jpeg"


def test_explicit_window_on_an_8bit_image_applies_to_its_values() -> None:
    rgb = np.array([[[0, 100, 255], [50, 150, 200]]], dtype=np.uint8)
    data = _save(Image.fromarray(rgb, mode="RGB"), "PNG")
    s = load_slice(data, window=Window(100, 100, "narrow"))  # 50..150
    assert s.window == Window(100, 100, "narrow")
    assert s.display.tolist() == [[[0, 128, 255], [0, 255, 255]]]
    np.testing.assert_array_equal(s.default_display, rgb)
    # back to the image itself, and to another window, from the windowed slice
    back = rewindow(s, None)
    assert back.window is None
    np.testing.assert_array_equal(back.display, rgb)
    again = rewindow(s, "ct-abdomen")  # -160..240 on the 0..255 values
    expected = np.rint(np.clip((rgb.astype(np.float32) + 160) / 400, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(again.display, expected)
    assert again.window is WINDOW_PRESETS["ct-abdomen"]


def test_over_large_png_is_refused_from_its_header() -> None:
    header = _save(Image.fromarray(np.zeros((1, 1), dtype=np.uint8), mode="L"), "PNG")
    # rewrite the IHDR width/height to 20000 x 20000 (CRC no longer matches: nothing is decoded)
    data = header[:16] + (20000).to_bytes(4, "big") * 2 + header[24:]
    with pytest.raises(IngestError) as info:
        load_slice(data)
    assert str(info.value) == (
        "The image is 20000 × 20000 pixels (400 MP); the limit is 25 MP. "
        "Downsample it or crop it first."
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_max_pixels_is_checked_before_decoding(fmt: str) -> None:
    data = _save(Image.fromarray(np.zeros((30, 40), dtype=np.uint8), mode="L"), fmt)
    with pytest.raises(IngestError, match=r"40 × 30 pixels \(1,200 pixels\); the limit is 1,000"):
        load_slice(data, max_pixels=1000)
    assert load_slice(data, max_pixels=1200).shape == (30, 40)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_truncated_images_are_refused(fmt: str) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = _save(Image.fromarray(noise, mode="RGB"), fmt)
    with pytest.raises(IngestError, match=f"The {fmt} file is incomplete"):
        load_slice(data[: len(data) // 2])
    with pytest.raises(IngestError, match=f"The {fmt} file is damaged"):
        load_slice(data[:20])


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the corrupt EXIF
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_corrupt_images_are_refused(fmt: str) -> None:
    data = bytearray(_save(Image.fromarray(_rgb(32, 32), mode="RGB"), fmt))
    magic = {"PNG": 8, "JPEG": 3, "TIFF": 4}[fmt]
    for k in range(magic, len(data)):
        data[k] = (data[k] * 7 + 13) % 256
    with pytest.raises(IngestError, match=f"The {fmt} file is damaged"):
        load_slice(bytes(data))


def test_single_image_has_only_slice_zero() -> None:
    data = _save(Image.fromarray(_gradient(), mode="L"), "PNG")
    assert load_slice(data, slice_index=0).slice_index is None
    assert volume_depth(data) is None
    with pytest.raises(IngestError, match="single 2D image, so there is no slice 3"):
        load_slice(data, slice_index=3)
