"""Helpers of the browser tests: start ``python app.py`` in a subprocess, drive Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from studio.uploads import STUDIO_CACHE_NAME

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT_S = 180.0
REPORT: list[str] = []
"""Lines for the terminal summary (measured latency, screenshot folder)."""


def require_chromium() -> None:
    """Skip (fail under CI) when Debian's chromium is not installed (see .ci/chromium.sh)."""
    if CHROMIUM.exists():
        return
    message = "chromium is not installed: run .ci/chromium.sh (apt-get install -y chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StudioProcess:
    """A studio started with ``python app.py``."""

    url: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'adasam.sqlite3'}"


@contextmanager
def run_studio(tmp: Path, bundle_dir: Path, **env: str) -> Iterator[StudioProcess]:
    """``python app.py`` on a free port with its own data directory; stopped afterwards."""
    port = free_port()
    data_dir = tmp / "data"
    log = tmp / "studio.log"
    environ = {
        **os.environ,
        "ADASAM_DATA_DIR": str(data_dir),
        "ADASAM_BUNDLE": str(bundle_dir),
        "ADASAM_DEVICE": "cpu",
        "ADASAM_HOST": "127.0.0.1",
        "ADASAM_PORT": str(port),
        "ADASAM_IDENTITY": "name",
        "GRADIO_ANALYTICS_ENABLED": "False",
        # an upload cache of its own: app.py empties the default one (shared by every studio
        # on the machine) at start-up, which took the files of studios started by others
        "GRADIO_TEMP_DIR": str(tmp / STUDIO_CACHE_NAME),
        **env,
    }
    environ.pop("DATABASE_URL", None)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=REPO_ROOT,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    studio = StudioProcess(url, data_dir, log, process)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the studio exited:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the studio did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield studio
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


TWO_FRAMES_JS = """() => new Promise((done) =>
  requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, 0))))"""


def reveal(page: object, opener: object, *selectors: str) -> None:
    """Click ``opener`` (a closed accordion's header, a tab) and wait until Gradio has
    finished rendering what it reveals: every element of ``selectors`` is in the page, then
    two animation frames.

    Gradio 6 renders the children of a closed accordion or an unselected tab only when they
    are first shown, and in the first animation frame after they have settled it pushes the
    values it holds for them into them (``render_previously_invisible_children``): a value
    typed in between is silently put back (seen: the min-score slider set to 0 showed 0.5
    again one frame later, and the studio received 0.5). On a loaded machine Playwright's
    fill lands in that gap. Two frames after the elements are there, the push is done."""
    opener.click()  # type: ignore[attr-defined]
    for selector in selectors:
        page.locator(selector).wait_for(state="attached")  # type: ignore[attr-defined]
    page.evaluate(TWO_FRAMES_JS)  # type: ignore[attr-defined]


SHOWN_WIDTH_JS = """(selector) => {
  const i = document.querySelector(selector);
  if (!i || !i.naturalWidth) return 0;
  const fit = getComputedStyle(i).objectFit;
  const contain = Math.min(i.clientWidth / i.naturalWidth, i.clientHeight / i.naturalHeight);
  const fill = i.clientWidth / i.naturalWidth;
  const scale = { none: 1, "scale-down": Math.min(1, contain), fill: fill }[fit];
  return i.naturalWidth * (scale === undefined ? contain : scale);
}"""


def shown_width(page: object, selector: str) -> float:
    """CSS pixels the picture of the ``<img>`` at ``selector`` is drawn wide: its element's box
    can be far larger than the picture in it (``object-fit``), so the box alone proves
    nothing."""
    return float(page.evaluate(SHOWN_WIDTH_JS, selector))  # type: ignore[attr-defined]


def screenshot_dir() -> Path:
    """``artifacts/screenshots`` (gitignored), emptied of earlier runs' pictures."""
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (Playwright's ``Browser``) for the block; skipped when it is not
    installed (see :func:`require_chromium`)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def new_page(
    browser: object,
    url: str,
    timeout_ms: float,
    size: tuple[int, int] = (1400, 1700),
    on_request: Callable[[object], None] | None = None,
    **context_options: object,
) -> tuple[object, Any]:
    """A new browser session (context) of window ``size`` (width, height) and its page at
    ``url``, every wait bounded by ``timeout_ms``; ``on_request`` sees each request from the
    first one on. Returns (context, page): closing the context ends the session."""
    width, height = size
    viewport = {"width": width, "height": height}
    context = browser.new_context(viewport=viewport, **context_options)  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    if on_request is not None:
        page.on("request", on_request)
    page.goto(url)
    return context, page


NEW_PICTURE_JS = """(args) => {
  const i = document.querySelector(args.selector);
  return i && i.src !== args.old && i.complete && i.naturalWidth > 0;
}"""


def wait_for_new_picture(
    page: Any, selector: str, old_src: str | None, timeout_ms: float | None = None
) -> None:
    """Wait until the ``<img>`` at ``selector`` shows a picture other than ``old_src``, fully
    loaded (a click on a picture being swapped reaches nothing)."""
    args = {"selector": selector, "old": old_src}
    if timeout_ms is None:
        page.wait_for_function(NEW_PICTURE_JS, arg=args)
    else:
        page.wait_for_function(NEW_PICTURE_JS, arg=args, timeout=timeout_ms)


def take_brush(page: Any) -> None:
    """Choose the brush editor's brush and scroll its canvas into view.

    The editor sits at the foot of the page, and mouse events outside the viewport reach
    nothing (the stroke of the first named-page run fell below a 1700 px window, so nothing was
    painted and none of it could be submitted)."""
    page.click("#editor button[aria-label='Brush']")
    page.locator("#editor canvas").first.scroll_into_view_if_needed()


def brush_stroke(page: Any, half_width: int, dy: float = 0.0) -> None:
    """A horizontal stroke, ``2 × half_width`` px long, through the centre of the editor's
    canvas (``dy`` px below it), with the tool chosen (:func:`take_brush`)."""
    canvas = page.locator("#editor canvas").first.bounding_box()
    assert canvas is not None
    cx, cy = canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2 + dy
    viewport = page.viewport_size
    assert viewport is not None and 0 < cy < viewport["height"], "the editor is off screen"
    page.mouse.move(cx - half_width, cy)
    page.mouse.down()
    for i in range(2 * half_width // 5 + 1):
        page.mouse.move(cx - half_width + 5 * i, cy, steps=2)
    page.mouse.up()


CLICK_TIMING_JS = """() => {
  if (window.__clickTiming) return;
  window.__clickTiming = {};
  document.addEventListener('mousedown', () => {
    window.__clickTiming = {click: performance.now()};
  }, true);
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.name.includes('.png') && window.__clickTiming.click !== undefined
          && e.startTime > window.__clickTiming.click && !window.__clickTiming.fetch) {
        window.__clickTiming.fetch = {start: e.startTime, end: e.responseEnd};
      }
    }
  }).observe({type: 'resource'});
  document.addEventListener('load', (e) => {
    const t = window.__clickTiming;
    if (e.target.tagName === 'IMG' && t.fetch && !t.loaded) t.loaded = performance.now();
  }, true);
}"""


def install_click_timing(page: Any) -> None:
    """Time the page's side of each click from now on (see :func:`click_timing`)."""
    page.evaluate(CLICK_TIMING_JS)


def click_timing(page: Any) -> tuple[float, float, float] | None:
    """The last click's (mouse-down → request for the new picture, the picture's fetch, fetch
    end → picture loaded) in ms, by the page's own clock (Performance API); None if a part was
    not seen. The first part holds the server's handler, Gradio's queue and messages both ways."""
    t = page.evaluate("() => window.__clickTiming || {}")
    fetch, loaded = t.get("fetch"), t.get("loaded")
    if "click" not in t or fetch is None or loaded is None:
        return None
    return fetch["start"] - t["click"], fetch["end"] - fetch["start"], loaded - fetch["end"]
