"""Browser: :func:`browser_support.reveal` waits out Gradio's first render of a closed
accordion, so a value set at once is the value the server receives (not put back)."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr
import pytest

from tests.studio import browser_support as support

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_api = pytest.importorskip("playwright.sync_api")
TRIES = 3
LATE_FRAMES_JS = """{
  const frame = window.requestAnimationFrame.bind(window);
  window.requestAnimationFrame = (cb) => frame((t) => setTimeout(() => cb(t), 300));
}"""
"""The page's animation frames come 300 ms late, as on a loaded machine (Playwright's own
checks run apart, unaffected). Gradio's first render of the accordion then puts its stored
values back about 600 ms after the inputs appear: without reveal's wait, a fill made at once
was undone in 3 of 3 tries."""


def _settings_app() -> gr.Blocks:
    """A closed accordion with a slider and a number, read by a button."""
    with gr.Blocks() as demo:
        with gr.Accordion("Knobs", open=False):
            score = gr.Slider(0, 0.95, value=0.5, step=0.05, label="score", elem_id="score")
            growth = gr.Number(value=3.0, label="growth", elem_id="growth")
        out = gr.Textbox(elem_id="out")
        gr.Button("Read", elem_id="read").click(lambda s, g: f"{s:g} {g:g}", [score, growth], out)
    return demo


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    support.require_chromium()
    demo = _settings_app()
    port = support.free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def test_values_set_right_after_reveal_reach_the_server(app_url: str) -> None:
    received = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(support.CHROMIUM), args=support.CHROMIUM_ARGS
        )
        for _ in range(TRIES):
            page = browser.new_page()
            page.add_init_script(LATE_FRAMES_JS)
            page.set_default_timeout(60_000)
            page.goto(app_url)
            support.reveal(
                page,
                page.get_by_text("Knobs"),
                "#score input[type=range]",
                "#score input[type=number]",
                "#growth input",
            )
            page.locator("#score input[type=range]").fill("0")
            page.fill("#growth input", "1000000")
            page.wait_for_timeout(1500)  # past the moment a late first render puts values back
            page.click("#read")
            page.wait_for_function("() => document.querySelector('#out textarea').value !== ''")
            received.append(page.evaluate("() => document.querySelector('#out textarea').value"))
            page.close()
        browser.close()
    assert received == ["0 1e+06"] * TRIES
