"""PNG, JPEG and TIFF decoding with Pillow.

Modes and what they become:

* 8-bit grey (``L``, ``1``) and colour (``RGB``, ``P``, ``CMYK``, ``YCbCr`` ...): an 8-bit display
  image, shown as is. Palette images become RGB.
* Images with transparency (``RGBA``, ``LA``, palette with transparency) are composited on
  black: each colour times alpha/255, so fully transparent pixels become black background.
* 16-bit grey (``I;16*``), 32-bit integer (``I``) and float (``F``): physical values in
  arbitrary units, windowed (``auto`` by default).

A multi-page TIFF is a stack: ``slice_index`` picks the page (the middle one by default).

Sizes are checked from the header before decoding (PNG: read from IHDR before Pillow opens the
file). Pillow's own decompression-bomb guard (about 179 MP) is left as it is (it is process-wide);
it also refuses, with the same message, images above it even when ``max_pixels`` is larger.
"""

from __future__ import annotations

import re
import struct
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from adasam.errors import IngestError
from adasam.imaging.decoded import (
    Decoded,
    check_plane,
    check_single,
    check_volume,
    choose_index,
    composite_on_black,
    format_pixels,
    luminance,
)
from adasam.imaging.sniff import SUPPORTED_HINT, Source

_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF"}
_LABEL = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF"}
_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I", "F", "I;32", "F;32")
_BOMB = re.compile(r"\((\d+) pixels\)")


def _png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, read before Pillow sees the file."""
    if len(head) >= 24 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    return None


def _damaged(fmt: str, detail: str = "") -> IngestError:
    return IngestError(
        f"The {_LABEL[fmt]} file is damaged and could not be decoded{detail}. "
        f"Export it again. {SUPPORTED_HINT}"
    )


def _open(src: Source, fmt: str, max_pixels: int) -> tuple[Image.Image, BinaryIO]:
    if fmt == "png":
        size = _png_size(src.head)
        if size is not None:
            check_plane(size[1], size[0], max_pixels)
    fh = src.open()
    try:
        image = Image.open(fh, formats=[_PIL_FORMAT[fmt]])
    except Image.DecompressionBombError as exc:
        fh.close()
        match = _BOMB.search(str(exc))
        size_text = f" ({format_pixels(int(match.group(1)))})" if match else ""
        raise IngestError(
            f"The image is too large{size_text}; the limit is {format_pixels(max_pixels)}. "
            "Downsample it or crop it first."
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as exc:
        fh.close()
        raise _damaged(fmt, " (its header is not valid)") from exc
    return image, fh


def _pixels_of(image: Image.Image, fmt: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(values float32 (H, W), rgb uint8 (H, W, 3) or None, bit-depth label)."""
    mode = image.mode
    if mode in _HIGH_BIT_MODES:
        array = np.asarray(image)
        if array.ndim != 2:
            raise _damaged(fmt, f" (unexpected {mode} layout)")
        depth = "16" if mode.startswith("I;16") else "32"
        return array.astype(np.float32), None, depth
    if mode == "1":
        image = image.convert("L")
        mode = "L"
    if mode == "L":
        gray = np.asarray(image, dtype=np.uint8)
        rgb = np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
        return gray.astype(np.float32), rgb, "8"
    if mode == "P":
        has_alpha = "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
    if mode in ("LA", "La", "PA"):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        rgb = composite_on_black(np.asarray(image.convert("RGBA"), dtype=np.uint8))
    else:
        rgb = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
    if bool((rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all()):
        return rgb[:, :, 0].astype(np.float32), rgb, "8"
    return luminance(rgb), rgb, "8"


def decode_raster(src: Source, fmt: str, *, slice_index: int | None, max_pixels: int) -> Decoded:
    """Decode a PNG, JPEG or TIFF.

    Returns:
        :class:`Decoded` with ``values`` float32 (H, W) and, for 8-bit inputs, ``rgb``.

    Raises:
        IngestError: damaged, truncated, zero-sized or too large, page out of range.
    """
    image, fh = _open(src, fmt, max_pixels)
    try:
        width, height = image.size
        check_plane(height, width, max_pixels)
        frames = int(getattr(image, "n_frames", 1) or 1) if fmt == "tiff" else 1
        index: int | None = None
        if frames > 1:
            check_volume((frames, height, width), max_pixels, what="image stack")
            index = choose_index(slice_index, frames, what="page")
            image.seek(index)
            width, height = image.size
            check_plane(height, width, max_pixels)
        else:
            check_single(slice_index)
        try:
            image.load()
        except OSError as exc:
            if "truncated" in str(exc).lower():
                raise IngestError(
                    f"The {_LABEL[fmt]} file is incomplete: it ends before the image does "
                    "(the upload or export was cut short). Export it again."
                ) from exc
            raise _damaged(fmt) from exc
        except (SyntaxError, ValueError, struct.error, EOFError, IndexError) as exc:
            raise _damaged(fmt) from exc
        mode = image.mode
        try:
            values, rgb, depth = _pixels_of(image, fmt)
        except IngestError:
            raise
        except (OSError, ValueError, SyntaxError) as exc:
            raise _damaged(fmt) from exc
    finally:
        image.close()
        fh.close()
    metadata: dict[str, str | int | float] = {
        "Format": _LABEL[fmt],
        "Mode": mode,
        "BitsPerSample": int(depth),
        "Rows": int(values.shape[0]),
        "Columns": int(values.shape[1]),
    }
    if frames > 1:
        metadata["NumberOfFrames"] = frames
    return Decoded(
        values=values,
        source_format=fmt,
        rgb=rgb,
        metadata=metadata,
        slice_index=index,
        num_slices=frames if frames > 1 else None,
    )


def raster_depth(src: Source, fmt: str) -> int | None:
    """Number of pages of a multi-page TIFF, None for a single image (reads headers only)."""
    if fmt != "tiff":
        return None
    image, fh = _open(src, fmt, max_pixels=2**62)
    try:
        frames = int(getattr(image, "n_frames", 1) or 1)
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise _damaged(fmt) from exc
    finally:
        image.close()
        fh.close()
    return frames if frames > 1 else None
