"""The volume tab's handlers without a browser: open, segment, accept, propagate, correct, save,
export (files read back), errors."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pytest

import storage
from adasam.phantoms import generate_volume, volume_to_dicom_series
from adasam.propagate import PropagationConfig
from studio.errors import StudioError
from studio.volume_handlers import (
    VolumeHandlers,
    canvas_views,
    slice_index,
    status_text,
    views,
)

PHI = {"PatientName": "Doe^Jane", "PatientID": "MRN-884421", "InstitutionName": "St Example"}
LOOSE = PropagationConfig(min_score=0.0, min_area=1, max_growth=1e6, batch_size=4)


def write_series(folder: Path, depth: int = 6, size: int = 64) -> list[Path]:
    """A liver-CT phantom volume as a DICOM series with PHI in every header."""
    vol = generate_volume("liver-ct", 41, 0, depth=depth, size=size, z_range=(0.1, 0.5))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, data in enumerate(volume_to_dicom_series(vol.image, vol.spacing, "CT", extra=PHI)):
        path = folder / f"slice{k:03d}.dcm"
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_whole_flow_and_files_read_back(services, tmp_path: Path) -> None:
    h = VolumeHandlers(services)
    paths = write_series(tmp_path / "in")
    key = services.catalog.default().key
    session = h.open([str(p) for p in paths], key, "liver")
    assert session.volume.shape == (6, 64, 64)
    mid = 3
    with pytest.raises(StudioError, match="no mask to accept"):
        h.accept(session, mid)
    h.segment(session, mid)
    assert session.annotation.status[mid] == "propagated"
    h.accept(session, mid)
    report = h.propagate(session, mid, LOOSE)
    assert report.propagated == [0, 1, 2, 4, 5]
    h.click(session, 1, 30.0, 30.0, True)
    h.clear(session, 5)
    assert session.annotation.status == [
        "propagated",
        "corrected",
        "propagated",
        "accepted",
        "propagated",
        "corrected",
    ]
    axial, coronal, sagittal = views(session, 2, None)
    assert axial.shape == (64, 64, 3) and coronal.shape[1] == 64 and sagittal.ndim == 3
    assert "Slice 3 of 6: propagated" in status_text(session, 2)  # 1-based, as on the page
    assert slice_index(3) == 2

    case_id = h.save(session, "dr.vol")
    labels, status = storage.label_volume(services.store, case_id)
    np.testing.assert_array_equal(labels, session.annotation.masks)
    assert status == session.annotation.status
    feed = storage.training_examples_since(services.store, None)
    assert len(feed) == 3  # accepted 3, corrected 1 and 5; never a propagated slice

    nifti, seg = h.export(session)
    data = np.asarray(nib.load(nifti).dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(data.astype(bool), session.annotation.masks)
    read = hd.seg.segread(seg)
    ref = session.volume.reference
    for k, item in enumerate(ref.slices):
        px = read.get_pixels_by_source_instance(
            source_sop_instance_uids=[item.sop_instance_uid], segment_numbers=[1]
        )[0, ..., 0]
        np.testing.assert_array_equal(px.astype(bool), session.annotation.masks[k])
    for folder in (services.settings.data_dir, nifti.parent):
        for f in folder.rglob("*"):
            if f.is_file():
                raw = f.read_bytes()
                assert b"Doe" not in raw and b"884421" not in raw and b"Example" not in raw


def test_the_slice_is_shown_upscaled_and_clicks_map_back_to_slice_pixels(
    services, tmp_path: Path
) -> None:
    h = VolumeHandlers(services)
    session = h.open(
        [str(p) for p in write_series(tmp_path / "in")], services.catalog.default().key, "liver"
    )
    axial, coronal, sagittal = canvas_views(session, 3, None)
    small = views(session, 3, None)
    assert axial.shape == (1024, 1024, 3), "a 64² slice is sent 16x, like the Annotate canvas"
    np.testing.assert_array_equal(axial[::16, ::16], small[0])
    assert coronal.shape[1] > 64 and sagittal.shape[1] > 64
    h.segment(session, 3)
    assert h.click_canvas(session, 3, [16 * 30 + 15, 16 * 41], True) == (30, 41)
    click = session.clicks[3][-1]
    assert (click.x, click.y, click.positive) == (30.0, 41.0, True)
    assert session.annotation.status[3] == "corrected"
    with pytest.raises(StudioError, match="Click on the slice"):
        h.click_canvas(session, 3, None, True)


def test_errors_say_what_to_do(services, tmp_path: Path) -> None:
    h = VolumeHandlers(services)
    key = services.catalog.default().key
    with pytest.raises(StudioError, match="Choose the files"):
        h.open([], key, "liver")
    with pytest.raises(StudioError, match="not spleen"):
        h.open([str(p) for p in write_series(tmp_path / "a")], key, "spleen")
    paths = write_series(tmp_path / "b")
    with pytest.raises(Exception, match="gap"):
        h.open([str(p) for p in paths[:2] + paths[3:]], key, "liver")
    session = h.open([str(p) for p in paths], key, "liver")
    with pytest.raises(StudioError, match="Slice 3 is .*accept or correct it"):  # 1-based
        h.propagate(session, 2, LOOSE)
    h.clear(session, 2)
    with pytest.raises(StudioError, match="Slice 3 has an empty mask"):
        h.propagate(session, 2, LOOSE)
    assert h.stop(session) is False


def test_large_slices_are_drawn_bounded_and_clicks_map_back(
    services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bounds shrunk to 32 px (axial) and 16 px (planes), and no upscaling, so a 64 px
    phantom is 'large'."""
    from studio.volume_handlers import STATUS_COLOURS, canvas_views

    h = VolumeHandlers(services)
    key = services.catalog.default().key
    session = h.open([str(p) for p in write_series(tmp_path / "in")], key, "liver")
    h.segment(session, 3)
    full = views(session, 3, None)
    for name, value in (
        ("studio.volume_handlers.CANVAS_MAX_SIDE", 32),
        ("studio.volume_handlers.VIEW_SIDE", 16),
        ("studio.views.CANVAS_MAX_SIDE", 32),
        ("studio.views.CANVAS_SIDE", 16),
    ):
        monkeypatch.setattr(name, value)
    axial, coronal, sagittal = canvas_views(session, 3, None)
    assert axial.shape == (32, 32, 3) and full[0].shape == (64, 64, 3)
    outline = np.all(axial == STATUS_COLOURS["propagated"], axis=-1)
    assert outline.any(), "the mask's outline is drawn on the shrunk view"
    assert coronal.shape[1] == sagittal.shape[1] == 16
    assert coronal.shape[0] == pytest.approx(full[1].shape[0] / 4, abs=1), "aspect kept"
    assert h.click_canvas(session, 3, [31, 31], True) == (63, 63)
    assert h.click_canvas(session, 3, [16, 8], False) == (33, 17)
    assert [(c.x, c.y) for c in session.clicks[3]] == [(63.0, 63.0), (33.0, 17.0)]
    assert session.annotation.masks.shape == (6, 64, 64), "the masks keep their size"
