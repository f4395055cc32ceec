"""NumPy ``.npy`` arrays, loaded without pickle.

* 2D (H, W): one image. uint8 is an 8-bit display image; other real dtypes are values in
  arbitrary units (windowed, ``auto`` by default).
* 3D uint8 (H, W, 3) or (H, W, 4): an RGB(A) display image (alpha composited on black).
* Any other 3D array: a volume; ``axis`` (default 2) and ``slice_index`` (default the middle)
  pick ``np.take(array, slice_index, axis)``, shown as stored (no reorientation: a bare array has
  no orientation).

The header is parsed first (shape, dtype); object arrays are refused (``allow_pickle=False``),
limits are checked, and only the chosen slice is copied out of the file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adasam.errors import IngestError
from adasam.imaging.decoded import (
    Decoded,
    check_plane,
    check_single,
    check_volume,
    choose_index,
    composite_on_black,
    luminance,
)
from adasam.imaging.sniff import Source


def _damaged(detail: str = "") -> IngestError:
    return IngestError(f"This NumPy .npy file is damaged and could not be read{detail}.")


def read_npy_header(src: Source) -> tuple[tuple[int, ...], bool, np.dtype[Any], int]:
    """(shape, fortran_order, dtype, data offset) from the .npy header, without loading data.

    Raises:
        IngestError: damaged header, object (pickled) or unsupported dtype.
    """
    try:
        with src.open() as fh:
            major, _minor = np.lib.format.read_magic(fh)
            if major == 1:
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif major in (2, 3):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise _damaged(f" (unknown format version {major})")
            offset = fh.tell()
    except IngestError:
        raise
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, KeyError) as exc:
        if "allow_pickle" in str(exc) or "object" in str(exc).lower():
            raise _object_error() from exc
        raise _damaged(" (its header is not valid)") from exc
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise _object_error()
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise IngestError(
            f"This NumPy array holds {dtype} values, which the studio cannot display. Save a "
            "real-valued (integer or float) array."
        )
    return tuple(int(s) for s in shape), bool(fortran), dtype, offset


def _object_error() -> IngestError:
    return IngestError(
        "This NumPy file holds Python objects, which are refused for safety (they could run "
        "code when loaded). Save a plain numeric array with numpy.save."
    )


def _layout(shape: tuple[int, ...], dtype: np.dtype[Any]) -> str:
    if len(shape) == 2:
        return "image"
    if len(shape) == 3 and shape[2] in (3, 4) and dtype == np.uint8:
        return "rgb"
    if len(shape) == 3:
        return "volume"
    dims = " × ".join(map(str, shape)) or "a scalar"
    plural = "s" if len(shape) != 1 else ""
    raise IngestError(
        f"This NumPy array has {len(shape)} dimension{plural} ({dims}); the studio reads 2D "
        "images (H × W), RGB images (H × W × 3) or 3D volumes."
    )


def _array(
    src: Source, shape: tuple[int, ...], fortran: bool, dtype: np.dtype[Any], offset: int
) -> np.ndarray:
    count = int(np.prod(shape, dtype=np.int64))
    needed = offset + count * dtype.itemsize
    if src.size < needed:
        raise IngestError(
            f"This NumPy file is incomplete: it holds {src.size:,} bytes but its header announces "
            f"{needed:,} (the upload or save was cut short)."
        )
    order = "F" if fortran else "C"
    if src.path is not None:
        return np.memmap(src.path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
    assert src.data is not None
    flat = np.frombuffer(src.data, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order=order)


def decode_npy(src: Source, *, slice_index: int | None, axis: int, max_pixels: int) -> Decoded:
    """Decode a .npy array (see the module docstring for 2D / RGB / volume)."""
    shape, fortran, dtype, offset = read_npy_header(src)
    layout = _layout(shape, dtype)
    metadata: dict[str, str | int | float] = {
        "Format": "NumPy",
        "Dimensions": "x".join(str(s) for s in shape),
        "DataType": str(dtype),
    }
    if layout == "volume":
        plane_shape = [s for k, s in enumerate(shape) if k != axis]
        check_plane(plane_shape[0], plane_shape[1], max_pixels)
        check_volume(shape, max_pixels)
        index: int | None = choose_index(slice_index, shape[axis])
    else:
        check_plane(shape[0], shape[1], max_pixels)
        check_single(slice_index)
        index = None
    array = _array(src, shape, fortran, dtype, offset)
    with np.errstate(over="ignore", invalid="ignore"):
        if layout == "volume":
            values = np.array(np.take(array, index, axis=axis), dtype=np.float32)
            return Decoded(
                values=values,
                source_format="npy",
                metadata=metadata,
                slice_index=index,
                axis=axis,
                num_slices=shape[axis],
            )
        if layout == "rgb":
            pixels = np.array(array, dtype=np.uint8)
            rgb = composite_on_black(pixels) if shape[2] == 4 else np.ascontiguousarray(pixels)
            return Decoded(values=luminance(rgb), source_format="npy", rgb=rgb, metadata=metadata)
        if dtype == np.uint8:
            gray = np.array(array, dtype=np.uint8)
            rgb = np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
            return Decoded(
                values=gray.astype(np.float32), source_format="npy", rgb=rgb, metadata=metadata
            )
        values = np.array(array, dtype=np.float32)
        return Decoded(values=values, source_format="npy", metadata=metadata)


def npy_depth(src: Source, axis: int) -> int | None:
    """Slices along ``axis`` for a 3D volume, None for 2D and RGB images (header only)."""
    shape, _fortran, dtype, _offset = read_npy_header(src)
    return shape[axis] if _layout(shape, dtype) == "volume" else None
