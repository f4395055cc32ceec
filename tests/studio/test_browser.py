"""Real-browser tests: headless Chromium (Playwright) against ``python app.py``.

They upload real files, click and paint like a user, then look in the database. Screenshots go
to ``artifacts/screenshots/`` and the click → refined-mask latency (median of 10 clicks) is
printed; it is measured, never asserted.
"""

from __future__ import annotations

import io
import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from storage import list_annotators, load_correction_masks, open_store, ratings_of, stats
from tests.studio.browser_support import (
    REPORT,
    SCREENSHOTS,
    StudioProcess,
    brush_stroke,
    chromium,
    click_timing,
    install_click_timing,
    new_page,
    require_chromium,
    reveal,
    run_studio,
    screenshot_dir,
    shown_width,
    take_brush,
)
from tests.studio.conftest import CT_SMALL, THIGH_PNG

pytestmark = [pytest.mark.browser, pytest.mark.slow]

playwright_api = pytest.importorskip("playwright.sync_api")
Page = playwright_api.Page
WAIT_MS = 90_000


def _studio(tmp: Path, bundle_dir: Path) -> Iterator[StudioProcess]:
    require_chromium()
    # the tiny bundle is untrained: the refinement guard would refuse its noisy clicks, and this
    # test counts them (test_browser_clicks.py runs the guard with the demo bundles)
    with run_studio(
        tmp, bundle_dir, ADASAM_MAX_PIXELS="250000", ADASAM_REFINE_GUARD="0"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def studio(
    tmp_path_factory: pytest.TempPathFactory, studio_bundle_dir: Path
) -> Iterator[StudioProcess]:
    yield from _studio(tmp_path_factory.mktemp("browser"), studio_bundle_dir)


@pytest.fixture
def fresh_studio(
    tmp_path_factory: pytest.TempPathFactory, studio_bundle_dir: Path
) -> Iterator[StudioProcess]:
    """A studio of its own, on a newly seeded worklist. The module's studio will not do for a
    walk through every case: a case submitted by an earlier test stays leased to its
    annotator (it is still open on their page, by design, until they walk on or the 30-minute
    lease ends), so it is "open by colleagues" for everyone else."""
    yield from _studio(tmp_path_factory.mktemp("browser-walk"), studio_bundle_dir)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = screenshot_dir()
    REPORT.append(f"screenshots: {folder}")
    return folder


def open_page(browser: object, studio: StudioProcess) -> tuple[object, Page, list[str]]:
    """A new browser session (context) on the studio; also returns the list of requests that
    left the machine (there must be none)."""
    outside: list[str] = []

    def note_outside(request: object) -> None:
        url = request.url  # type: ignore[attr-defined]
        if not url.startswith((studio.url, "data:", "blob:")):
            outside.append(url)

    context, page = new_page(browser, studio.url, WAIT_MS, on_request=note_outside)
    page.wait_for_selector("#upload input[type=file]", state="attached")
    return context, page, outside


def upload(page: Page, path: Path) -> None:
    """Upload ``path`` and wait for the pipeline's candidates."""
    page.set_input_files("#upload input[type=file]", str(path))
    page.wait_for_function(
        "(name) => document.querySelector('#case-md')?.innerText.includes(name)", arg=path.name
    )
    page.wait_for_function(
        "() => document.querySelector('#correct-md')?.innerText.includes('candidate #')"
    )
    page.wait_for_function("() => document.querySelectorAll('#candidates img').length === 3")


def see(page: Page, text: str) -> None:
    """Wait until ``text`` is visible; on time-out save a screenshot and the page's messages
    to ``artifacts/screenshots/failure_*`` before failing."""
    try:
        page.get_by_text(text, exact=False).first.wait_for()
    except playwright_api.TimeoutError:
        stem = SCREENSHOTS / f"failure_{int(time.time())}"
        page.screenshot(path=f"{stem}.png", full_page=True)
        Path(f"{stem}.txt").write_text(page.inner_text("body"))
        raise


def expect_error(page: Page, path: Path, text: str) -> None:
    """Upload ``path`` and wait for the error toast that says ``text``."""
    page.set_input_files("#upload input[type=file]", str(path))
    see(page, text)


REFUSED = "Kept the previous mask"
"""The start of the refinement guard's toast when it keeps the previous mask."""

NEW_PICTURE_OR_REFUSAL_JS = """(args) => {
  const i = document.querySelector(args.selector);
  if (i && i.src !== args.old && i.complete && i.naturalWidth > 0) return "picture";
  const toasts = [...document.querySelectorAll('.toast-body')];
  return toasts.filter((t) => t.innerText.includes(args.refused)).length > args.refusals
    ? "refused" : false;
}"""


def _refusals(page: Page) -> int:
    return page.evaluate(
        "(text) => [...document.querySelectorAll('.toast-body')]"
        ".filter((t) => t.innerText.includes(text)).length",
        REFUSED,
    )


def click_and_wait(page: Page, fx: float, fy: float) -> float:
    """Click the correction image at fractions (fx, fy); the milliseconds until the refined
    mask is displayed.

    When the refinement guard keeps the previous mask (the canvas does not change and a toast
    says so; the tiny test bundle's answers can look collapsed), click the same spot again as a
    user who insists would: the guard then applies SAM's answer. The time is the second
    click's."""
    image = page.locator("#correct-img img")
    before = image.get_attribute("src")
    image.scroll_into_view_if_needed()  # at 1366×768 the canvas starts near the fold
    box = image.bounding_box()
    assert box is not None
    at = (box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
    args = {"selector": "#correct-img img", "old": before, "refused": REFUSED}
    for _attempt in range(2):
        args["refusals"] = _refusals(page)
        start = time.perf_counter()
        page.mouse.click(*at)
        seen = page.wait_for_function(NEW_PICTURE_OR_REFUSAL_JS, arg=args).json_value()
        if seen == "picture":
            return (time.perf_counter() - start) * 1000.0
        REPORT.append(f"the refinement guard kept the mask at ({fx:.2f}, {fy:.2f}): clicked again")
    raise AssertionError("the guard refused a click twice at the same spot")


def _handler_ms(status: str) -> float | None:
    """The server's click handler time the correction status reports ("refined in N ms")."""
    found = re.search(r"refined in (\d+) ms", status)
    return float(found.group(1)) if found else None


def _breakdown(parts: list[tuple[float, float, float]], handler: list[float | None]) -> str:
    """Medians of where a click's time went, by the page's clock and the server's status."""
    if not parts:
        return "click breakdown: the page's timing saw no picture fetch"
    to_request, fetch, load = (statistics.median(p[i] for p in parts) for i in range(3))
    served = [h for h in handler if h is not None]
    server = f"{statistics.median(served):.0f} ms" if served else "not reported"
    return (
        f"click breakdown (medians of {len(parts)}): mouse-down → request for the new picture "
        f"{to_request:.0f} ms (the server's refine handler {server}; the rest is rendering "
        f"the canvas PNG, Gradio's queue and messages), picture fetch {fetch:.0f} ms, "
        f"fetch → shown {load:.0f} ms"
    )


def _editor_pixels(page: Page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator("#editor").screenshot())).convert("RGB"))


def paint_stroke(page: Page) -> None:
    """A horizontal blue stroke through the middle of the brush editor's canvas; fails unless
    the stroke shows in the editor."""
    take_brush(page)
    before = _editor_pixels(page)
    brush_stroke(page, half_width=40)
    time.sleep(0.3)
    after = _editor_pixels(page)
    changed = int((np.abs(after.astype(int) - before.astype(int)).sum(axis=-1) > 30).sum())
    assert changed >= 200, f"the stroke does not show in the editor ({changed} pixels changed)"


def test_upload_pipeline_refine_brush_rate_submit_and_find_the_rows(
    browser: object, studio: StudioProcess, shots: Path
) -> None:
    context, page, outside = open_page(browser, studio)
    page.fill("#annotator input", "dr.browser")

    upload(page, CT_SMALL)
    assert page.locator("#heatmap-img img").count() == 1
    assert "p = " in page.inner_text("#steps-md")
    assert page.locator("#prompts-img img").count() == 1
    page.screenshot(path=str(shots / "01_ct_small_pipeline.png"), full_page=True)

    upload(page, THIGH_PNG)
    page.screenshot(path=str(shots / "02_phantom_pipeline.png"), full_page=True)

    page.locator("#candidates img").nth(1).click()
    page.wait_for_function(
        "() => /#2: score [-0-9.]+ · \\d+ px ← chosen/.test("
        "document.querySelector('#candidates-md')?.innerText || '')"
    )

    install_click_timing(page)
    latencies, parts, handler = [], [], []
    for i in range(10):
        latencies.append(click_and_wait(page, 0.35 + 0.03 * (i % 5), 0.4 + 0.04 * (i // 5)))
        parts.append(click_timing(page))
        handler.append(_handler_ms(page.inner_text("#correct-md")))
    see(page, "10 refinement clicks")
    median = statistics.median(latencies)
    REPORT.append(
        f"click → refined mask in the browser: median {median:.0f} ms over 10 clicks "
        f"(min {min(latencies):.0f}, max {max(latencies):.0f})"
    )
    REPORT.append(_breakdown([p for p in parts if p is not None], handler))
    page.click("#undo")
    see(page, "9 refinement clicks")
    page.screenshot(path=str(shots / "03_refined_with_clicks.png"), full_page=True)

    reveal(page, page.get_by_text("Brush (paint the mask by hand)"), "#editor", "#apply-brush")
    see(page, "Paint with the blue brush")
    page.wait_for_function("() => document.querySelector('#editor canvas') !== null", polling=200)
    time.sleep(1.0)  # the editor draws the background asynchronously
    paint_stroke(page)
    page.locator("#editor").screenshot(path=str(shots / "04_brush.png"))

    page.get_by_text("4 · Good: minor edits only").click()
    page.get_by_text("Minor edits", exact=True).click()
    page.get_by_text("Boundary accurate").click()
    page.fill("#comment textarea", "browser test")
    page.click("#submit")
    try:  # a final mask far from the chosen candidate asks to confirm: press Submit again
        page.get_by_text("Saved").first.wait_for(timeout=15000)
    except Exception:
        page.click("#submit")
    see(page, "Saved")
    page.wait_for_function("() => document.querySelector('#submit').disabled === true")
    page.locator("#submit").click(force=True)  # a second click on the disabled button
    time.sleep(1.0)
    page.screenshot(path=str(shots / "05_submitted.png"), full_page=True)

    with open_store(studio.database_url, studio.data_dir) as store:
        counts = stats(store)
        assert (counts.predictions, counts.corrections, counts.ratings) == (1, 1, 1)
        assert "dr.browser" in {a.name for a in list_annotators(store)}
        assert counts.corrections_per_annotator == {"dr.browser": 1}
        from storage.corrections import get_correction  # the one correction is #1

        correction = get_correction(store, 1)
        assert correction.clicks == 9
        (rating,) = ratings_of(store, candidate_id=correction.candidate_id)
        assert (rating.score, rating.verdict) == (4, "minor_edits")
        assert rating.rubric["boundary_accuracy"] is True and rating.comment == "browser test"
        masks = load_correction_masks(store, 1)
        h, w = np.asarray(Image.open(THIGH_PNG)).shape[:2]
        assert masks.final.shape == (h, w) and masks.final.dtype == bool
        assert masks.final[h // 2, w // 2 - 4 : w // 2 + 4].all(), "the brush stroke is kept"

    page.reload()  # the submitted case comes back with its confirmation
    page.wait_for_function(
        "(n) => document.querySelector('#case-md')?.innerText.includes(n)", arg=THIGH_PNG.name
    )
    see(page, "Saved")
    assert page.input_value("#annotator input") == "dr.browser"
    page.get_by_role("tab", name="Statistics").click()
    see(page, "Cases done")
    page.screenshot(path=str(shots / "06_statistics.png"), full_page=True)
    assert outside == [], f"the page contacted other hosts: {outside[:5]}"
    context.close()  # type: ignore[attr-defined]


def test_bad_uploads_show_a_message_and_the_app_keeps_working(
    browser: object, studio: StudioProcess, shots: Path, tmp_path: Path
) -> None:
    context, page, _ = open_page(browser, studio)
    corrupt = tmp_path / "corrupt.dcm"
    corrupt.write_bytes(CT_SMALL.read_bytes()[:20_000])
    expect_error(page, corrupt, "DICOM file is incomplete")
    fake = tmp_path / "report.png"
    fake.write_text("Patient report: not an image at all")
    expect_error(page, fake, "not a readable image")
    big = tmp_path / "huge.png"
    Image.fromarray(np.zeros((600, 600), np.uint8)).save(big)
    expect_error(page, big, "the limit is 250,000 pixels")
    page.screenshot(path=str(shots / "07_upload_errors.png"), full_page=True)
    assert "Traceback" not in page.content()
    upload(page, CT_SMALL)
    context.close()  # type: ignore[attr-defined]


DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def _case_name(page: Page) -> str:
    return page.inner_text("#case-md").split(" · ")[0]


def _pipeline_done(page: Page) -> None:
    """Wait until the pipeline ran on the case on screen (its timings are shown; candidates
    or, outside the model's domain, none)."""
    page.wait_for_function(
        "() => (document.querySelector('#timings')?.innerText || '').includes('Time per stage')"
    )


def _close_toasts(page: Page) -> None:
    page.evaluate("() => document.querySelectorAll('.toast-close').forEach((b) => b.click())")


BUSY = "open by colleagues"


def _walk(page: Page, previous: str) -> str | None:
    """Press N (the next-case shortcut) and wait for another case and the pipeline's run;
    None when the cases left for this annotator are open by the other one."""
    page.locator("#intro").click()  # focus outside any text field
    page.keyboard.press("n")
    page.wait_for_function(
        "([old, busy]) => { const t = document.querySelector('#case-md')?.innerText || '';"
        " const w = document.querySelector('#worklist-md')?.innerText || '';"
        " return (t.includes('from the worklist') && t.split(' · ')[0] !== old)"
        " || w.includes(busy); }",
        arg=[previous, BUSY],
    )
    if BUSY in page.inner_text("#worklist-md"):
        return None
    _pipeline_done(page)
    return _case_name(page)


def _example(page: Page, index: int) -> str:
    """Click example ``index`` of the gallery; its name once its three candidates are shown."""
    page.locator("#examples img").nth(index).click()
    page.wait_for_function(
        "() => !(document.querySelector('#case-md')?.innerText || '').includes('from the worklist')"
    )
    page.wait_for_function("() => document.querySelectorAll('#candidates img').length === 3")
    return _case_name(page)


def test_the_workbench_walk_shortcuts_reload_and_canvas_at_1366x768(
    browser: object, fresh_studio: StudioProcess, tmp_path: Path
) -> None:
    """Two annotators walk the six seeded cases (each all six, own order, never the same case
    at once); the page fits 1366×768 down to the scores; the shortcuts act; a reload restores
    the case and its click; a 64² slice is shown at least 512 px wide; → steps a volume."""
    pages = []
    for who in ("walker-a", "walker-b"):
        context, page = new_page(browser, fresh_studio.url, WAIT_MS, size=(1366, 768))
        page.fill("#annotator input", who)
        page.locator("#intro").click()  # the name field loses focus: the browser keeps it
        pages.append((context, page))
    (ctx_a, a), (ctx_b, b) = pages
    walked: dict[str, list[str]] = {"a": [], "b": []}
    last = {"a": "", "b": ""}
    busy = 0
    for _ in range(8):  # in turn; one waits when their last case is open by the other
        for key, page in (("a", a), ("b", b)):
            if len(walked[key]) == 6:
                continue
            name = _walk(page, last[key])
            if name is None:
                busy += 1
                continue
            last[key] = name
            walked[key].append(name)
            assert last["a"] != last["b"], "two annotators never have the same case open"
    REPORT.append(f"worklist walk: walker-a {walked['a']}, walker-b {walked['b']}, busy {busy}")
    assert len(set(walked["a"])) == len(set(walked["b"])) == 6, walked
    assert walked["a"] != walked["b"], "each annotator walks in an order of their own"

    # 1366×768: the candidates' scores are on screen without scrolling (the thigh example
    # with its own demo model)
    _close_toasts(a)
    name = _example(a, 0)
    _close_toasts(a)
    box = a.locator("#candidates-md").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 768, box
    assert "score" in a.inner_text("#candidates-md")
    assert a.locator("#score-note").bounding_box()["y"] < 768
    # the compact header (it took ~300 px) leaves the canvas starting in the top half; the
    # slice buttons are small buttons, not boxes the height of the slider's row
    header = a.locator("#header").bounding_box()
    canvas_top = a.locator("#correct-img img").bounding_box()["y"]
    prev = a.locator("#slice-prev").bounding_box()
    REPORT.append(
        f"1366x768: header {header['height']:.0f} px high, canvas from y = {canvas_top:.0f}, "
        f"slice button {prev['width']:.0f}x{prev['height']:.0f} px"
    )
    assert header["height"] <= 140 and canvas_top <= 420, (header, canvas_top)
    assert prev["width"] <= 60 and prev["height"] <= 48, prev
    a.screenshot(path=str(DOCS_IMAGES / "workbench_1366x768.png"))

    # shortcuts: R selects the remove mode, A the add mode; a click, then U undoes it
    a.locator("#intro").click()
    a.keyboard.press("r")
    assert a.locator("#click-mode input[value='Remove (−)']").is_checked()
    a.keyboard.press("a")
    assert a.locator("#click-mode input[value='Add (+)']").is_checked()
    click_and_wait(a, 0.5, 0.5)
    see(a, "1 refinement click")

    # a reload brings back the case on screen with its click
    a.reload()
    a.wait_for_function(
        "(n) => document.querySelector('#case-md')?.innerText.startsWith(n)", arg=name
    )
    see(a, "1 refinement click")
    a.locator("#intro").click()
    a.keyboard.press("u")
    see(a, "0 refinement clicks")

    # a 64×64 slice fills the canvas: at least 512 px wide (with or without candidates)
    small = tmp_path / "small64.png"
    yy, xx = np.mgrid[:64, :64]
    Image.fromarray(((xx - 32) ** 2 + (yy - 30) ** 2 < 200).astype(np.uint8) * 200).save(small)
    a.set_input_files("#upload input[type=file]", str(small))
    a.wait_for_function(
        "() => document.querySelector('#case-md')?.innerText.includes('small64.png')"
    )
    _pipeline_done(a)
    width = shown_width(a, "#correct-img img")
    REPORT.append(f"64x64 slice shown {width:.0f} px wide on the canvas at 1366x768")
    assert width >= 512

    # a volume: → goes to the next slice, numbers are 1-based
    volume = _nifti(tmp_path / "vol.nii.gz")
    a.set_input_files("#upload input[type=file]", str(volume))
    see(a, "slice 4 of 7")
    a.locator("#intro").click()
    a.keyboard.press("ArrowRight")
    see(a, "slice 5 of 7")
    assert a.input_value("#slice-number input") == "5"
    ctx_a.close()  # type: ignore[attr-defined]
    ctx_b.close()  # type: ignore[attr-defined]


def _nifti(path: Path) -> Path:
    import nibabel as nib

    rng = np.random.default_rng(0)
    volume = rng.normal(100.0, 20.0, (48, 40, 7)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.diag([0.8, 0.8, 3.0, 1.0])), str(path))
    return path


def test_two_sessions_at_once_never_see_each_others_case(
    browser: object, studio: StudioProcess, shots: Path
) -> None:
    ctx_a, a, _ = open_page(browser, studio)
    ctx_b, b, _ = open_page(browser, studio)
    a.set_input_files("#upload input[type=file]", str(CT_SMALL))
    b.set_input_files("#upload input[type=file]", str(THIGH_PNG))
    for page, mine in ((a, CT_SMALL), (b, THIGH_PNG)):
        page.wait_for_function(
            "(n) => document.querySelector('#case-md')?.innerText.includes(n)", arg=mine.name
        )
        page.wait_for_function("() => document.querySelectorAll('#candidates img').length === 3")
    click_and_wait(a, 0.5, 0.5)
    time.sleep(1.0)
    for page, mine, theirs in ((a, CT_SMALL, THIGH_PNG), (b, THIGH_PNG, CT_SMALL)):
        text = page.inner_text("#case-md")
        assert mine.name in text and theirs.name not in text
    assert "1 refinement click" in a.inner_text("#correct-md")
    assert "0 refinement clicks" in b.inner_text("#correct-md")
    # the worklist hands the two annotators different cases
    a.fill("#annotator input", "ann")
    b.fill("#annotator input", "bob")
    a.click("#next-case")
    b.click("#next-case")
    see(a, "reserved for ann")
    see(b, "reserved for bob")
    case_a, case_b = a.inner_text("#case-md"), b.inner_text("#case-md")
    assert "from the worklist" in case_a and "from the worklist" in case_b
    assert case_a.split(" · ")[0] != case_b.split(" · ")[0]
    a.screenshot(path=str(shots / "08_session_a.png"), full_page=True)
    b.screenshot(path=str(shots / "09_session_b.png"), full_page=True)
    ctx_a.close()  # type: ignore[attr-defined]
    ctx_b.close()  # type: ignore[attr-defined]
