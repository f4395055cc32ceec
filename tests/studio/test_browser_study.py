"""Browser test of a blinded two-rater study in the Quality tab (headless Chromium)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from tests.studio.browser_support import (
    StudioProcess,
    chromium,
    new_page,
    require_chromium,
    run_studio,
    screenshot_dir,
)
from tests.studio.test_quality import GOOD, POOR, _seed_cases

pytestmark = [pytest.mark.browser, pytest.mark.slow]

playwright_api = pytest.importorskip("playwright.sync_api")
WAIT_MS = 90_000
CASES = 2


@pytest.fixture(scope="module")
def studio(
    tmp_path_factory: pytest.TempPathFactory, studio_bundle_dir: Path
) -> Iterator[StudioProcess]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("study")
    data = tmp / "data"
    with storage.open_store(f"sqlite:///{data / 'adasam.sqlite3'}", data) as store:
        _seed_cases(store, CASES)
        storage.ensure_annotator(store, "boss", role="admin")
        for name in ("ann", "bea"):
            storage.ensure_annotator(store, name)
        cases = storage.corrected_candidates(store)
        storage.create_study(
            store, name="pilot", admin="boss", raters=["ann", "bea"], candidate_ids=cases,
            ratings_per_case=2, blinded=True, seed=5,
        )  # fmt: skip
    with run_studio(tmp, studio_bundle_dir, ADASAM_SEED_WORKLIST="0") as running:
        yield running


def _page(browser: object, studio: StudioProcess, name: str) -> object:
    _, page = new_page(browser, studio.url, WAIT_MS, size=(1400, 1500))
    page.fill("#annotator input", name)
    page.get_by_role("tab", name="Quality").click()
    page.click("#q-studies")
    page.wait_for_function(
        "() => document.querySelector('#q-studies-md').innerText.includes('pilot')"
    )
    return page


def _rate_all(page: object, score: str, verdict: str) -> None:
    for _ in range(CASES):
        page.click("#q-next")
        page.wait_for_function("() => document.querySelector('#q-image img') !== null")
        page.locator("#q-score").get_by_text(score).click()
        page.locator("#q-verdict").get_by_text(verdict, exact=True).click()
        page.click("#q-submit")
        page.wait_for_function(
            "() => document.querySelector('#q-case-md').innerText.includes('Saved rating')"
        )
    page.click("#q-next")
    page.wait_for_function(
        "() => document.querySelector('#q-case-md').innerText.includes('nothing left')"
    )


def test_two_blinded_raters_and_the_admins_report(studio: StudioProcess) -> None:
    shots = screenshot_dir()
    with chromium() as browser:
        ann = _page(browser, studio, "ann")
        _rate_all(ann, GOOD, "Minor edits")
        bea = _page(browser, studio, "bea")
        bea.click("#q-next")
        bea.wait_for_function("() => document.querySelector('#q-image img') !== null")
        bea.screenshot(path=str(shots / "study_01_bea_case.png"), full_page=True)
        assert "4" not in bea.inner_text("#q-mine tbody")  # ann's ratings are not shown
        bea.reload()
        bea = _page(browser, studio, "bea")
        _rate_all(bea, POOR, "Major edits")
        mine = bea.inner_text("#q-mine")
        assert mine.count("major_edits") == CASES and "minor_edits" not in mine
        bea.get_by_text("Study report").click()  # open the accordion
        bea.click("#q-report")  # a rater of a blinded study gets no report
        bea.get_by_text("blinded: its report is for admins only").first.wait_for()
        boss = _page(browser, studio, "boss")
        boss.get_by_text("Study report").click()
        boss.click("#q-report")
        boss.wait_for_function(
            "() => document.querySelector('#q-report-md').innerText.includes('kappa_qw')"
        )
        report = boss.inner_text("#q-report-md")
        boss.screenshot(path=str(shots / "study_02_report.png"), full_page=True)
        browser.close()
    pair = next(line for line in report.splitlines() if "ann" in line and "bea" in line)
    assert "human-human" in pair and f"{CASES:>4}" in pair
    with storage.open_store(studio.database_url, studio.data_dir) as store:
        ratings = storage.study_ratings(store, "pilot", viewer="boss")
    assert (
        sorted((r.annotator, r.score) for r in ratings)
        == [("ann", 4)] * CASES + [("bea", 2)] * CASES
    )
