"""Browser test of the Models tab (headless Chromium): an admin activates a version the gate
kept out and rolls back to its parent; a plain annotator may not; the database's active version
and the page agree after each step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import storage
from adasam.bundle import load_bundle, save_bundle, with_version
from tests.studio.browser_support import (
    SCREENSHOTS,
    StudioProcess,
    chromium,
    new_page,
    require_chromium,
    run_studio,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

playwright_api = pytest.importorskip("playwright.sync_api")
WAIT_MS = 90_000
GATE = {
    "activate": False,
    "reason": "worse: NoC@90 +1.25 clicks on 4 held-out corrections (allowed +0.50)",
    "candidate": {"cases": 4, "dice": 0.79, "noc90": 6.5},
    "active": {"cases": 4, "dice": 0.81, "noc90": 5.25},
}


def _bundle(source: Path, version: str, out: Path) -> Path:
    return save_bundle(with_version(load_bundle(source), version), out)


@pytest.fixture(scope="module")
def studio(
    tmp_path_factory: pytest.TempPathFactory, studio_bundle_dir: Path
) -> Iterator[tuple[StudioProcess, int, int]]:
    """The studio over a database with a root version (active) and a fine-tuned child that the
    gate kept out; ``boss`` is an admin, ``dr.b`` an annotator."""
    require_chromium()
    tmp = tmp_path_factory.mktemp("models")
    data = tmp / "data"
    with storage.open_store(f"sqlite:///{data / 'adasam.sqlite3'}", data) as store:
        root = storage.register_model_version(
            store, name="tiny-v0", bundle_dir=_bundle(studio_bundle_dir, "0", tmp / "a"),
            metrics={"root": True}, activate=True,
        )  # fmt: skip
        child = storage.register_model_version(
            store, name="tiny-v0-ft1", bundle_dir=_bundle(studio_bundle_dir, "ft1", tmp / "b"),
            parent_id=root.id,
            metrics={"gate": GATE, "training": {"seconds": 41.3}, "train_corrections": 16},
        )  # fmt: skip
        storage.ensure_annotator(store, "boss", role="admin")
        storage.ensure_annotator(store, "dr.b")
    with run_studio(tmp, studio_bundle_dir, ADASAM_SEED_WORKLIST="0") as running:
        yield running, root.id, child.id


def _active_id(studio: StudioProcess) -> int:
    with storage.open_store(studio.database_url, studio.data_dir) as store:
        active = storage.active_model_version(store)
    assert active is not None
    return active.id


def _wait_text(page: object, selector: str, text: str) -> None:
    page.wait_for_function(  # type: ignore[attr-defined]
        "([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
        arg=[selector, text],
    )


def _rows(page: object) -> list[list[str]]:
    """The table's visible body cells, row by row (Gradio's grid cells, ``data-row``/``data-col``;
    its hidden sizing table is left out)."""
    cells = page.evaluate(  # type: ignore[attr-defined]
        "() => [...document.querySelectorAll('#models-table [role=gridcell][data-row]')].map("
        "c => [+c.dataset.row, +c.dataset.col, c.innerText.trim()])"
    )
    rows: dict[int, dict[int, str]] = {}
    for row, col, text in cells:
        rows.setdefault(row, {})[col] = text
    return [[r[c] for c in sorted(r)] for _, r in sorted(rows.items())]


def _active_name(page: object) -> str:
    """The version name in the table row whose 'active' cell says yes."""
    rows = _rows(page)
    found = [r[1] for r in rows if len(r) > 3 and r[3] == "yes"]
    assert len(found) == 1, rows
    return found[0]


def _choose(page: object, label: str) -> None:
    page.locator("#models-choice input").click()  # type: ignore[attr-defined]
    page.get_by_role("option", name=label).click()  # type: ignore[attr-defined]


def test_admin_activates_and_rolls_back_and_the_page_follows(studio) -> None:
    running, root, child = studio
    shots = SCREENSHOTS
    shots.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        _, page = new_page(browser, running.url, WAIT_MS, size=(1400, 1200))
        page.fill("#annotator input", "dr.b")
        page.get_by_role("tab", name="Models").click()
        _wait_text(page, "#models-summary", "Active: tiny-v0 (id")
        assert "It has no parent" in page.inner_text("#models-summary")
        assert not page.locator("#models-plot").is_visible()  # no simulated session attached
        _wait_text(page, "#models-table", "tiny-v0-ft1")
        assert _active_name(page) == "tiny-v0"
        assert "kept out: worse" in page.inner_text("#models-table")
        page.screenshot(path=str(shots / "models_01_root_active.png"), full_page=True)

        _choose(page, f"{child}: tiny-v0-ft1")
        page.click("#models-activate")
        page.get_by_text("Only an admin may change the active model").first.wait_for()
        assert _active_id(running) == root

        page.fill("#annotator input", "boss")
        page.click("#models-activate")
        _wait_text(page, "#models-summary", "Active: tiny-v0-ft1")
        assert _active_id(running) == child
        assert _active_name(page) == "tiny-v0-ft1"
        _wait_text(page, "#model-md", f"tiny-v0-ft1 (active version {child}")  # the page's top
        assert page.input_value("#model input").startswith("tiny-v0-ft1 (active version")
        assert f"Roll back re-activates its parent tiny-v0 (id {root})" in page.inner_text(
            "#models-summary"
        )
        page.screenshot(path=str(shots / "models_02_child_activated.png"), full_page=True)

        page.click("#models-rollback")
        _wait_text(page, "#models-summary", f"Active: tiny-v0 (id {root})")
        assert _active_id(running) == root
        assert _active_name(page) == "tiny-v0"
        _wait_text(page, "#model-md", f"tiny-v0 (active version {root}")
        page.screenshot(path=str(shots / "models_03_rolled_back.png"), full_page=True)
        browser.close()
