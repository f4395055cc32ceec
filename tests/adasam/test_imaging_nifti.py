"""NIfTI ingestion: RAS reorientation, display orientation, spacing, limits and bad volumes."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from adasam.errors import IngestError
from adasam.imaging import WINDOW_PRESETS, load_slice, volume_depth

SHAPE = (4, 5, 6)
# stored axis 0 → +A (1.5 mm), axis 1 → -S (3 mm), axis 2 → -R (2.5 mm): far from canonical
PERMUTED = np.array(
    [[0.0, 0.0, -2.5, 10.0], [1.5, 0.0, 0.0, -5.0], [0.0, -3.0, 0.0, 7.0], [0.0, 0.0, 0.0, 1.0]]
)
LPS = np.diag([-0.8, -0.9, 2.0, 1.0])
RAS = np.diag([0.8, 0.9, 2.0, 1.0])


def _volume(shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """Every voxel different, so any wrong flip or transpose shows."""
    return np.arange(int(np.prod(shape)), dtype=np.int16).reshape(shape)


def _nifti(data: np.ndarray, affine: np.ndarray = RAS, **header: object) -> bytes:
    image = nib.Nifti1Image(data, affine)
    for key, value in header.items():
        image.header[key] = value
    return image.to_bytes()


def _display(canonical: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The documented convention: the RAS slice (remaining axes ascending), ``.T[::-1, ::-1]``."""
    return np.take(canonical, index, axis=axis).T[::-1, ::-1]


@pytest.mark.parametrize("affine", [RAS, LPS, PERMUTED], ids=["ras", "lps", "permuted"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slices_equal_those_of_as_closest_canonical(affine: np.ndarray, axis: int) -> None:
    data = _volume()
    image = nib.Nifti1Image(data, affine)
    canonical = nib.as_closest_canonical(image)
    canon_data = np.asarray(canonical.dataobj)
    zooms = canonical.header.get_zooms()
    rows_axis, cols_axis = [a for a in (0, 1, 2) if a != axis][::-1]
    blob = image.to_bytes()
    depth = canon_data.shape[axis]
    assert volume_depth(blob, axis=axis) == depth
    for index in range(depth):
        s = load_slice(blob, axis=axis, slice_index=index)
        np.testing.assert_array_equal(
            s.pixels, _display(canon_data, axis, index).astype(np.float32)
        )
        assert (s.slice_index, s.axis, s.num_slices) == (index, axis, depth)
        assert s.spacing == pytest.approx((zooms[rows_axis], zooms[cols_axis]))
    assert load_slice(blob, axis=axis).slice_index == depth // 2


def test_display_orientation_is_radiological() -> None:
    """Marker voxels placed from world coordinates (not from nibabel's reorientation)."""
    n0, n1, n2 = SHAPE
    data = np.zeros(SHAPE, dtype=np.int16)
    # world x = -2.5*k + 10 (max Right at k=0), y = 1.5*i (max Anterior at i=n0-1),
    # z = -3*j + 7 (max Superior at j=0)
    j_mid = 2
    data[n0 - 1, j_mid, 0] = 100  # anterior, patient's right
    data[0, j_mid, n2 - 1] = 200  # posterior, patient's left
    data[2, 0, 0] = 300  # superior, patient's right (coronal/sagittal checks)
    data[n0 - 1, 0, 3] = 400  # superior, anterior
    blob = _nifti(data, PERMUTED)

    axial = load_slice(blob, axis=2, slice_index=n1 - 1 - j_mid)  # counted from inferior
    assert axial.shape == (n0, n2)  # rows: A→P, columns: R→L
    assert axial.pixels[0, 0] == 100  # top-left: anterior, patient's right
    assert axial.pixels[-1, -1] == 200  # bottom-right: posterior, patient's left
    assert axial.spacing == (1.5, 2.5)

    coronal = load_slice(blob, axis=1, slice_index=2)  # A-P index 2 (from posterior)
    assert coronal.shape == (n1, n2)  # rows: S→I, columns: R→L
    assert coronal.pixels[0, 0] == 300  # top-left: superior, patient's right
    assert coronal.spacing == (3.0, 2.5)

    sagittal = load_slice(blob, axis=0, slice_index=n2 - 1 - 3)  # R-L index from the left
    assert sagittal.shape == (n1, n0)  # rows: S→I, columns: A→P
    assert sagittal.pixels[0, 0] == 400  # top-left: superior, anterior
    assert sagittal.spacing == (3.0, 1.5)


def test_nii_gz_file_with_a_misleading_name(tmp_path: Path) -> None:
    data = _volume()
    path = tmp_path / "volume.nii.gz"
    nib.save(nib.Nifti1Image(data, LPS), path)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    renamed = tmp_path / "looks-like.png"
    renamed.write_bytes(path.read_bytes())
    for source in (path, renamed, path.read_bytes()):
        s = load_slice(source, slice_index=1)
        assert s.source_format == "nifti"
        canon = np.asarray(nib.as_closest_canonical(nib.Nifti1Image(data, LPS)).dataobj)
        np.testing.assert_array_equal(s.pixels, _display(canon, 2, 1))
    assert load_slice(renamed).source_name.startswith("case-")
    assert volume_depth(path, axis=0) == 4


def test_nifti2_and_scaled_data() -> None:
    data = _volume()
    image = nib.Nifti2Image(data, RAS)
    image.header.set_slope_inter(0.5, -10.0)
    blob = image.to_bytes()
    assert blob[4:8] == b"n+2\x00"
    s = load_slice(blob, slice_index=3)
    np.testing.assert_array_equal(s.pixels, _display(data * 0.5 - 10.0, 2, 3).astype(np.float32))
    assert s.metadata["Format"] == "NIfTI-2"


def test_spacing_comes_from_the_zooms_in_mm() -> None:
    image = nib.Nifti1Image(_volume(), np.diag([0.7, 0.8, 3.0, 1.0]))
    image.header.set_xyzt_units("micron")
    s = load_slice(image.to_bytes())
    assert s.spacing == pytest.approx((0.0008, 0.0007))
    image.header.set_xyzt_units("mm")
    assert load_slice(image.to_bytes(), axis=0).spacing == (3.0, 0.8)  # not 0.800000011920929


def test_ct_like_volume_is_guessed_as_ct_and_windowed_for_the_liver() -> None:
    data = np.full(SHAPE, -1024, dtype=np.int16)
    data[1:3, 1:4, :] = 60
    s = load_slice(_nifti(data))
    assert (s.modality, s.units) == ("CT", "HU")
    assert s.window is WINDOW_PRESETS["ct-abdomen"]
    assert set(np.unique(s.display).tolist()) == {0, 140}  # 60 HU → (220/400)·255 = 140.25


def test_mr_is_guessed_from_the_description_which_is_not_kept() -> None:
    data = _volume().astype(np.float32)
    s = load_slice(_nifti(data, descrip=b"T1w MPRAGE Zebulon"))
    assert (s.modality, s.units) == ("MR", "a.u.")
    assert s.window is not None and s.window.name == "auto"
    assert "Zebulon" not in repr(s)
    plain = load_slice(_nifti(data))
    assert plain.modality == "OT"


def test_some_nan_are_replaced_by_the_minimum_and_counted() -> None:
    data = _volume().astype(np.float32) + 5
    data[:, :, 2][0, 0] = np.nan
    data[:, :, 2][1, 1] = -np.inf
    data[:, :, 2][2, 2] = np.inf
    s = load_slice(_nifti(data), slice_index=2)
    plane = data[:, :, 2]
    finite = plane[np.isfinite(plane)]
    expected = np.where(np.isnan(plane) | (plane == -np.inf), finite.min(), plane)
    expected = np.where(expected == np.inf, finite.max(), expected)
    np.testing.assert_array_equal(s.pixels, _display(expected[:, :, None], 2, 0))
    assert s.metadata["NonFinitePixelsReplaced"] == 3
    assert np.isfinite(s.pixels).all()


def test_all_nan_slice_is_refused() -> None:
    data = np.full(SHAPE, np.nan, dtype=np.float32)
    data[:, :, 0] = 1.0
    blob = _nifti(data)
    assert load_slice(blob, slice_index=0).pixels.max() == 1.0
    with pytest.raises(IngestError, match=r"all 20 pixels are NaN or infinite"):
        load_slice(blob, slice_index=1)


def test_4d_is_refused_but_a_singleton_4th_dimension_is_fine() -> None:
    with pytest.raises(IngestError, match=r"4D series \(4 × 5 × 6 × 2\)"):
        load_slice(_nifti(np.zeros((*SHAPE, 2), dtype=np.int16)))
    with pytest.raises(IngestError, match="4D series"):
        volume_depth(_nifti(np.zeros((*SHAPE, 2), dtype=np.int16)))
    data = _volume()
    s = load_slice(_nifti(data[..., None]), slice_index=4)
    np.testing.assert_array_equal(s.pixels, _display(data, 2, 4))


def test_2d_nifti_is_a_single_slice_volume() -> None:
    data = _volume((4, 5, 1))[:, :, 0]
    blob = _nifti(data)
    assert volume_depth(blob) == 1
    s = load_slice(blob)
    np.testing.assert_array_equal(s.pixels, data.T[::-1, ::-1])
    with pytest.raises(IngestError, match="There is no slice 1: this file has 1 slices"):
        load_slice(blob, slice_index=1)


def test_slice_index_and_axis_are_checked() -> None:
    blob = _nifti(_volume())
    with pytest.raises(IngestError, match="There is no slice 6: this file has 6 slices"):
        load_slice(blob, slice_index=6)
    with pytest.raises(IngestError, match="no slice 4"):
        load_slice(blob, axis=0, slice_index=4)
    with pytest.raises(IngestError, match="axis must be 0"):
        load_slice(blob, axis=3)
    with pytest.raises(IngestError, match="whole number"):
        load_slice(blob, slice_index=1.5)  # type: ignore[arg-type]


def _header_only(shape: tuple[int, ...]) -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header["vox_offset"] = 352
    return header.binaryblock + b"\x00" * 4 + b"\x01\x02" * 8


def test_over_large_volumes_are_refused_from_the_header() -> None:
    with pytest.raises(IngestError) as info:
        load_slice(_header_only((20000, 20000, 1)))
    assert str(info.value) == (
        "The image is 20000 × 20000 pixels (400 MP); the limit is 25 MP. "
        "Downsample it or crop it first."
    )
    with pytest.raises(IngestError, match=r"volume is 1000 × 1000 × 1000 \(1000 MP in all\)"):
        load_slice(_header_only((1000, 1000, 1000)))


def test_truncated_and_damaged_nifti_are_refused() -> None:
    blob = _nifti(_volume())
    with pytest.raises(IngestError, match="NIfTI file is damaged"):
        load_slice(blob[: len(blob) - 100])
    with pytest.raises(IngestError, match="NIfTI file is damaged"):
        load_slice(_header_only((64, 64, 64)))
    packed = gzip.compress(blob)
    with pytest.raises(IngestError, match="NIfTI file is damaged"):
        load_slice(packed[: len(packed) // 2])
    with pytest.raises(IngestError, match="does not hold a NIfTI volume"):
        load_slice(gzip.compress(b"just some text " * 40))
    with pytest.raises(IngestError, match="gzip-compressed file is damaged"):
        load_slice(b"\x1f\x8b" + b"\x00" * 50)


def test_header_of_a_two_file_pair_and_complex_data_are_refused() -> None:
    header = nib.Nifti1Header()
    header.set_data_shape(SHAPE)
    header["magic"] = b"ni1"
    with pytest.raises(IngestError, match=r"two-file NIfTI/Analyze pair \(.hdr \+ .img\)"):
        load_slice(header.binaryblock)
    with pytest.raises(IngestError, match="complex numbers"):
        load_slice(_nifti(np.zeros(SHAPE, dtype=np.complex64)))
