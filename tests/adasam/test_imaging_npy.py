"""NumPy .npy ingestion: 2D, RGB, volumes, no pickle, header-first limits."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from adasam.errors import IngestError
from adasam.imaging import load_slice, volume_depth


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_2d_float_array_keeps_its_values(tmp_path: Path) -> None:
    values = np.linspace(-3.0, 9.0, 35).reshape(5, 7)
    path = tmp_path / "slice.npy"
    np.save(path, values)
    for source in (path, path.read_bytes()):
        s = load_slice(source)
        assert s.source_format == "npy"
        np.testing.assert_array_equal(s.pixels, values.astype(np.float32))
        assert (s.modality, s.units, s.spacing) == ("OT", "a.u.", None)
        assert s.window is not None and s.window.name == "auto"
    assert volume_depth(path) is None


def test_uint8_arrays_are_display_images() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    s = load_slice(_npy(gray))
    assert s.window is None
    np.testing.assert_array_equal(s.display[:, :, 1], gray)
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = [[255, 0], [51, 255]]
    s = load_slice(_npy(rgba))
    assert s.display[:, :, 0].tolist() == [[200, 0], [40, 200]]
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    assert load_slice(_npy(rgb)).display[0, 0].tolist() == [255, 0, 0]
    assert volume_depth(_npy(rgb)) is None


def test_fortran_order_is_respected() -> None:
    values = np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4))
    s = load_slice(_npy(values))
    np.testing.assert_array_equal(s.pixels, values.astype(np.float32))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_3d_volume_slices_along_the_axis_as_stored(axis: int, tmp_path: Path) -> None:
    volume = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    path = tmp_path / "volume.npy"
    np.save(path, volume)
    assert volume_depth(path, axis=axis) == volume.shape[axis]
    s = load_slice(path, axis=axis)
    mid = volume.shape[axis] // 2
    np.testing.assert_array_equal(s.pixels, np.take(volume, mid, axis=axis).astype(np.float32))
    assert (s.slice_index, s.axis, s.num_slices) == (mid, axis, volume.shape[axis])
    with pytest.raises(IngestError, match=f"no slice {volume.shape[axis]}"):
        load_slice(path, axis=axis, slice_index=volume.shape[axis])


def test_pickled_object_arrays_are_refused() -> None:
    data = _npy(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(IngestError, match="Python objects, which are refused for safety"):
        load_slice(data)
    with pytest.raises(IngestError, match="Python objects"):
        volume_depth(data)


def test_unsupported_npy_contents_are_refused() -> None:
    with pytest.raises(IngestError, match="complex64 values"):
        load_slice(_npy(np.zeros((3, 3), dtype=np.complex64)))
    with pytest.raises(IngestError, match=r"4 dimensions \(2 × 2 × 2 × 2\)"):
        load_slice(_npy(np.zeros((2, 2, 2, 2))))
    with pytest.raises(IngestError, match=r"has 1 dimension \(5\)"):
        load_slice(_npy(np.zeros(5)))
    with pytest.raises(IngestError, match="The image is empty"):
        load_slice(_npy(np.zeros((0, 4))))
    with pytest.raises(IngestError, match="The volume is empty"):
        load_slice(_npy(np.zeros((2, 3, 0))))


def test_truncated_npy_is_refused(tmp_path: Path) -> None:
    data = _npy(np.zeros((50, 50)))
    with pytest.raises(IngestError, match="This NumPy file is incomplete"):
        load_slice(data[:-8])
    path = tmp_path / "cut.npy"
    path.write_bytes(data[:-8])
    with pytest.raises(IngestError, match="This NumPy file is incomplete"):
        load_slice(path)
    with pytest.raises(IngestError, match="NumPy .npy file is damaged"):
        load_slice(data[:20])


def test_npy_limits_come_from_the_header() -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (20000, 20000)}
    )
    data = header.getvalue()
    with pytest.raises(IngestError, match=r"20000 × 20000 pixels \(400 MP\); the limit is 25 MP"):
        load_slice(data)


def test_non_finite_values_in_npy() -> None:
    values = np.array([[1.0, np.nan], [np.inf, 4.0]])
    s = load_slice(_npy(values))
    assert s.pixels.tolist() == [[1.0, 1.0], [4.0, 4.0]]
    assert s.metadata["NonFinitePixelsReplaced"] == 2
    huge = np.array([[1.0, 1e300]])  # beyond float32: becomes +inf, then the maximum
    assert load_slice(_npy(huge)).pixels.tolist() == [[1.0, 1.0]]
    with pytest.raises(IngestError, match="all 4 pixels are NaN"):
        load_slice(_npy(np.full((2, 2), np.nan)))
