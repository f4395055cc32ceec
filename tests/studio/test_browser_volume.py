"""Browser: a DICOM series with PHI in its headers, propagated from the middle slice, one slice
corrected, saved, exported as DICOM-SEG and NIfTI; the downloads read back with highdicom and
nibabel match the stored masks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from storage import label_volume, list_volume_cases, open_store
from tests.studio import browser_support
from tests.studio.browser_support import (
    SCREENSHOTS,
    StudioProcess,
    chromium,
    new_page,
    require_chromium,
    reveal,
    run_studio,
    shown_width,
    wait_for_new_picture,
)
from tests.studio.test_volume_handlers import write_series

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_api = pytest.importorskip("playwright.sync_api")
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def studio(
    tmp_path_factory: pytest.TempPathFactory, studio_bundle_dir: Path
) -> Iterator[StudioProcess]:
    require_chromium()
    # the studio imports torch and gradio: on a loaded 2-core machine that can take minutes
    browser_support.START_TIMEOUT_S = max(browser_support.START_TIMEOUT_S, 600.0)
    with run_studio(tmp_path_factory.mktemp("browser-volume"), studio_bundle_dir) as running:
        yield running


def _wait_status(page, text: str) -> None:
    page.wait_for_function(
        "(t) => document.querySelector('#vol-status')?.innerText.includes(t)", arg=text
    )


@contextmanager
def _kept_on_failure(page) -> Iterator[None]:
    """On any failure, the page as it was: a full-page screenshot and its text."""
    try:
        yield
    except Exception:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "failure_volume.png"), full_page=True)
        (SCREENSHOTS / "failure_volume.txt").write_text(page.inner_text("body"))
        raise


SETTINGS_JS = """() => [
  document.querySelector('#vol-min-score input[type=range]').value,
  document.querySelector('#vol-min-score input[type=number]').value,
  document.querySelector('#vol-max-growth input').value]"""


def _set_propagation_settings(page) -> None:
    """Stop below score 0 (the untrained test model's scores are low: propagate whatever it
    finds) and no area-growth stop, in the settings accordion (rendered on first opening)."""
    reveal(
        page,
        page.get_by_text("Propagation settings"),
        "#vol-min-score input[type=range]",
        "#vol-min-score input[type=number]",
        "#vol-max-growth input",
    )
    # the range input is what the slider's value follows (its number box applies on blur)
    page.locator("#vol-min-score input[type=range]").fill("0")
    page.wait_for_function(
        "() => document.querySelector('#vol-min-score input[type=number]').value === '0'"
    )
    page.fill("#vol-max-growth input", "1000000")
    page.press("#vol-max-growth input", "Enter")


@pytest.mark.timeout(1800)  # ~1 min alone; a loaded 2-core machine needs far longer
def test_series_propagate_correct_save_export(studio: StudioProcess, tmp_path: Path) -> None:
    series = write_series(tmp_path / "series")
    with chromium() as browser:
        _, page = new_page(browser, studio.url, WAIT_MS, size=(1400, 1500), accept_downloads=True)
        with _kept_on_failure(page):
            page.fill("#annotator input", "dr.volume")
            reveal(
                page,
                page.get_by_role("tab", name="Volume"),
                "#vol-upload input[type=file]",
                "#vol-slice input[type=range]",
            )
            _set_propagation_settings(page)
            page.set_input_files("#vol-upload input[type=file]", [str(s) for s in series])
            _wait_status(page, "Slice 4 of 6: none")
            # the 64² slice is scaled up to fill its box, like the Annotate tab's canvas
            page.wait_for_function(
                "() => document.querySelector('#vol-axial img')?.naturalWidth > 64"
            )
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "volume_tab.png"))
            width = shown_width(page, "#vol-axial img")
            browser_support.REPORT.append(f"64x64 volume slice shown {width:.0f} px wide")
            assert width >= 512, f"the 64² slice is shown {width:.0f} px wide"
            page.click("#vol-segment")
            _wait_status(page, "Slice 4 of 6: propagated")
            page.click("#vol-accept")
            _wait_status(page, "Slice 4 of 6: accepted")
            # still what was set (Gradio's first render of the accordion did not put them back)
            assert page.evaluate(SETTINGS_JS) == ["0", "0", "1000000"]
            page.click("#vol-propagate")
            _wait_status(page, "5 propagated, 1 accepted")
            shown = page.locator("#vol-axial img").get_attribute("src")
            page.fill("#vol-slice input[type=number]", "2")  # 1-based: the second slice
            page.press("#vol-slice input[type=number]", "Enter")
            _wait_status(page, "Slice 2 of 6: propagated")
            # click only once the new slice's picture is loaded: Gradio drops a click on a
            # picture with no pixels yet (naturalWidth 0; seen as a time-out at "corrected")
            wait_for_new_picture(page, "#vol-axial img", shown)
            time.sleep(0.5)
            image = page.locator("#vol-axial img").bounding_box()
            page.mouse.click(image["x"] + image["width"] * 0.3, image["y"] + image["height"] * 0.6)
            _wait_status(page, "Slice 2 of 6: corrected")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "volume_propagated.png"), full_page=True)
            page.click("#vol-save")
            _wait_status(page, "Saved")
            page.click("#vol-export")
            links = page.locator("#vol-download a")
            links.nth(1).wait_for()
            downloaded = {}
            for i in range(2):
                with page.expect_download() as info:
                    links.nth(i).click()
                name = info.value.suggested_filename
                info.value.save_as(tmp_path / name)
                downloaded[name] = tmp_path / name

    with open_store(studio.database_url, studio.data_dir) as store:
        (case,) = list_volume_cases(store)
        masks, status = label_volume(store, case.id)
    assert status == [
        "propagated",
        "corrected",
        "propagated",
        "accepted",
        "propagated",
        "propagated",
    ]
    nifti = next(p for n, p in downloaded.items() if n.endswith(".nii.gz"))
    seg_path = next(p for n, p in downloaded.items() if n.endswith(".dcm"))
    labels = np.asarray(nib.load(nifti).dataobj).transpose(2, 1, 0).astype(bool)
    np.testing.assert_array_equal(labels, masks)
    seg = hd.seg.segread(seg_path)
    sources = [pydicom.dcmread(s) for s in series]
    for k, src in enumerate(sources):  # the writer's order is the slice order
        px = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[src.SOPInstanceUID], segment_numbers=[1]
        )[0, ..., 0]
        np.testing.assert_array_equal(px.astype(bool), masks[k])
    for f in [*studio.data_dir.rglob("*"), nifti, seg_path]:
        if f.is_file():
            raw = f.read_bytes()
            assert b"Doe" not in raw and b"884421" not in raw and b"St Example" not in raw
