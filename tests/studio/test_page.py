"""The page object: components by name, handlers' slot dicts turned into Gradio updates."""

from __future__ import annotations

import gradio as gr
import pytest

from studio.page import Page, Updates


def _page() -> Page:
    page = Page()
    with gr.Blocks():
        page.add("name", gr.Textbox())
        page.add("note", gr.Markdown())
    return page


def test_a_handler_returns_only_the_slots_it_changes() -> None:
    page = _page()
    wrapped = page.named(lambda: {"note": "hello"}, ["name", "note"])
    assert wrapped() == {page["note"]: "hello"}


def test_nothing_to_change_leaves_every_output_as_it_is() -> None:
    """Gradio reads an empty dict as one value (a page-load handler with nothing to restore
    failed with "didn't return enough output values" and, with one output, would have
    overwritten it with {}): the wrapper skips every output instead."""
    page = _page()

    def nothing() -> Updates:
        return {}

    one = page.named(nothing, ["note"])()
    two = page.named(nothing, ["name", "note"])()
    assert not isinstance(one, tuple) and one == gr.skip()
    assert isinstance(two, tuple) and list(two) == [gr.skip(), gr.skip()]


def test_a_slot_the_event_did_not_declare_is_refused() -> None:
    page = _page()
    with pytest.raises(KeyError, match="not among the event's outputs"):
        page.named(lambda: {"name": "x"}, ["note"])()
    with pytest.raises(ValueError, match="already has"):
        page.add("note", gr.Markdown())
    with pytest.raises(KeyError, match="no component named"):
        page["missing"]
