from __future__ import annotations

from pathlib import Path

import numpy as np

from adasam.imaging import load_slice, rewindow
from storage import ensure_annotator, get_slice, next_case, stats
from studio.batch import import_files
from studio.services import Services
from studio.stored_slices import slice_from_record
from tests.studio.conftest import CT_SMALL, EXAMPLES, THIGH_PNG


def test_a_folder_becomes_worklist_cases_and_bad_files_are_reported(
    services: Services, tmp_path: Path
) -> None:
    text = tmp_path / "notes.png"
    text.write_text("this is a text file, not an image")
    paths = [CT_SMALL, THIGH_PNG, text]
    report = import_files(services.store, paths, max_pixels=services.settings.max_pixels)
    assert report.added == ("CT_small.dcm", "thigh_mri.png") and report.already == ()
    ((name, why),) = report.failed
    assert name == "notes.png" and why
    assert "2 case(s) added" in report.message() and "notes.png was not added" in report.message()
    again = import_files(services.store, paths[:2], max_pixels=services.settings.max_pixels)
    assert again.added == () and again.already == ("CT_small.dcm", "thigh_mri.png")
    assert stats(services.store).slices == 2


def test_two_annotators_get_different_cases(services: Services) -> None:
    import_files(services.store, [CT_SMALL, THIGH_PNG], max_pixels=1_000_000)
    for name in ("ann", "bob"):
        ensure_annotator(services.store, name)
    first = next_case(services.store, "ann")
    second = next_case(services.store, "bob")
    assert first is not None and second is not None
    assert first.content_hash != second.content_hash


def test_a_stored_slice_comes_back_with_the_same_pixels_and_display(services: Services) -> None:
    original = load_slice(CT_SMALL)
    import_files(services.store, [CT_SMALL], max_pixels=1_000_000)
    record = get_slice(services.store, original.content_hash)
    back = slice_from_record(services.store, record)
    assert np.array_equal(back.pixels, original.pixels)
    assert np.array_equal(back.display, original.display)
    assert back.spacing == original.spacing and back.modality == "CT"
    assert back.window == original.window
    assert np.array_equal(rewindow(back, "ct-bone").display, rewindow(original, "ct-bone").display)


def test_an_8_bit_example_keeps_its_own_display(services: Services) -> None:
    png = EXAMPLES / "liver_ct.png"
    import_files(services.store, [png], max_pixels=1_000_000)
    original = load_slice(png)
    back = slice_from_record(services.store, get_slice(services.store, original.content_hash))
    assert back.window is None and np.array_equal(back.display, original.display)
    assert np.array_equal(rewindow(back, None).display, original.display)


def test_slice_identity_is_one_hash_in_both_packages() -> None:
    """storage (no torch, no adasam) recomputes ``Slice.content_hash`` on its own: they agree."""
    from adasam.imaging import load_slice
    from storage import pixels_hash

    for name in ("CT_small.dcm", "thigh_mri.png"):
        s = load_slice(EXAMPLES / name)
        assert pixels_hash(np.asarray(s.pixels)) == s.content_hash
