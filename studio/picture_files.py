"""Pictures handed to ``gr.Image`` as PNG files written once, whole, and never again.

Given an array, Gradio 6 (``processing_utils.save_pil_to_cache``) encodes it and writes the
file ``<cache>/<hash of the bytes>/image.png`` again on every event, truncating it first,
even when the same picture is already there and the page is fetching it. An event that
returns an unchanged picture (the volume tab's two orthogonal views on every slice change, the
slice itself when the upload's slider change shows the same slice again) so rewrote a file
while the page was downloading it: the server failed mid-response ("Too much data for declared
Content-Length", in the studio log of a timed-out browser test) and the page kept a broken
picture, ``naturalWidth`` 0, on which Gradio drops clicks (its select event has no pixel).
A path is copied into Gradio's cache once, atomically (``save_file_to_cache``).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from studio.uploads import gradio_upload_root

PNG_COMPRESS_LEVEL = 1
"""zlib level of the studio's pictures: every click rewrites the correction canvas (1024² for a
256² slice) and every new slice several more; level 1 encodes the canvas in 19 ms instead of
PIL's default level 6's 28 ms, for 120 instead of 99 KiB."""


def png_bytes(picture: np.ndarray) -> bytes:
    """``picture`` (H×W or H×W×3/4 uint8) as PNG (lossless at any level)."""
    out = io.BytesIO()
    Image.fromarray(picture).save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue()


def png_file(picture: np.ndarray, folder: Path) -> Path:
    """The PNG of ``picture`` in ``folder``, named by its content: written (under a temporary
    name, then renamed into place) only when no file of that content is there yet."""
    data = png_bytes(picture)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:40]}.png"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{path.stem}.{os.getpid()}.{threading.get_ident()}.part"
    partial.write_bytes(data)
    os.replace(partial, path)
    return path


def shown_picture(picture: np.ndarray, folder: str) -> str:
    """The path to hand ``gr.Image`` for ``picture``: :func:`png_file` in ``folder`` of the
    studio's upload cache (emptied at start-up with the rest of it)."""
    return str(png_file(picture, gradio_upload_root() / folder))
